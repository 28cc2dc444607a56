"""The cluster plan as deploy.py sees it: made once per deploy from every host's data and facts.

pyinfra runs the task files once per host; the plan spans all hosts, so the first task file to
ask makes it (reading the other hosts' facts through their own connections) and the rest reuse
it. The same `make_plan` backs `llamafleet plan`, so what the user saw is what is deployed.
"""

from __future__ import annotations

from typing import Any

from gevent.lock import BoundedSemaphore
from pyinfra import host, inventory
from pyinfra.context import ctx_inventory

from llamafleet.gather import plan_fact_classes, read_fact
from llamafleet.inventory_data import hosts_from_inventory
from llamafleet.layout import device_paths, device_platform
from llamafleet.plan import HostInput, Plan, PlannedHost, make_plan, model_size_from_data

_PLAN_CACHE: dict[int, Plan | Exception] = {}
_PLAN_LOCK = BoundedSemaphore()


def host_facts(target) -> dict[str, Any]:
    """The facts the plan needs from one host, read through that host's connection."""
    return {name: read_fact(target, cls) for name, cls in plan_fact_classes().items()}


def current_plan() -> Plan:
    """The plan for the inventory being deployed (computed once, on first use).

    pyinfra loads the task files of all hosts at once, one greenlet per host. Without the lock
    every greenlet would miss the cache while the first is still reading facts, and all of them
    would read every host's facts: N x N SSH channels at once, which sshd refuses past its
    MaxSessions (10) on an 8-host cluster. So one greenlet reads, the others wait for its plan
    (or its error).
    """
    loaded = ctx_inventory.get()  # the Inventory itself, not its proxy: one object per deploy run
    key = id(loaded)
    if key not in _PLAN_CACHE:
        with _PLAN_LOCK:
            if key not in _PLAN_CACHE:
                try:
                    hosts = [
                        HostInput(name=h.name, data=h.data, facts=host_facts(loaded.get_host(h.name)), groups=h.groups)
                        for h in hosts_from_inventory(loaded)
                    ]
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
    plan = current_plan()
    for planned in plan.hosts:
        if planned.name == host.name:
            return planned
    raise KeyError(f"{host.name}: not in the plan")


def master_host() -> PlannedHost:
    plan = current_plan()
    return next(planned for planned in plan.hosts if planned.role == "master")


def inventory_host(name: str):
    return inventory.get_host(name)


def platform_facts(target) -> dict[str, Any]:
    """The DevicePlatform fact of `target` ({} when unknown).

    Through layout.device_platform, which device_paths already reads it with: the same fact
    class and `or {}`, cached per deploy and host (pyinfra 3.10 caches no facts, and deploy code
    reads facts before any operation runs, so a second read would only repeat the SSH round trip).
    """
    return device_platform(target)


def service_manager(target) -> str:
    """`service_manager` data, else what the device has (DevicePlatform fact)."""
    return target.data.get("service_manager") or platform_facts(target).get("service_manager") or "runit"


def rpc_binary_name(target) -> str:
    """ggml-rpc-server today; older refs built `rpc-server` (the build installs under today's name)."""
    return "ggml-rpc-server"


def binaries_changed(target):
    """An `_if` callback: did this deploy install new binaries on the host (restart its services)."""
    from llamafleet.operations.build import binaries_changed as changed

    return lambda: changed(target)


def prestart_lines(target, planned) -> list[str]:
    """What a service on this host re-establishes before it starts, every time: the wake lock
    on a phone (a sleeping worker stalls the cluster; taking it twice is harmless), recorded
    with the boot id for `llamafleet doctor`, and, on a Linux host with a firewall, llamafleet's
    rules (the kernel forgets them at reboot)."""
    from llamafleet.serving import wakelock
    from llamafleet.serving.firewall import FirewallBackend, effective_backend, restore_commands

    if planned.platform == "termux":
        return wakelock.prestart_lines(device_paths(target).wake_lock_record)
    if target.data.get("firewall_enabled") and (planned.role == "master" or planned.address != "127.0.0.1"):
        backend = effective_backend(target.data.get("firewall_backend") or target.get_fact(FirewallBackend))
        if backend in ("iptables", "nftables"):
            return restore_commands(backend)
    return []
