"""Which firewall rules a host gets, and which backend holds them: decided in the plan.

llama.cpp's RPC has no authentication, so on a host that can firewall only the master may reach
a worker's port; the master's API port admits itself and `api_allowed_sources`. The rules are
plain data here; llamafleet.serving.firewall (iptables, nftables), firewall_ufw and
firewall_firewalld render them from templates/ and converge the host to them.
"""

from __future__ import annotations

import ipaddress
from typing import Callable, Iterable

from llamafleet.plan.addresses import is_loopback
from llamafleet.plan.shapes import FirewallPlan, FirewallPolicy, PlannedHost, PortRule

__all__ = ["BACKENDS", "FirewallPlan", "FirewallPolicy", "PortRule", "backend_in_use", "effective_backend",
           "firewall_plan", "gets_firewall", "non_address_sources", "policy_for", "services_restore_rules"]

# Every backend llamafleet can keep its rules in. ufw and firewalld are driven through the tool
# itself, never beside it: firewalld drops unknown ports in its own table, so a separate table
# cannot open them, and `ufw reload` / `firewall-cmd --reload` may drop rules the tool did not make.
BACKENDS = ("iptables", "nftables", "ufw", "firewalld")
# The kernel forgets iptables and nftables rules at reboot and nothing loads llamafleet's files,
# so its services put them back before they start; ufw and firewalld restore their own rules at
# boot (ufw's user.rules, firewalld's permanent zone configuration).
_RESTORED_BY_SERVICES = ("iptables", "nftables")


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
    """The backend llamafleet drives for a firewall the host has: the firewall itself
    ("iptables", "nftables", "ufw", "firewalld"), or None for none of them (an unknown name too)."""
    return detected if detected in BACKENDS else None


def services_restore_rules(backend: str | None) -> bool:
    """Whether the host's services must put llamafleet's rules back before they start."""
    return backend in _RESTORED_BY_SERVICES


def backend_in_use(firewall: FirewallPlan, detect: Callable[[], str | None]) -> str | None:
    """The backend that holds llamafleet's rules: the data's choice, else what `detect()` (the
    FirewallBackend fact, read only when needed) finds on the host; one of BACKENDS, or None
    (no firewall tool)."""
    return effective_backend(firewall.backend or detect())


def non_address_sources(policy: FirewallPolicy) -> list[str]:
    """The policy's sources that are not an IP address or network, each named with its port:
    iptables resolves a host name when it adds a rule, ufw and firewalld take addresses only."""
    found = []
    for rule in policy.rules:
        for source in rule.sources:
            try:
                ipaddress.ip_network(source, strict=False)
            except ValueError:
                found.append(f"{source!r} (port {rule.port}, {rule.purpose or 'protected'})")
    return found
