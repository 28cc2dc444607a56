"""The cluster plan is made once per deploy although pyinfra loads every host's tasks at once.

pyinfra runs the task files of all hosts concurrently (one greenlet each); each asks for the
plan. Reading every host's facts from every greenlet opened N x N SSH channels at once and sshd
refused them on an 8-host lab (MaxSessions). Here fact reads yield to the other greenlets, as
real SSH reads do, and are counted.
"""

from __future__ import annotations

import gevent
import pytest
from pyinfra.context import ctx_inventory

from llamafleet.plan import PlanError
from llamafleet.serving import cluster

NAMES = [f"host{n}" for n in range(8)]


class FakeInventory:
    def get_host(self, name):
        return name


@pytest.fixture
def counted(monkeypatch):
    reads: list[str] = []
    loaded = FakeInventory()
    monkeypatch.setattr(cluster, "hosts_from_inventory", lambda inv: [
        type("H", (), {"name": name, "data": {}, "groups": ()})() for name in NAMES])
    monkeypatch.setattr(cluster, "model_size_from_data", lambda data: 100)

    def host_facts(target):
        reads.append(target)
        gevent.sleep(0.01)  # an SSH round trip: the other greenlets run meanwhile
        return {"target": target}

    monkeypatch.setattr(cluster, "host_facts", host_facts)
    with ctx_inventory.use(loaded):
        yield reads
    cluster._PLAN_CACHE.pop(id(loaded), None)


def test_eight_concurrent_hosts_read_each_host_once(counted, monkeypatch):
    made = []
    monkeypatch.setattr(cluster, "make_plan", lambda hosts, model_mb: made.append(hosts) or f"plan of {len(hosts)}")
    greenlets = [gevent.spawn(cluster.current_plan) for _ in NAMES]
    gevent.joinall(greenlets, raise_error=True)
    assert [g.value for g in greenlets] == ["plan of 8"] * 8
    assert sorted(counted) == sorted(NAMES), "some host's facts were read more than once"
    assert len(made) == 1


def test_a_refused_plan_is_raised_to_every_host_without_reading_again(counted, monkeypatch):
    def refuse(hosts, model_mb):
        raise PlanError(["host3: ram_mb: RAM unknown"], "set ram_mb")

    monkeypatch.setattr(cluster, "make_plan", refuse)
    greenlets = [gevent.spawn(cluster.current_plan) for _ in NAMES]
    gevent.joinall(greenlets)
    assert all(isinstance(g.exception, PlanError) for g in greenlets)
    assert len(counted) == len(NAMES)
