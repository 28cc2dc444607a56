"""The kernel network settings llamafleet applies on Linux hosts, each with the reason.

Values follow the network guide the project started from (shared/seeds). Left out on purpose:
`net.ipv4.ip_local_port_range = 1024 65535` (it would let outgoing connections take the RPC and
API ports, 50052+ and 8080, before the services bind them) and the SYN retry cuts (they make a
worker on flaky Wi-Fi look dead sooner, which is the failure the master handles worst).
"""

from __future__ import annotations

from typing import NamedTuple

from pyinfra.api import FactBase


class NetSetting(NamedTuple):
    key: str
    value: str
    why: str


NET_SETTINGS: tuple[NetSetting, ...] = (
    NetSetting("net.core.somaxconn", "4096", "deeper accept queue for bursts of RPC reconnects"),
    NetSetting("net.ipv4.tcp_max_syn_backlog", "8192", "half-open connections queue, same reason"),
    NetSetting("net.ipv4.tcp_keepalive_time", "600", "notice a dead peer after 10 min idle, not 2 h"),
    NetSetting("net.ipv4.tcp_keepalive_intvl", "30", "probe a silent peer every 30 s"),
    NetSetting("net.ipv4.tcp_keepalive_probes", "5", "give up after 5 unanswered probes"),
    NetSetting("net.ipv4.tcp_fin_timeout", "15", "free sockets of closed RPC sessions sooner"),
    NetSetting("net.ipv4.tcp_tw_reuse", "1", "reuse TIME_WAIT sockets for new outgoing connections"),
    NetSetting("net.core.rmem_max", "16777216", "allow 16 MB receive buffers: tensors are large"),
    NetSetting("net.core.wmem_max", "16777216", "allow 16 MB send buffers, same reason"),
    NetSetting("net.ipv4.tcp_rmem", "4096 87380 16777216", "TCP receive buffer autotuning up to 16 MB"),
    NetSetting("net.ipv4.tcp_wmem", "4096 65536 16777216", "TCP send buffer autotuning up to 16 MB"),
    NetSetting("net.core.netdev_max_backlog", "5000", "queue more packets when tensors arrive fast"),
)

SYSCTL_DROPIN = "/etc/sysctl.d/90-llamafleet.conf"


class SettableSysctls(FactBase):
    """
    The keys among `keys` that can be written here. In a network namespace (or container) some
    net.core keys belong to the whole machine: their /proc/sys files are read-only, and
    `sysctl -w` reports the failure but still exits 0, so the file's mode is what tells.

    .. code:: python

        ["net.core.somaxconn", "net.ipv4.tcp_keepalive_time"]
    """

    @staticmethod
    def default() -> list:
        # No output (a container whose /proc/sys is all read-only, as systemd-nspawn mounts it)
        # means no key is settable, not an unknown fact.
        return []

    def command(self, keys: list[str]) -> str:
        checks = [f"[ -w /proc/sys/{key.replace('.', '/')} ] && echo {key}" for key in keys]
        return "; ".join(checks) + "; true"

    def process(self, output):
        return [line.strip() for line in output if line.strip()]
