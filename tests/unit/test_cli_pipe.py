"""`llamafleet plan --json | head -1`: when the reader of the output goes away early, the
command ends quietly (exit 1, nothing on stderr), as Python's documentation advises for
SIGPIPE, instead of a BrokenPipeError traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INVENTORIES = REPO / "tests" / "data" / "inventories"
PLAN = ["plan", str(INVENTORIES / "good.py"), "--facts", str(INVENTORIES / "good.facts.json")]


def run_with_reader_gone(args: list[str]) -> tuple[int, str]:
    """Run `llamafleet ARGS` with its stdout a pipe whose reader closed before the command
    wrote anything (the command spends a second importing first): every write meets EPIPE."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "lab"), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-m", "llamafleet.cli", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, cwd=REPO)
    child.stdout.close()
    err = child.stderr.read().decode()
    return child.wait(timeout=60), err


@pytest.mark.parametrize("extra", [["--json"], []], ids=["json", "table"])
def test_plan_into_a_closed_pipe_ends_without_a_traceback(extra):
    code, err = run_with_reader_gone([*PLAN, *extra])
    assert err == "" and code == 1


def test_plan_into_head_prints_the_first_line_only():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "lab")])}
    command = f"{sys.executable} -m llamafleet.cli {' '.join(PLAN)} --json | head -1"
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert done.stdout == "{\n" and done.stderr == ""


def test_status_json_into_a_closed_pipe_ends_without_a_traceback(tmp_path):
    """`status` on hosts that do not answer (a closed local port) still prints its JSON: the
    hosts are DOWN. Its reader is gone: no traceback (the SSH library may log its own line)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    login = f'"ssh_hostname": "127.0.0.1", "ssh_port": {port}, "ssh_look_for_keys": False, "ssh_allow_agent": False'
    inventory = tmp_path / "inv.py"
    inventory.write_text(f'hosts = [("m", {{{login}, "llama_role": "master", "model_size_mb": 300, "ram_mb": 4000}}), '
                         f'("w", {{{login}, "ram_mb": 4000}})]\n')
    code, err = run_with_reader_gone(["status", str(inventory), "--json"])
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code == 1
