"""Restart order on an upgrade: every worker before the master (RPC protocol versions must match).

pyinfra (without --serial) runs operations in the order State.get_op_order derives from each
host's own list of operations. These tests run that method on hand-made lists: an operation
only the master has can come before a worker's later ones, and one every host runs (the step of
tasks/workers_first.py) holds it back. Then deploy.py is checked to include that step between
tasks/workers.py and tasks/master.py, for every host.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from types import SimpleNamespace

from pyinfra.api.state import State

from llamafleet.operations import order

REPO = Path(__file__).resolve().parents[2]


def op_order(chains: dict[str, list[str]], lines: dict[str, int]) -> list[str]:
    """pyinfra's order for hosts whose operations are `chains`; `lines` is where each
    operation is called (the tie-break)."""
    state = SimpleNamespace(
        inventory=[SimpleNamespace(name=name, op_hash_order=ops) for name, ops in chains.items()],
        op_meta={op: SimpleNamespace(op_order=(line,)) for op, line in lines.items()},
    )
    return State.get_op_order(state)


# Calls in deploy order: a shared step, three worker steps (its restart last), the master's
# restart (tasks/master.py, after tasks/workers.py), and the step every host runs between.
LINES = {"common": 1, "worker-unit": 10, "worker-enable": 11, "worker-restart": 12, "barrier": 20,
         "master-restart": 30}


def test_without_a_shared_step_the_master_can_restart_first():
    ops = op_order({"linux2": ["common", "worker-unit", "worker-enable", "worker-restart"],
                    "linux1": ["common", "master-restart"]}, LINES)
    assert ops.index("master-restart") < ops.index("worker-restart")


def test_a_step_every_host_runs_holds_the_master_back():
    ops = op_order({"linux2": ["common", "worker-unit", "worker-enable", "worker-restart", "barrier"],
                    "linux1": ["common", "barrier", "master-restart"]}, LINES)
    assert ops.index("worker-restart") < ops.index("barrier") < ops.index("master-restart")


def test_deploy_includes_the_step_between_workers_and_master():
    includes = re.findall(r'local\.include\("([^"]+)"\)', (REPO / "deploy.py").read_text())
    assert includes.index("tasks/workers.py") < includes.index("tasks/workers_first.py") < includes.index("tasks/master.py")
    assert includes[-1] == "tasks/prune.py"  # what an upgrade replaced goes once all runs again


def test_every_host_runs_the_step(monkeypatch):
    # The task file calls it without asking which host it is on: one call, whatever the role.
    calls = []
    monkeypatch.setattr(order, "all_hosts_reach", lambda **kwargs: calls.append(kwargs))
    runpy.run_path(str(REPO / "tasks" / "workers_first.py"))
    assert len(calls) == 1 and "master" in calls[0]["name"]
