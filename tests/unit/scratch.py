"""Shared stand-ins for unit tests: a scratch network namespace (a real kernel's iptables and
nftables, thrown away after) and a pyinfra Host whose facts come from a dict."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

needs_root_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2 for a scratch netns"
)


def in_scratch_netns(script: str) -> subprocess.CompletedProcess:
    """Run `sh -c script` in a new network namespace, deleted afterwards."""
    name = f"lf-test-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        return subprocess.run(
            ["ip", "netns", "exec", name, "sh", "-c", script], capture_output=True, text=True, check=False, timeout=60
        )
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


class FakeHost:
    """Stands in for a pyinfra Host: facts come from a dict (by fact class name), noops are recorded."""

    def __init__(self, name: str, facts: dict):
        self.name = name
        self.facts = facts
        self.noops: list[str] = []
        self.data = {}
        self.state = None

    def get_fact(self, cls, *args, **kwargs):
        return self.facts[cls.__name__]

    def noop(self, text: str) -> None:
        self.noops.append(text)
