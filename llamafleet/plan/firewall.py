"""Which firewall rules a host gets, and which backend holds them: decided in the plan.

llama.cpp's RPC has no authentication, so on a host that can firewall only the master may reach
a worker's port; the master's API port admits itself and `api_allowed_sources`. The rules are
plain data here; llamafleet.serving.firewall renders them into each backend's file (templates/)
and converges the host to them.
"""

from __future__ import annotations

from typing import Callable, Iterable

from llamafleet.plan.addresses import is_loopback
from llamafleet.plan.shapes import FirewallPlan, FirewallPolicy, PlannedHost, PortRule

__all__ = ["FirewallPlan", "FirewallPolicy", "PortRule", "backend_in_use", "effective_backend", "firewall_plan",
           "gets_firewall", "policy_for"]

# ufw and firewalld manage iptables/nftables themselves: llamafleet's own chain (iptables) or
# table (nftables) sits beside theirs, untouched by them.
_DRIVEN_BACKEND = {"ufw": "iptables", "firewalld": "nftables"}


def policy_for(me: PlannedHost, master: PlannedHost, api_port: int, api_allowed_sources: Iterable[str]) -> FirewallPolicy:
    """One host's policy: a worker's RPC port, when it is reachable beyond loopback (whatever its
    transport), admits the master only; the master's API port admits itself and
    `api_allowed_sources`. A tunnelled worker listens on loopback and needs no rule."""
    rules = []
    if me.role == "worker" and not is_loopback(me.address):
        rules.append(PortRule(me.rpc_port, (master.cluster_address,), "RPC from the master"))
    if me.role == "master":
        sources = [me.cluster_address, *api_allowed_sources]
        rules.append(PortRule(api_port, tuple(dict.fromkeys(sources)), "llama-server API"))
    return FirewallPolicy(rules)


def gets_firewall(settings, platform: str) -> bool:
    """llamafleet keeps a firewall on a Linux host with firewall_enabled; a phone has no root."""
    return platform != "termux" and bool(settings.firewall_enabled)


def firewall_plan(me: PlannedHost, master: PlannedHost, settings, master_settings) -> FirewallPlan:
    """The firewall of a host that gets one (gets_firewall)."""
    return FirewallPlan(
        policy=policy_for(me, master, master_settings.llama_server_port, master_settings.api_allowed_sources),
        backend=settings.firewall_backend,
        # As the deploy has always done: the master, and a worker not bound to 127.0.0.1.
        restore_at_start=me.role == "master" or me.address != "127.0.0.1",
    )


def effective_backend(detected: str | None) -> str | None:
    """The backend llamafleet drives for a firewall the host has (ufw: iptables, firewalld:
    nftables; iptables, nftables or None as they are)."""
    return _DRIVEN_BACKEND.get(detected or "", detected)


def backend_in_use(firewall: FirewallPlan, detect: Callable[[], str | None]) -> str | None:
    """The backend that holds llamafleet's rules: the data's choice, else what `detect()` (the
    FirewallBackend fact, read only when needed) finds on the host; "iptables", "nftables" or
    None (neither tool)."""
    return effective_backend(firewall.backend or detect())
