"""The verify suite's testinfra hosts (llamafleet.testinfra_ssh) connect through pyinfra's SSH
connector: keys testinfra's own paramiko backend has no place for (a password, a known_hosts
file with strict checking) decide the connection, and testinfra runs commands over it."""

from __future__ import annotations

import pytest
from pyinfra.api.exceptions import ConnectError

from llamafleet.testinfra_ssh import verify_host
from ssh_fakes import PASSWORD, USER, server  # noqa: F401  (server: the fixture)


def test_commands_run_over_a_password_connection(server):
    host = verify_host("board", server.data(ssh_key=None, ssh_password=PASSWORD, ssh_look_for_keys=False))
    result = host.run("uname -a")
    assert (result.rc, result.stdout, result.stderr) == (3, "ran:uname -a", "to stderr")
    assert server.log == [f"password {USER}"]
    assert host.backend.get_hostname() == "board"


def test_strict_host_key_checking_reaches_testinfra(server, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    host = verify_host("board", server.data(ssh_known_hosts_file=str(empty)))
    with pytest.raises(ConnectError, match="No host key"):
        host.run("true")
    assert server.log == []


def test_the_connection_is_made_once_and_reused(server):
    host = verify_host("board", server.data())
    host.run("one")
    host.run("two")
    assert len(server.log) == 1, f"authenticated more than once: {server.log}"
