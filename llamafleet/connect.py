"""SSH connections to inventory hosts from the controller, made by pyinfra's own SSH connector.

Used by `llamafleet diagnose`, `doctor`, `status` and the testinfra suite. Every `ssh_*` data key
means here what it means to `pyinfra INVENTORY deploy.py` because pyinfra does the connecting:
the host's data goes into a one-host pyinfra `Inventory`, and `SSHConnector.connect()` (retries,
key loading with `ssh_key_password`, `ssh_password`, agent and key search, `ssh_config_file`
with its Host aliases and ProxyJump, `ssh_known_hosts_file`, `ssh_strict_host_key_checking`
(pyinfra's default: accept-new), `ssh_forward_agent`, `ssh_paramiko_connect_kwargs`) opens the
paramiko client this module hands back. No settings are mapped by hand, so none can drift.
`ssh_file_transfer_protocol` has nothing to act on: these connections transfer no files.
"""

from __future__ import annotations

from typing import Any, Mapping

import paramiko


class NotAnSshHost(ValueError):
    """The inventory name picks a pyinfra connector other than SSH (`@local`, `@docker/...`)."""


def pyinfra_ssh_host(name: str, data: Mapping[str, Any], timeout: float = 15):
    """The pyinfra `Host` that `pyinfra` would make for inventory host `name` with this (merged)
    data, in a state of its own, not yet connected. `timeout` is pyinfra's CONNECT_TIMEOUT
    (`ssh_paramiko_connect_kwargs` may still override it, as in pyinfra)."""
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.exceptions import ConnectorDataTypeError
    from pyinfra.connectors.ssh import SSHConnector

    inventory = Inventory(([(name, dict(data))], {}))
    try:
        State(inventory, Config(CONNECT_TIMEOUT=timeout))
    except ConnectorDataTypeError as error:  # a mistyped ssh_* value: say which host has it
        raise ConnectorDataTypeError(f"{name}: {error}") from None
    host = inventory.get_host(name)
    if not isinstance(host.connector, SSHConnector):
        raise NotAnSshHost(f"{name}: llamafleet reaches hosts over SSH, and this inventory name selects "
                           f"pyinfra's {type(host.connector).__name__}")
    return host


def ssh_client(name: str, data: Mapping[str, Any], timeout: float = 15) -> paramiko.SSHClient:
    """A connected paramiko client to inventory host `name`, connected exactly as pyinfra connects.

    Raises pyinfra's ConnectError (unreachable, authentication, host key refused) or PyinfraError
    (an ssh_key that cannot be read or needs ssh_key_password); the caller closes the client.
    """
    host = pyinfra_ssh_host(name, data, timeout)
    host.connect(show_errors=False, raise_exceptions=True)
    return host.connector.client


def run(client: paramiko.SSHClient, command: str, timeout: float = 60) -> tuple[int, str, str]:
    """Run a command; (exit code, stdout, stderr)."""
    _, stdout, stderr = client.exec_command(command, timeout=timeout)
    out, err = stdout.read().decode(errors="replace"), stderr.read().decode(errors="replace")
    return stdout.channel.recv_exit_status(), out, err


def upload_mbit(client: paramiko.SSHClient, limit_bytes: int, seconds: float | None = None) -> float:
    """Megabits per second of a bounded upload over SSH to `cat > /dev/null` on the host: up
    to `limit_bytes`, or fewer when `seconds` have passed (a slow link is not waited for). The
    time runs until the host has read the last byte (its `cat` exited)."""
    import time

    started = time.monotonic()
    stdin, stdout, _ = client.exec_command("cat > /dev/null", timeout=120)
    block = bytes(1024 * 1024)
    sent = 0
    while sent < limit_bytes and (seconds is None or time.monotonic() - started < seconds):
        stdin.write(block)
        sent += len(block)
    stdin.channel.shutdown_write()
    stdout.channel.recv_exit_status()
    return sent * 8 / (time.monotonic() - started) / 1e6
