"""`llamafleet remove`: the pyinfra command it runs (remove.py from the checkout, the inventory's
absolute path, --limit and --dry passed through), and the deploy file it runs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llamafleet import cli, remove_cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def inventory(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text('hosts = ["board"]\n')
    return path


def test_the_command_runs_remove_py_from_the_checkout(inventory):
    argv, cwd = remove_cli.pyinfra_command(str(inventory), checkout=REPO)
    assert argv == [sys.executable, "-m", "pyinfra", "-y", str(inventory.resolve()), "remove.py"]
    assert cwd == REPO


def test_limit_and_dry_are_passed_through(inventory):
    argv, _ = remove_cli.pyinfra_command(str(inventory), ["phone2", "linux2"], dry=True, checkout=REPO)
    # --dry without -y: pyinfra prints the detected changes only when not told "yes".
    assert "-y" not in argv and "--dry" in argv
    assert argv[argv.index("remove.py") + 1:] == ["--limit", "phone2", "--limit", "linux2"]


def test_a_relative_inventory_becomes_absolute(inventory, monkeypatch):
    monkeypatch.chdir(inventory.parent)
    argv, _ = remove_cli.pyinfra_command("mine.py", checkout=REPO)
    assert str(inventory.resolve()) in argv


def test_bad_arguments_are_said_before_anything_runs(inventory, tmp_path, capsys, monkeypatch):
    with pytest.raises(remove_cli.RemoveError, match="nope.py: no such inventory file"):
        remove_cli.pyinfra_command(str(tmp_path / "nope.py"), checkout=REPO)
    with pytest.raises(remove_cli.RemoveError, match="remove.py not found"):
        remove_cli.pyinfra_command(str(inventory), checkout=tmp_path)
    monkeypatch.setattr(remove_cli.subprocess, "call", lambda *a, **k: pytest.fail("ran pyinfra"))
    assert cli.main(["remove", str(tmp_path / "nope.py")]) == 2
    assert "llamafleet remove:" in capsys.readouterr().err


def test_the_cli_runs_pyinfra_and_returns_its_code(inventory, monkeypatch):
    calls = []

    def call(argv, cwd):
        calls.append((argv, cwd))
        return 3

    monkeypatch.setattr(remove_cli, "CHECKOUT", REPO)
    monkeypatch.setattr(remove_cli.subprocess, "call", call)
    assert cli.main(["remove", str(inventory), "--limit", "phone2", "--dry"]) == 3
    argv, cwd = calls[0]
    assert argv[-4:] == [str(inventory.resolve()), "remove.py", "--limit", "phone2"] and "--dry" in argv
    assert cwd == REPO


def _includes(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "include"]


def test_remove_py_includes_every_removal_task_services_first_base_last():
    included = _includes(REPO / "remove.py")
    on_disk = sorted(f"tasks/remove/{path.name}" for path in (REPO / "tasks" / "remove").glob("*.py"))
    assert sorted(included) == on_disk
    assert included[0] == "tasks/remove/services.py" and included[-1] == "tasks/remove/base.py"


def test_the_deploy_marks_its_base_before_the_first_task_that_writes_into_it():
    included = _includes(REPO / "deploy.py")
    assert included.index("tasks/base.py") < included.index("tasks/source.py")


def test_remove_py_loads_and_prepares_every_step_without_changing_anything(tmp_path):
    """`pyinfra --dry @local remove.py`: every task file loads and every operation reads its
    facts (read-only commands) on this machine; --dry runs none of the operations."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "tunnel_ed25519.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE/x+eQw llamafleet-tunnel\n")
    base = tmp_path / "lf"
    args = [str(Path(sys.executable).parent / "pyinfra"), "--dry", "@local", "--data", f"llamafleet_dir={base}",
            "remove.py"]
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "LLAMAFLEET_SECRETS": str(secrets)})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for step in ("services (runit)", "services (systemd)", "Tunnel key no longer accepted", "API key",
                 "Firewall: llamafleet's rules in every backend", "sysctl drop-in", "Service user",
                 f"llamafleet's directory {base}"):
        assert step in output, step
    assert not base.exists()
