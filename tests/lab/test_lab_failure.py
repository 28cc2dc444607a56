"""A `lab up` that fails half-way must leave the machine as it was."""

from __future__ import annotations

import pytest
from lab_machine import Snapshot, require_root_and_no_lab

from llamafleet.lab import LabError, state_dir, up
from llamafleet.lab import sshd

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
