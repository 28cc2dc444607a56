"""Hosts the deploy reaches through sudo, and how llamafleet's read-only commands run there.

A Linux host logged into as an ordinary user (a Pi's `alice`) is deployed as root through sudo
when its data says `_sudo = True`: pyinfra then runs every fact and operation there with sudo.
What `llamafleet status` and `verify` read afterwards is what that deploy wrote as root, some
of it readable by root only (the API key, runit's supervise directories, iptables and nftables
rules, which also live in /usr/sbin, off an ordinary user's PATH). So on those hosts they run
their commands the way the deploy does, and on every other host as they are.

The wrapping is pyinfra's own (`make_unix_command`: `sudo -H -n [-u USER] sh -c '...'`): the
same command line the deploy runs. `-n` never prompts: a sudo that asks for a password fails at
once with its own message ("a password is required") instead of hanging; llamafleet's commands
do not type `_sudo_password`, so such a host needs NOPASSWD for them.
"""

from __future__ import annotations

from typing import Any, Mapping


def uses_sudo(data: Mapping[str, Any]) -> bool:
    """True when the deploy runs this host's commands through sudo (`_sudo` in its data)."""
    return bool(data.get("_sudo"))


def sudo_command(command: str, user: str | None = None) -> str:
    """`command` as pyinfra runs it with `_sudo` (and `_sudo_user`): sudo -H -n, through sh."""
    from pyinfra.connectors.util import make_unix_command

    return make_unix_command(command, _sudo=True, _sudo_user=user or None, _shell_executable="sh").get_raw_value()


def as_deployed(command: str, data: Mapping[str, Any]) -> str:
    """`command` to run on the host with this data as its deploy runs commands: through sudo
    where the data says `_sudo`, else unchanged."""
    return sudo_command(command, data.get("_sudo_user")) if uses_sudo(data) else command
