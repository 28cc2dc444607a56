"""Steps both integration modules take on their own lab: a private copy of the deploy directory,
reading pyinfra's results table, waiting for a condition."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY_ITEMS = ("deploy.py", "tasks", "group_data", "templates", "inventory")


def copy_deploy_dir(target: Path) -> Path:
    """A copy of the deploy directory: the secrets the deploy keeps beside the inventory and the
    build cache it keeps in .llamafleet/ belong to this test run, not to the developer's checkout."""
    for item in DEPLOY_ITEMS:
        source = REPO / item
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target / item)
    return target


def changes(output: str) -> tuple[str, str]:
    """(success, error) columns of pyinfra's 'Grand total' line: '-' means none."""
    match = re.search(r"Grand total\s+\d+\s+(\S+)\s+(\S+)\s+(\S+)", output)
    assert match, f"no results table in pyinfra's output:\n{output[-3000:]}"
    return match.group(1), match.group(2)


def wait_for(check, seconds: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
