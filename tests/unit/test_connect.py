"""llamafleet.connect against a real SSH server (ssh_fakes, in a thread on 127.0.0.1): host keys
and credentials, one test per `ssh_*` key, each meaning what it means to pyinfra.

Host keys: `ssh_strict_host_key_checking` yes refuses an unknown host before any credential is
sent, accept-new (pyinfra's default) records it in `ssh_known_hosts_file`, no accepts it without
recording; a changed key is always refused. Credentials: `ssh_password`, `ssh_key` with
`ssh_key_password`, only the inventory's key when one is set, `ssh_look_for_keys`.
"""

from __future__ import annotations

import paramiko
# pyinfra's CLI package patches the standard library for gevent when imported, as the inventory
# loader does: imported first, never under the SSH server's running threads.
import pyinfra_cli.inventory  # noqa: F401
import pytest
from pyinfra.api.exceptions import ConnectError, PyinfraError

from llamafleet.connect import pyinfra_ssh_host, run, ssh_client
from llamafleet.inventory_data import load_inventory
from ssh_fakes import PASSWORD, USER, server  # noqa: F401  (server: the fixture)


def connects(name: str, data: dict) -> bool:
    ssh_client(name, data).close()
    return True


def test_a_known_host_key_is_accepted_and_commands_run(server):
    client = ssh_client("board", server.data())
    try:
        assert run(client, "uname -a") == (3, "ran:uname -a", "to stderr")
    finally:
        client.close()
    assert server.log == [f"key {USER} {server.client_key.get_fingerprint().hex()}"]


# --- host keys ---------------------------------------------------------------------------------


def test_strict_checking_refuses_an_unknown_host_before_any_credential(server, tmp_path):
    other = paramiko.RSAKey.generate(2048)
    strangers = tmp_path / "strangers"
    strangers.write_text(f"198.18.0.99 {other.get_name()} {other.get_base64()}\n")  # another host only
    with pytest.raises(ConnectError, match="No host key for \\[127.0.0.1\\]"):
        ssh_client("board", server.data(ssh_known_hosts_file=str(strangers)))
    assert server.log == [], "the client offered its key to a host it does not know"
    # Positive control: the same server, known, is reached and authenticates.
    assert connects("board", server.data())
    assert len(server.log) == 1


def test_accept_new_is_the_default_and_records_the_new_host(server, tmp_path):
    fresh = tmp_path / "fresh_known_hosts"
    fresh.write_text("")
    assert connects("board", server.data(ssh_known_hosts_file=str(fresh), ssh_strict_host_key_checking=None))
    assert fresh.read_text().split() == server.known_hosts_line().split()


def test_strict_checking_no_accepts_an_unknown_host_without_recording_it(server, tmp_path):
    fresh = tmp_path / "fresh_known_hosts"
    fresh.write_text("")
    assert connects("board", server.data(ssh_known_hosts_file=str(fresh), ssh_strict_host_key_checking="no"))
    assert fresh.read_text() == ""


@pytest.mark.parametrize("policy", ["yes", "accept-new", "no"])
def test_a_changed_host_key_is_refused_whatever_the_policy(server, tmp_path, policy):
    changed = tmp_path / f"changed_{policy}"
    changed.write_text(server.known_hosts_line(paramiko.RSAKey.generate(2048)))
    with pytest.raises(ConnectError, match="SSH host key error"):
        ssh_client("board", server.data(ssh_known_hosts_file=str(changed), ssh_strict_host_key_checking=policy))
    assert server.log == []


def test_known_hosts_path_may_start_with_a_tilde(server, tmp_path):
    (tmp_path / "home/.config").mkdir(parents=True)
    (tmp_path / "home/.config/known_hosts").write_text(server.known_hosts_line())
    assert connects("board", server.data(ssh_known_hosts_file="~/.config/known_hosts"))


def test_an_unknown_strict_checking_value_is_refused(server):
    with pytest.raises(ConnectError, match="StrictHostKeyChecking=sometimes"):
        ssh_client("board", server.data(ssh_strict_host_key_checking="sometimes"))
    assert server.log == []


# --- credentials -------------------------------------------------------------------------------


def test_password_authentication(server):
    assert connects("board", server.data(ssh_key=None, ssh_password=PASSWORD, ssh_look_for_keys=False))
    assert server.log[-1] == f"password {USER}"


def test_a_wrong_password_is_an_authentication_error(server):
    with pytest.raises(ConnectError, match="Authentication error"):
        ssh_client("board", server.data(ssh_key=None, ssh_password="wrong", ssh_look_for_keys=False))
    assert f"password {USER}" in server.log


def test_a_key_with_a_passphrase(server, tmp_path):
    locked = tmp_path / "locked_key"
    server.client_key.write_private_key_file(str(locked), password="open sesame")
    assert connects("board", server.data(ssh_key=str(locked), ssh_key_password="open sesame"))
    # Without the passphrase pyinfra refuses the key by name, before connecting.
    with pytest.raises(PyinfraError, match="locked_key.*ssh_key_password"):
        ssh_client("board", server.data(ssh_key=str(locked)))
    assert len(server.log) == 1


def test_only_the_inventorys_key_is_offered(server, tmp_path):
    (tmp_path / "home/.ssh").mkdir(parents=True)
    server.client_key.write_private_key_file(str(tmp_path / "home/.ssh/id_rsa"))  # would be accepted
    stranger = tmp_path / "stranger"
    paramiko.RSAKey.generate(2048).write_private_key_file(str(stranger))
    with pytest.raises(ConnectError, match="Authentication error"):
        ssh_client("board", server.data(ssh_key=str(stranger)))
    assert len(server.log) == 1, f"more than the inventory's key was offered: {server.log}"


def test_without_ssh_key_the_users_keys_are_tried_unless_look_for_keys_is_off(server, tmp_path):
    (tmp_path / "home/.ssh").mkdir(parents=True)
    server.client_key.write_private_key_file(str(tmp_path / "home/.ssh/id_rsa"))
    assert connects("board", server.data(ssh_key=None))
    with pytest.raises(ConnectError, match="No authentication methods available"):
        ssh_client("board", server.data(ssh_key=None, ssh_look_for_keys=False))
    assert len(server.log) == 1, "a key was offered with ssh_look_for_keys off"


@pytest.mark.parametrize("setting, expected", [(None, True), (True, True), (False, False)])
def test_ssh_allow_agent_decides_whether_the_agent_is_asked(setting, expected, tmp_path):
    # No agent to run here: pyinfra's own connector shows what it passes on to paramiko.
    data = {"ssh_hostname": "127.0.0.1"} if setting is None else {"ssh_hostname": "127.0.0.1", "ssh_allow_agent": setting}
    assert pyinfra_ssh_host("board", data).connector.make_paramiko_kwargs()["allow_agent"] is expected
    # With an inventory key nothing else is offered, agent included (as `ssh -i` with IdentitiesOnly).
    key = tmp_path / "key"
    paramiko.RSAKey.generate(1024).write_private_key_file(str(key))
    assert pyinfra_ssh_host("board", {**data, "ssh_key": str(key)}).connector.make_paramiko_kwargs()["allow_agent"] is False


def test_a_password_in_the_inventory_file_reaches_the_server(server, tmp_path):
    """`status`, `diagnose` and `verify` connect with the data the inventory loader gives them:
    `ssh_password` (and the key's passphrase) from the inventory file are in it, and used."""
    locked = tmp_path / "locked_key"
    server.client_key.write_private_key_file(str(locked), password="open sesame")
    by_password = server.data(ssh_key=None, ssh_password=PASSWORD, ssh_look_for_keys=False)
    by_key = server.data(ssh_key=str(locked), ssh_key_password="open sesame")
    inventory = tmp_path / "mine.py"
    inventory.write_text(f"linux = [('pi', {by_password!r}), ('board', {by_key!r})]\n")
    hosts = {host.name: host.data for host in load_inventory(inventory)}
    assert connects("pi", hosts["pi"]) and connects("board", hosts["board"])
    assert server.log[0] == f"password {USER}" and server.log[1].startswith(f"key {USER} ")
