"""Helpers of the lab tests: what the machine looks like (to compare before `lab up` and after
`lab down`), and the preconditions every lab test module shares."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from llamafleet_lab import LabNotUp, load_state

# Mount points the lab may create on the machine (and must remove again).
MAYBE_CREATED = ("/data", "/etc/iptables", "/etc/nftables.d", "/var/log/llamafleet")


def require_root_and_no_lab() -> None:
    """Skip as non-root; refuse to run over a lab someone else brought up."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces, mounts, sshd); CI runs these tests as root")
    try:
        load_state()
    except LabNotUp:
        return
    pytest.fail("a lab is already up: the lab tests need their own (run `llamafleet lab down` first)")


def cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:  # the process ended meanwhile
        return ""


def nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _mounts() -> list[tuple[str, str]]:
    """(mount point, fs type) of every mount in the machine's mount namespace."""
    result = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        result.append((fields[4], fields[fields.index("-") + 1]))
    return sorted(result)


@dataclass
class Snapshot:
    """The parts of the machine the lab touches."""

    mounts: list[tuple[str, str]]
    links: set[str]
    netns: set[str]
    nft_tables: str
    identity: dict[str, str]
    paths: dict[str, bool]

    @classmethod
    def take(cls) -> "Snapshot":
        netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        return cls(
            mounts=_mounts(),
            links=set(os.listdir("/sys/class/net")),
            netns=netns,
            nft_tables=nft_tables(),
            identity={path: _digest(path) for path in ("/etc/passwd", "/etc/group", "/etc/shadow")},
            paths={path: os.path.lexists(path) for path in MAYBE_CREATED},
        )
