"""Shared pieces of the benchmarks: timing, the lab, deploys, tables and JSON results.

Every benchmark runs on the lab (root), measures side by side in one run, reports medians of
the runs and ratios, prints a table and writes bench/results/<name>.json with the machine it
ran on.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = REPO / "bench" / "results"
INVENTORY = "inventory/lab.py"


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def require_root() -> None:
    if os.geteuid() != 0:
        sys.exit("benchmarks run on the lab: run as root")


def timed(argv: list[str], cwd: Path | None = None, env: dict | None = None, timeout: int = 7200):
    started = time.monotonic()
    result = subprocess.run(argv, cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    return result, time.monotonic() - started


def deploy_dir(name: str) -> Path:
    """A private copy of the deploy (its secrets beside the inventory and its .llamafleet/ build
    cache stay apart)."""
    target = Path("/tmp") / f"llamafleet-bench-{name}"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    for item in ("deploy.py", "tasks", "group_data", "templates", "inventory"):
        source = REPO / item
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target / item)
    return target


def deploy(workdir: Path, *extra: str, inventory: str = INVENTORY):
    result, seconds = timed([str(BIN / "pyinfra"), "-y", inventory, "deploy.py", *extra], cwd=workdir)
    if result.returncode != 0:
        sys.exit(f"deploy of {inventory} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return result, seconds


def no_changes(output: str) -> bool:
    match = re.search(r"Grand total\s+\d+\s+(\S+)\s+(\S+)", output)
    return bool(match) and match.group(1) == "-" and match.group(2) == "-"


def compiles_in(output_or_log: str) -> int:
    return output_or_log.count("llamafleet: compile start")


def lab(phones: int = 2, linux: int = 2, profile: str = "none"):
    """A fresh lab; `profile` gives hosts their speeds (llamafleet_lab.profiles.PROFILES)."""
    from llamafleet_lab import down, load_state, up

    down()
    up(phones=phones, linux=linux, profile=profile)
    return load_state()


def lab_down() -> None:
    from llamafleet_lab import down

    down()


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(name: str, rows: list[tuple[str, str]], data: dict) -> None:
    width = max(len(label) for label, _ in rows)
    print(f"\n== {name}")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps({"benchmark": name, "machine": machine(), **data}, indent=2) + "\n")
    print(f"  -> {out.relative_to(REPO)}")
