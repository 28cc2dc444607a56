"""The cluster plan as deploy.py sees it: made once per deploy from every host's data and facts.

pyinfra runs the task files once per host; the plan spans all hosts, so the first task file to
ask makes it (reading the other hosts' facts through their own connections) and the rest reuse
it. The same `make_plan` backs `llamafleet plan`, so what the user saw is what is deployed.

Every per-host decision a task acts on (bind, port, threads, service manager, service user,
binary, model path, firewall) is read from the plan, never worked out again in a task; paths come from
llamafleet.layout.device_paths, the function the plan's `base` comes from too.
"""

from __future__ import annotations

from typing import Any

import gevent
from gevent.lock import BoundedSemaphore
from pyinfra import host, inventory
from pyinfra.context import ctx_inventory

from llamafleet.gather import read_plan_facts
from llamafleet.inventory_data import hosts_from_inventory
from llamafleet.layout import device_paths, device_platform
from llamafleet.plan import HostInput, Plan, PlanError, PlannedHost, make_plan, model_size_from_data
from llamafleet.plan.firewall import backend_in_use, services_restore_rules
from llamafleet.settings import HostSettings, settings_for

_PLAN_CACHE: dict[int, Plan | Exception] = {}
_PLAN_LOCK = BoundedSemaphore()


def host_facts(target) -> dict[str, Any]:
    """The facts the plan needs from one host (its recorded RPC port included), read through
    that host's connection. Every host's, in a limited run (--limit) too: the plan spans the
    cluster, and the others' recorded ports keep a new worker off theirs."""
    from pyinfra.api.exceptions import ConnectError

    try:
        return read_plan_facts(target)
    except ConnectError as error:
        raise PlanError([f"{target.name}: facts: cannot connect ({' '.join(str(error).split())}); the plan "
                         "reads every host, with --limit too"],
                        "bring the host back, or take it out of the inventory") from None


def current_plan() -> Plan:
    """The plan for the inventory being deployed (computed once, on first use).

    pyinfra loads the task files of all hosts at once, one greenlet per host. Without the lock
    every greenlet would miss the cache while the first is still reading facts, and all of them
    would read every host's facts: N x N SSH channels at once, which sshd refuses past its
    MaxSessions (10) on an 8-host cluster. So one greenlet reads (one greenlet per host, one
    channel each), the others wait for its plan (or its error).
    """
    loaded = ctx_inventory.get()  # the Inventory itself, not its proxy: one object per deploy run
    key = id(loaded)
    if key not in _PLAN_CACHE:
        with _PLAN_LOCK:
            if key not in _PLAN_CACHE:
                try:
                    listed = hosts_from_inventory(loaded)
                    # Every host's facts at once (one channel per host): the plan waits for the
                    # slowest host, not for the sum of them.
                    readers = [gevent.spawn(host_facts, loaded.get_host(h.name)) for h in listed]
                    gevent.joinall(readers, raise_error=True)
                    hosts = [HostInput(name=h.name, data=h.data, facts=reader.value, groups=h.groups)
                             for h, reader in zip(listed, readers)]
                    model_mb = model_size_from_data(hosts[0].data) if hosts else None
                    _PLAN_CACHE[key] = make_plan(hosts, model_mb or 0)
                except Exception as error:  # every host reports the same refusal, read once
                    _PLAN_CACHE[key] = error
    cached = _PLAN_CACHE[key]
    if isinstance(cached, Exception):
        raise cached
    return cached


def this_host() -> PlannedHost:
    """The current host's entry in the plan."""
    return current_plan().host(host.name)


def master_host() -> PlannedHost:
    plan = current_plan()
    return next(planned for planned in plan.hosts if planned.role == "master")


def settings(target=host) -> HostSettings:
    """The typed settings of `target` (the current host by default): every task reads its
    data through these, checked once against the declarations (llamafleet.settings)."""
    return settings_for(target.name, target.data)


def inventory_host(name: str):
    return inventory.get_host(name)


def platform_facts(target) -> dict[str, Any]:
    """The DevicePlatform fact of `target` ({} when unknown).

    Through layout.device_platform, which device_paths already reads it with: the same fact
    class and `or {}`, cached per deploy and host (pyinfra 3.10 caches no facts, and deploy code
    reads facts before any operation runs, so a second read would only repeat the SSH round trip).
    """
    return device_platform(target)


def model_path(planned: PlannedHost, target=host) -> str:
    """The model's path on the device, as the plan decided it."""
    from llamafleet.serving.model import model_dest

    return planned.model_path or model_dest(settings(target), device_paths(target).models)


def firewall_backend(target, planned: PlannedHost) -> str | None:
    """The backend holding the host's rules: the plan's choice, else what the host has (its
    FirewallBackend fact, read only then)."""
    from llamafleet.serving.firewall import FirewallBackend

    return backend_in_use(planned.firewall, lambda: target.get_fact(FirewallBackend))


def binaries_changed(target):
    """An `_if` callback: did this deploy install new binaries on the host (restart its services)."""
    from llamafleet.operations.build import binaries_changed as changed

    return lambda: changed(target)


def prestart_lines(target, planned: PlannedHost) -> list[str]:
    """What a service on this host re-establishes before it starts, every time: the wake lock
    on a phone (a sleeping worker stalls the cluster; taking it twice is harmless), recorded
    with the boot id for `llamafleet doctor`, and, where the plan says so, llamafleet's
    iptables or nftables rules (the kernel forgets them at reboot; ufw and firewalld restore
    their own at boot)."""
    from llamafleet.serving import wakelock
    from llamafleet.serving.firewall import restore_commands

    if planned.platform == "termux":
        return wakelock.prestart_lines(device_paths(target).wake_lock_record)
    if planned.firewall and planned.firewall.restore_at_start:
        backend = firewall_backend(target, planned)
        if services_restore_rules(backend):
            return restore_commands(backend)
    return []
