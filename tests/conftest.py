"""Options shared by the test tree.

`--inventory` belongs to the testinfra suite in tests/verify (it checks a deployed cluster); a
plain `pytest tests` run has no cluster to point it at, so that folder is collected only when
an inventory is given (the integration test runs it against the lab through `llamafleet verify`).
"""

from __future__ import annotations

import os
from pathlib import Path

VERIFY_DIR = Path(__file__).parent / "verify"


def pytest_addoption(parser):
    parser.addoption("--inventory", action="store", help="pyinfra inventory of the cluster tests/verify checks")
    parser.addoption("--group-data", action="store", default=None, help="group data directory (default: the repo's)")


def pytest_ignore_collect(collection_path, config):
    if Path(collection_path) == VERIFY_DIR:
        return not (config.getoption("--inventory") or os.environ.get("LLAMAFLEET_INVENTORY"))
    return None
