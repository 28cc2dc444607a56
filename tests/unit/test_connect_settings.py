"""llamafleet.connect: where and how it connects, one test per `ssh_*` key (ssh_fakes' server on
127.0.0.1): `ssh_config_file` Host aliases, `ssh_port` and `ssh_user` over the config's,
`ssh_paramiko_connect_kwargs` over everything, `ssh_forward_agent`, `ssh_connect_retries`; and a
mistyped key or a non-SSH inventory name is refused naming the host."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from pyinfra.api.exceptions import ConnectError, ConnectorDataTypeError

from llamafleet.connect import NotAnSshHost, pyinfra_ssh_host, run, ssh_client
from ssh_fakes import USER, ClosingListener, server  # noqa: F401  (server: the fixture)


def write_config(server, text: str) -> str:
    server.ssh_config.write_text(text)
    return str(server.ssh_config)


def test_an_ssh_config_host_alias_gives_address_port_and_user(server):
    config = write_config(server, f"Host board\n  HostName 127.0.0.1\n  Port {server.port}\n  User {USER}\n")
    # The inventory names the alias only: no ssh_hostname, ssh_port or ssh_user.
    ssh_client("board", server.data(ssh_hostname=None, ssh_port=None, ssh_user=None, ssh_config_file=config)).close()
    assert server.log == [f"key {USER} {server.client_key.get_fingerprint().hex()}"]


def test_ssh_config_known_hosts_file_applies_when_the_data_sets_none(server, tmp_path):
    fresh = tmp_path / "fresh_known_hosts"
    fresh.write_text("")
    # pyinfra's own default for ssh_strict_host_key_checking (accept-new) always reaches its
    # client, so an ssh_config StrictHostKeyChecking is not consulted; UserKnownHostsFile is.
    config = write_config(server, f"Host 127.0.0.1\n  StrictHostKeyChecking yes\n  UserKnownHostsFile {fresh}\n")
    ssh_client("board", server.data(ssh_config_file=config, ssh_known_hosts_file=None, ssh_strict_host_key_checking=None)).close()
    assert fresh.read_text().split() == server.known_hosts_line().split()


def test_ssh_port_wins_over_the_config(server):
    config = write_config(server, "Host 127.0.0.1\n  Port 1\n")
    ssh_client("board", server.data(ssh_config_file=config)).close()  # ssh_port is the server's
    with pytest.raises(ConnectError, match="Could not connect"):
        ssh_client("board", server.data(ssh_config_file=config, ssh_port=None))


def test_ssh_user_wins_over_the_config(server):
    config = write_config(server, "Host 127.0.0.1\n  User nobody\n")
    ssh_client("board", server.data(ssh_config_file=config)).close()
    assert server.log[-1].startswith(f"key {USER} ")
    with pytest.raises(ConnectError, match="Authentication error"):
        ssh_client("board", server.data(ssh_config_file=config, ssh_user=None))
    assert server.log[-1].startswith("key nobody ")


def test_paramiko_connect_kwargs_win_over_every_other_key(server):
    ssh_client("board", server.data(ssh_user="someone-else", ssh_paramiko_connect_kwargs={"username": USER})).close()
    assert server.log == [f"key {USER} {server.client_key.get_fingerprint().hex()}"]


def test_the_timeout_is_pyinfras_connect_timeout():
    assert pyinfra_ssh_host("board", {}, timeout=7).connector.make_paramiko_kwargs()["timeout"] == 7


@pytest.mark.parametrize("forward", [True, False])
def test_ssh_forward_agent_asks_the_server_to_forward(server, forward):
    client = ssh_client("board", server.data(ssh_forward_agent=forward))
    try:
        assert run(client, "true")[0] == 3  # the server has handled every request sent before
    finally:
        client.close()
    assert server.wait_for_log("forward-agent", seconds=1 if forward else 0.2) is forward


def test_ssh_connect_retries_tries_again_then_gives_up():
    listener = ClosingListener()
    data = {"ssh_hostname": "127.0.0.1", "ssh_port": listener.port, "ssh_connect_retries": 2,
            "ssh_connect_retry_min_delay": 0.01, "ssh_connect_retry_max_delay": 0.02}
    try:
        with pytest.raises(ConnectError):
            ssh_client("board", data, timeout=5)
        assert listener.accepted == 3
    finally:
        listener.close()


def test_a_mistyped_ssh_key_is_refused_naming_host_and_key():
    with pytest.raises(ConnectorDataTypeError, match="^board: .*ssh_port"):
        pyinfra_ssh_host("board", {"ssh_port": "8022"})


def test_an_inventory_name_for_another_connector_is_refused():
    with pytest.raises(NotAnSshHost, match="^@local: .*LocalConnector"):
        pyinfra_ssh_host("@local", {})
    assert pyinfra_ssh_host("@ssh/10.0.0.2", {}).connector.make_paramiko_kwargs()["hostname"] == "10.0.0.2"


def test_threads_connect_at_once(server):
    """`llamafleet status` connects to every host at once, one thread each."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: _run_once(server.data()), range(6)))
    assert results == [(3, "ran:id", "to stderr")] * 6


def _run_once(data: dict) -> tuple[int, str, str]:
    client = ssh_client("board", data)
    try:
        return run(client, "id")
    finally:
        client.close()
