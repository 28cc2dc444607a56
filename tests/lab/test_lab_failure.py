"""A `lab up` that fails half-way must leave the machine as it was."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from lab_machine import Snapshot, require_root_and_no_lab

from llamafleet_lab import LabError, state_dir, up
from llamafleet_lab import network, sshd

pytestmark = pytest.mark.lab


def test_a_failed_up_cleans_up_after_itself(monkeypatch):
    require_root_and_no_lab()
    before = Snapshot.take()
    # Every host's init fails to start its sshd, after namespaces, mounts and storage exist.
    monkeypatch.setattr(sshd, "SSHD", "/nonexistent/sshd")
    with pytest.raises(LabError, match="failed to start") as failure:
        up(phones=1, linux=1)
    assert "/nonexistent/sshd" in str(failure.value)
    assert Snapshot.take() == before
    assert not state_dir().exists()


def test_a_state_dir_the_hosts_would_hide_is_refused(monkeypatch, tmp_path):
    require_root_and_no_lab()
    before = Snapshot.take()
    monkeypatch.setenv("LLAMAFLEET_LAB_DIR", "/tmp/llamafleet-lab-test")
    with pytest.raises(LabError, match="below /tmp"):
        up(phones=1, linux=1)
    assert Snapshot.take() == before


def test_down_removes_veths_of_a_namespace_the_kernel_has_not_freed_yet():
    """A dead host's namespace is freed by the kernel later, in a work queue (a CI run saw two
    veths outlive `lab down` that way). A process still inside a namespace holds it the same
    way, deterministically: the veths must go all the same."""
    require_root_and_no_lab()
    before = Snapshot.take()
    netns, veth = network.NETNS_PREFIX + "held", network.VETH_PREFIX + "held"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    holder = None
    try:
        subprocess.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns], check=True)
        holder = subprocess.Popen(["ip", "netns", "exec", netns, "sleep", "60"])
        _wait_until_in_other_netns(holder.pid)
        assert network.destroy_network() == []
        assert veth not in os.listdir("/sys/class/net")
        assert network.leftovers() == []
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        subprocess.run(["ip", "link", "delete", veth], capture_output=True)
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True)
    assert Snapshot.take() == before


def _wait_until_in_other_netns(pid: int) -> None:
    ours = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + 5
    while os.readlink(f"/proc/{pid}/ns/net") == ours:
        assert time.monotonic() < deadline, "the holder never entered its namespace"
        time.sleep(0.01)
