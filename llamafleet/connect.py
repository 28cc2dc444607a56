"""SSH connections to inventory hosts from the controller, the way pyinfra makes them.

Used by `llamafleet diagnose` and the testinfra suite: the host's `ssh_*` data decides address,
port, user and key; the host key is checked against `ssh_known_hosts_file` when the data names
one (the lab does), else against the user's known hosts with a warning for unknown ones.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import paramiko


def ssh_target(name: str, data: Mapping[str, Any]) -> tuple[str, int, str]:
    return data.get("ssh_hostname") or name, int(data.get("ssh_port") or 22), data.get("ssh_user") or "root"


def ssh_client(name: str, data: Mapping[str, Any], timeout: float = 15) -> paramiko.SSHClient:
    address, port, user = ssh_target(name, data)
    client = paramiko.SSHClient()
    known_hosts = data.get("ssh_known_hosts_file")
    if known_hosts:
        client.load_host_keys(os.path.expanduser(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        client.load_system_host_keys()
        client.set_missing_host_key_policy(paramiko.WarningPolicy())
    key = data.get("ssh_key")
    client.connect(address, port=port, username=user, key_filename=os.path.expanduser(key) if key else None,
                   timeout=timeout, allow_agent=not key, look_for_keys=not key)
    return client


def run(client: paramiko.SSHClient, command: str, timeout: float = 60) -> tuple[int, str, str]:
    """Run a command; (exit code, stdout, stderr)."""
    _, stdout, stderr = client.exec_command(command, timeout=timeout)
    out, err = stdout.read().decode(errors="replace"), stderr.read().decode(errors="replace")
    return stdout.channel.recv_exit_status(), out, err
