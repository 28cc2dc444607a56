"""testinfra hosts for the verify suite (llamafleet/verify_suite), connected the way pyinfra connects.

testinfra's paramiko backend builds its own client from a hostspec and an ssh_config, and has no
place for most `ssh_*` keys (password, key passphrase, known_hosts file, host key policy, connect
kwargs, retries). So the backend here keeps testinfra's command running (and its one reconnect
when a connection drops) and takes its client from llamafleet.connect, that is from pyinfra's
own SSH connector: no second reading of the data keys. On a host whose data says `_sudo`, every
command runs through sudo, as the deploy ran it there (llamafleet.privilege), by testinfra's own
sudo switch, with pyinfra's sudo command line. Imports testinfra, a test dependency.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import paramiko
from testinfra.backend.paramiko import ParamikoBackend
from testinfra.host import Host

from llamafleet.connect import ssh_client
from llamafleet.privilege import sudo_command, uses_sudo


class PyinfraSshBackend(ParamikoBackend):
    """testinfra's paramiko backend with a client from pyinfra's SSH connector."""

    def __init__(self, name: str, data: Mapping[str, Any], timeout: float = 15):
        # testinfra's sudo and sudo_user: every command of a `_sudo` host goes through sudo.
        super().__init__(name, sudo=uses_sudo(data), sudo_user=data.get("_sudo_user") or None)
        self.hostname = name  # the inventory name, in test ids and get_hostname()
        self.data, self.connect_timeout = dict(data), timeout

    @functools.cached_property
    def client(self) -> paramiko.SSHClient:
        return ssh_client(self.hostname, self.data, self.connect_timeout)

    def get_sudo_command(self, command: str, sudo_user: str | None) -> str:
        """pyinfra's sudo command line (sudo -H -n ... sh -c), never testinfra's prompting one:
        also what `with host.sudo():` runs."""
        return sudo_command(command, sudo_user)


def verify_host(name: str, data: Mapping[str, Any], timeout: float = 15) -> Host:
    """A testinfra Host for inventory host `name` with its merged data; connects on first use."""
    backend = PyinfraSshBackend(name, data, timeout)
    host = Host(backend)
    backend.set_host(host)
    return host
