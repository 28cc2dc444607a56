"""llamafleet.inventory_data.deployed_inventory_path: which inventory file a `pyinfra ... deploy.py`
run loaded, read from its command line with pyinfra's own parser and trusted only when the loaded
inventory has the group pyinfra names after that file; and the deploy's secrets found beside it."""

from __future__ import annotations

import sys
from pathlib import Path

import pyinfra
import pytest
from pyinfra.api import State
from pyinfra.context import ctx_inventory, ctx_state

from llamafleet.inventory_data import deployed_inventory_path, make_pyinfra_inventory
from llamafleet.serving import secrets as lf_secrets

INVENTORY = 'linux = [("homeserver", {"llama_role": "master"}), "board"]\n'


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """inventory/mine.py loaded as pyinfra loads it, the working directory above it."""
    (tmp_path / "inventory").mkdir()
    path = tmp_path / "inventory" / "mine.py"
    path.write_text(INVENTORY)
    (tmp_path / "inventory" / "other.py").write_text(INVENTORY)
    monkeypatch.chdir(tmp_path)
    with ctx_state.use(State()):
        yield path, make_pyinfra_inventory(path)


@pytest.mark.parametrize("argv", [
    ["inventory/mine.py", "deploy.py"],
    ["-y", "--limit", "board", "inventory/mine.py", "deploy.py"],
    ["--data", "llama_role=worker", "-vv", "--dry", "inventory/mine.py", "deploy.py"],
    ["-y", "inventory/mine.py", "deploy.py", "--serial"],
])
def test_the_inventory_file_on_pyinfras_command_line(cluster, argv):
    path, inventory = cluster
    assert deployed_inventory_path(argv, inventory) == path.resolve()


@pytest.mark.parametrize("argv", [
    ["homeserver,board", "deploy.py"],  # hosts on the command line: no inventory file
    ["inventory/other.py", "deploy.py"],  # another file than the one loaded (no group `other`)
    ["inventory/missing.py", "deploy.py"],
    ["tests/unit", "-q", "-x", "-p", "no:cacheprovider"],  # pytest's arguments, not pyinfra's
    [],
])
def test_anything_else_is_no_inventory_file(cluster, argv):
    _, inventory = cluster
    assert deployed_inventory_path(argv, inventory) is None


def test_outside_pyinfras_cli_there_is_no_deploy(cluster, monkeypatch):
    _, inventory = cluster
    monkeypatch.setattr(pyinfra, "is_cli", False)
    monkeypatch.setattr(sys, "argv", ["pyinfra", "inventory/mine.py", "deploy.py"])
    assert deployed_inventory_path(inventory=inventory) is None


def test_a_deploy_keeps_its_secrets_beside_its_inventory(cluster, monkeypatch, tmp_path):
    """What tasks/master.py gets from `api_key_file()` with no argument, run as
    `pyinfra --chdir <checkout> <abs path>/mine.py deploy.py` from any directory."""
    path, inventory = cluster
    monkeypatch.delenv("LLAMAFLEET_SECRETS", raising=False)
    monkeypatch.setattr(pyinfra, "is_cli", True)
    monkeypatch.setattr(sys, "argv", ["pyinfra", "-y", str(path), "deploy.py"])
    (tmp_path / "checkout").mkdir()
    monkeypatch.chdir(tmp_path / "checkout")
    with ctx_inventory.use(inventory):
        key_file = lf_secrets.api_key_file()
    assert key_file == path.parent / ".llamafleet" / "secrets" / "api-key"
    assert lf_secrets.api_key(path) == key_file.read_text().strip(), "`llamafleet complete` reads another key"
    assert not (tmp_path / "checkout" / ".llamafleet").exists()


def test_hosts_on_the_command_line_keep_secrets_in_the_current_directory(cluster, monkeypatch, tmp_path):
    _, inventory = cluster
    monkeypatch.delenv("LLAMAFLEET_SECRETS", raising=False)
    monkeypatch.setattr(pyinfra, "is_cli", True)
    monkeypatch.setattr(sys, "argv", ["pyinfra", "homeserver,board", "deploy.py"])
    with ctx_inventory.use(inventory):
        assert lf_secrets.secrets_location() == Path.cwd() / ".llamafleet" / "secrets"
