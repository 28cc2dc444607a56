"""The lab's L2 segment: one Linux bridge in the machine's namespace, one network namespace
per host, plugged in with a veth pair.

Stands for: the user's Wi-Fi/LAN. Hosts get a /24 address and no default route, so they reach
each other and the controller (198.18.0.1 on the bridge) and nothing else. As a second guard,
a small nftables table drops anything the machine would route from or to the bridge, should a
root lab host add a route or IP forwarding get switched on. Traffic between two hosts is
bridged, not routed, but with br_netfilter (bridge-nf-call-iptables=1, as on this machine) it
passes the same forward hook, with the bridge as both input and output interface: the guard
lets exactly that through.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from llamafleet_lab.topology import (
    BRIDGE,
    CONTROLLER_ADDRESS,
    NETNS_PREFIX,
    NFT_TABLE,
    SUBNET,
    VETH_PREFIX,
    LabHost,
)

# The kernel dismantles a dead namespace (and the veth ends it held) in a work queue, after
# `ip netns delete` and the last process have gone: `down` waits this long for those links.
LINK_GONE_TIMEOUT = 10.0

_PREFIX_LENGTH = SUBNET.prefixlen


def _ip_batch(commands: list[str], netns: str | None = None) -> None:
    """Run many `ip` commands in one process (fast); raise with ip's message on failure."""
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    result = subprocess.run(argv, input="\n".join(commands) + "\n", capture_output=True, text=True)
    if result.returncode != 0:
        where = f" in {netns}" if netns else ""
        raise RuntimeError(f"setting up the lab network{where} failed: {result.stderr.strip()}")


def create_network(hosts: list[LabHost]) -> None:
    """Bridge with the controller address, and each host's namespace, veth and address."""
    commands = [
        f"link add {BRIDGE} type bridge",
        f"addr add {CONTROLLER_ADDRESS}/{_PREFIX_LENGTH} dev {BRIDGE}",
        f"link set {BRIDGE} up",
    ]
    for host in hosts:
        commands += [
            f"netns add {host.netns}",
            f"link add {host.veth} type veth peer name eth0 netns {host.netns}",
            f"link set {host.veth} master {BRIDGE}",
            f"link set {host.veth} up",
        ]
    _ip_batch(commands)
    for host in hosts:
        _ip_batch(
            [
                f"addr add {host.address}/{_PREFIX_LENGTH} dev eth0",
                "link set eth0 up",
                "link set lo up",
            ],
            netns=host.netns,
        )
    _add_forward_guard()


def _add_forward_guard() -> None:
    ruleset = f"""
table inet {NFT_TABLE} {{
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname "{BRIDGE}" oifname "{BRIDGE}" accept
        iifname "{BRIDGE}" drop
        oifname "{BRIDGE}" drop
    }}
}}
"""
    result = subprocess.run(["nft", "-f", "-"], input=ruleset, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"adding the lab's nftables guard failed: {result.stderr.strip()}")


def lab_namespaces() -> list[str]:
    """Network namespaces named like the lab's (also those of a crashed lab)."""
    netns_dir = Path("/run/netns")
    if not netns_dir.is_dir():
        return []
    return sorted(entry.name for entry in netns_dir.iterdir() if entry.name.startswith(NETNS_PREFIX))


def lab_veths() -> list[str]:
    """Root-namespace veth ends named like the lab's."""
    return sorted(name for name in _links() if name.startswith(VETH_PREFIX))


def _links() -> list[str]:
    return [entry.name for entry in Path("/sys/class/net").iterdir()]


def bridge_exists() -> bool:
    return Path("/sys/class/net", BRIDGE).exists()


def guard_exists() -> bool:
    result = subprocess.run(["nft", "list", "table", "inet", NFT_TABLE], capture_output=True, text=True)
    return result.returncode == 0


def leftovers() -> list[str]:
    """Lab network pieces that exist on the machine right now."""
    found = [f"network namespace {name}" for name in lab_namespaces()]
    found += [f"veth {name}" for name in lab_veths()]
    if bridge_exists():
        found.append(f"bridge {BRIDGE}")
    if guard_exists():
        found.append(f"nftables table inet {NFT_TABLE}")
    return found


def destroy_network() -> list[str]:
    """Delete every lab veth, namespace, the bridge and the guard. Returns what could not be
    deleted.

    The veths are deleted by name first: a namespace's end would go with the namespace, but
    the kernel frees a namespace asynchronously, so its veths could outlive `lab down`.
    """
    failures = []
    for name in lab_veths():
        # Either end's deletion removes the pair; a pair the kernel is already freeing answers
        # "Cannot find device", which is the wanted outcome, so only the wait below judges.
        subprocess.run(["ip", "link", "delete", name], capture_output=True, text=True)
    for name in lab_namespaces():
        result = subprocess.run(["ip", "netns", "delete", name], capture_output=True, text=True)
        if result.returncode != 0:
            failures.append(f"network namespace {name}: {result.stderr.strip()}")
    if bridge_exists():
        result = subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, text=True)
        if result.returncode != 0:
            failures.append(f"bridge {BRIDGE}: {result.stderr.strip()}")
    if guard_exists():
        result = subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], capture_output=True, text=True)
        if result.returncode != 0:
            failures.append(f"nftables table {NFT_TABLE}: {result.stderr.strip()}")
    deadline = time.monotonic() + LINK_GONE_TIMEOUT
    while (remaining := lab_veths()) and time.monotonic() < deadline:
        time.sleep(0.05)
    failures += [f"veth {name}: still present after {LINK_GONE_TIMEOUT:.0f}s" for name in remaining]
    return failures
