"""Addresses as the plan writes and compares them: loopback, wildcard, host:port."""

from __future__ import annotations

import ipaddress

WILDCARD_ADDRESSES = {"0.0.0.0", "::", "[::]"}


def cluster_address_of(name: str, settings) -> str:
    """The address other members use: cluster_address, else ssh_hostname, else the name."""
    return settings.cluster_address or settings.ssh_hostname or name


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(address: str) -> bool:
    return address in WILDCARD_ADDRESSES


def host_port(address: str, port: int | None) -> str:
    """"address:port", with IPv6 addresses in brackets."""
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"
    return f"{address}:{port}"
