"""llamafleet.connect against a real SSH server (paramiko's, in a thread on 127.0.0.1): with
`ssh_known_hosts_file` an unknown or changed host key is refused before any credential is sent,
a known one is accepted; the inventory's key is the one offered; commands return their status
and both streams."""

from __future__ import annotations

import socket
import threading
import warnings
from pathlib import Path

import paramiko
import pytest

from llamafleet.connect import run, ssh_client, ssh_target

USER = "tester"


class _Server(paramiko.ServerInterface):
    """Accepts one public key for USER, opens sessions, and answers `exec` with what it ran."""

    def __init__(self, allowed: paramiko.PKey, log: list[str]):
        self.allowed, self.log = allowed, log

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        self.log.append(f"auth {username} {key.get_fingerprint().hex()}")
        if username == USER and key.get_fingerprint() == self.allowed.get_fingerprint():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        # All sent from the transport's thread, ahead of the request's reply: a close from
        # another thread could overtake the reply and the client would see "Channel closed".
        channel.sendall(b"ran:" + command)
        channel.sendall_stderr(b"to stderr")
        channel.send_exit_status(3)
        channel.shutdown_write()
        return True


class SshServer:
    def __init__(self, tmp: Path):
        self.host_key = paramiko.RSAKey.generate(2048)
        self.client_key = paramiko.RSAKey.generate(2048)
        self.key_file = tmp / "id_rsa"
        self.client_key.write_private_key_file(str(self.key_file))
        self.log: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.transports: list[paramiko.Transport] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(connection)
            transport.add_server_key(self.host_key)
            self.transports.append(transport)
            try:
                transport.start_server(server=_Server(self.client_key, self.log))
            except (paramiko.SSHException, EOFError, OSError):
                continue

    def known_hosts_line(self, key: paramiko.PKey | None = None) -> str:
        key = key or self.host_key
        return f"[127.0.0.1]:{self.port} {key.get_name()} {key.get_base64()}\n"

    def data(self, known_hosts: Path | None = None, key_file: Path | None = None) -> dict:
        data = {"ssh_hostname": "127.0.0.1", "ssh_port": self.port, "ssh_user": USER, "ssh_key": str(key_file or self.key_file)}
        if known_hosts:
            data["ssh_known_hosts_file"] = str(known_hosts)
        return data

    def close(self):
        self.listener.close()
        for transport in self.transports:
            transport.close()


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no user known_hosts or keys leak in
    (tmp_path / "home").mkdir()
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    ssh_server = SshServer(tmp_path)
    yield ssh_server
    ssh_server.close()


def test_a_known_host_key_is_accepted_and_commands_run(server, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(server.known_hosts_line())
    client = ssh_client("board", server.data(known_hosts))
    try:
        assert run(client, "uname -a") == (3, "ran:uname -a", "to stderr")
    finally:
        client.close()
    assert len(server.log) == 1 and server.log[0].startswith(f"auth {USER} ")


def test_an_unknown_host_is_refused_before_any_credential(server, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    other = paramiko.RSAKey.generate(2048)
    known_hosts.write_text(f"198.18.0.99 {other.get_name()} {other.get_base64()}\n")  # another host only
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        ssh_client("board", server.data(known_hosts))
    assert server.log == [], "the client offered its key to a host it does not know"
    # Positive control: the same server, once known, is reached and authenticates.
    known_hosts.write_text(server.known_hosts_line())
    ssh_client("board", server.data(known_hosts)).close()
    assert len(server.log) == 1


def test_a_changed_host_key_is_refused(server, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(server.known_hosts_line(paramiko.RSAKey.generate(2048)))
    with pytest.raises(paramiko.BadHostKeyException):
        ssh_client("board", server.data(known_hosts))
    assert server.log == []


def test_known_hosts_path_may_start_with_a_tilde(server, tmp_path):
    (tmp_path / "home/.config").mkdir(parents=True)
    (tmp_path / "home/.config/known_hosts").write_text(server.known_hosts_line())
    data = {**server.data(), "ssh_known_hosts_file": "~/.config/known_hosts"}
    ssh_client("board", data).close()


def test_without_known_hosts_file_an_unknown_host_is_accepted_with_a_warning(server):
    with pytest.warns(UserWarning, match="Unknown ssh-rsa host key"):
        client = ssh_client("board", server.data())
    client.close()


def test_only_the_inventorys_key_is_offered(server, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(server.known_hosts_line())
    stranger = tmp_path / "stranger"
    paramiko.RSAKey.generate(2048).write_private_key_file(str(stranger))
    # paramiko re-raises its last failure (trying the file as other key types), an SSHException.
    with pytest.raises(paramiko.SSHException):
        ssh_client("board", server.data(known_hosts, key_file=stranger))
    assert len(server.log) == 1, f"more than the inventory's key was offered: {server.log}"


def test_ssh_target_defaults():
    assert ssh_target("board", {}) == ("board", 22, "root")
    assert ssh_target("board", {"ssh_hostname": "10.0.0.2", "ssh_port": "8022", "ssh_user": "u0_a201"}) == (
        "10.0.0.2", 8022, "u0_a201",
    )


def test_no_warning_for_a_known_host(server, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(server.known_hosts_line())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ssh_client("board", server.data(known_hosts)).close()
