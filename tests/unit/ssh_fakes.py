"""A real SSH server in a thread on 127.0.0.1 (paramiko's server side), for the connection tests.

It accepts USER with one public key or with PASSWORD, logs every credential it is offered (so a
test can see what the client sent, and that it sent nothing to a host it refused), logs agent
forwarding requests, and answers `exec` with "ran:<command>" on stdout, "to stderr" on stderr
and exit status 3.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import paramiko
import pytest

USER = "tester"
PASSWORD = "s3cret pass"


class _Server(paramiko.ServerInterface):
    def __init__(self, allowed: paramiko.PKey, log: list[str]):
        self.allowed, self.log = allowed, log

    def get_allowed_auths(self, username):
        return "publickey,password"

    def check_auth_publickey(self, username, key):
        self.log.append(f"key {username} {key.get_fingerprint().hex()}")
        if username == USER and key.get_fingerprint() == self.allowed.get_fingerprint():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_auth_password(self, username, password):
        self.log.append(f"password {username}")
        return paramiko.AUTH_SUCCESSFUL if (username, password) == (USER, PASSWORD) else paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_forward_agent_request(self, channel):
        self.log.append("forward-agent")
        return True

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
        # The host known, an empty ssh_config: nothing of the user's own leaks into a test.
        self.known_hosts = tmp / "known_hosts"
        self.known_hosts.write_text(self.known_hosts_line())
        self.ssh_config = tmp / "ssh_config"
        self.ssh_config.write_text("")
        threading.Thread(target=self._serve, daemon=True).start()

    def data(self, **keys) -> dict:
        """Inventory data that reaches this server with its key and checks its host key strictly;
        `keys` replace or add keys (None removes one)."""
        data = {"ssh_hostname": "127.0.0.1", "ssh_port": self.port, "ssh_user": USER, "ssh_key": str(self.key_file),
                "ssh_config_file": str(self.ssh_config), "ssh_known_hosts_file": str(self.known_hosts),
                "ssh_strict_host_key_checking": "yes", **keys}
        return {key: value for key, value in data.items() if value is not None}

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

    def wait_for_log(self, entry: str, seconds: float = 5) -> bool:
        """Whether `entry` reaches the log (requests without a reply arrive asynchronously)."""
        deadline = time.monotonic() + seconds
        while entry not in self.log:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self):
        self.listener.close()
        for transport in self.transports:
            transport.close()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """An SshServer, with HOME and the SSH agent of the user running the tests out of reach."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    ssh_server = SshServer(tmp_path)
    yield ssh_server
    ssh_server.close()


class ClosingListener:
    """A TCP port that accepts and at once closes every connection: an sshd that drops the
    client before its banner. Counts the connections it was offered."""

    def __init__(self):
        self.accepted = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def close(self):
        self.listener.close()
