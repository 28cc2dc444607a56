"""What the plan reads (HostInput) and what it decides (PlannedHost, MasterPlan, Plan).

Every per-host decision the deploy, `llamafleet status` and the verify suite act on is a field
here, made once by `make_plan` (llamafleet.plan.make, with llamafleet.plan.decide): where a
worker listens and how the master reaches it, threads, the service manager, the binary, where
llamafleet lives on the device, the model's path, the user its services run as and the firewall
rules (whose choice is llamafleet.plan.firewall's).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Mapping

from llamafleet.settings import HostSettings, settings_for
from llamafleet.plan.heal import ServingRow


class PlanError(Exception):
    """The model cannot be placed on these devices: what is wrong, and what to do about it."""

    def __init__(self, reasons: list[str], suggestion: str = "") -> None:
        self.reasons = list(reasons)
        self.suggestion = suggestion
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = list(self.reasons)
        if self.suggestion:
            lines.append(f"suggestion: {self.suggestion}")
        return "\n".join(lines)


@dataclass(frozen=True)
class PortRule:
    """TCP `port` accepts connections from `sources` (addresses or CIDRs) and loopback only."""

    port: int
    sources: tuple[str, ...]
    purpose: str = ""


@dataclass
class FirewallPolicy:
    rules: list[PortRule] = field(default_factory=list)


@dataclass
class FirewallPlan:
    """A Linux host's firewall, as the plan decides it.

    + policy: the rules llamafleet's chain/table holds (possibly none: a tunnelled worker)
    + backend: `firewall_backend` from the data, None for "what the host has" (a fact only the
      live host knows: `backend_in_use` makes the choice)
    + restore_at_start: its services put the saved rules back before they start (the kernel
      forgets them at reboot)
    """

    policy: FirewallPolicy
    backend: str | None = None
    restore_at_start: bool = False


@dataclass(frozen=True)
class HostInput:
    """What the plan knows about one host.

    + name: inventory name
    + data: the merged pyinfra data (group_data/all.py keys)
    + facts: fact results by fact class name: "CpuProfile", "MemInfo", "DevicePlatform"
      (shapes in llamafleet.facts); missing facts fall back to data (ram_mb) or groups
    + groups: inventory groups; `termux` marks a phone when no DevicePlatform fact is known
    """

    name: str
    data: Mapping[str, Any]
    facts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    groups: tuple[str, ...] = ()

    @cached_property
    def settings(self) -> HostSettings:
        """The data as typed settings (llamafleet.settings): what the plan reads."""
        return settings_for(self.name, self.data)


@dataclass
class PlannedHost:
    """One device in the plan. For workers, `address`/`rpc_port` is where ggml-rpc-server
    listens and `connect` is the same server as llama-server's --rpc sees it. `binary` is the
    program its service runs (in <base>/bin); `base` is where llamafleet lives on it (None
    when the plan was made without the device's platform and `llamafleet_dir` names none);
    `firewall` is None where llamafleet keeps no firewall (a phone, firewall_enabled off);
    `rpc_port_since` is since when a worker holds its port, from the record on the device (None:
    the port is new to it; llamafleet.plan.ports). `service_user`/`service_group` is who its
    services run as on Linux (None on Termux: the app's own user)."""

    name: str
    role: str
    rank: int
    platform: str
    cluster_address: str
    address: str
    rpc_port: int | None
    connect: str | None
    transport: str | None
    arch: str | None
    march: str | None
    cores: dict[str, int]
    big_cores: int | None
    threads: int
    split: float
    ram_mb: float
    usable_mb: float
    share_mb: float
    expected_mb: float
    headroom_mb: float
    service_manager: str = "runit"
    binary: str = ""
    base: str | None = None
    model_path: str | None = None
    firewall: FirewallPlan | None = None
    rpc_port_since: str | None = None
    service_user: str | None = None
    service_group: str | None = None
    # ISA features the device's CPU refused (SIGILL in the build's self-test): `march` is
    # without them (llamafleet.cpu.refused).
    cpu_refused: tuple[str, ...] = ()
    # Measured speed (llamafleet.plan.speed): ms of a token per MiB held, and whose record it
    # is (this host's, or a measured twin's); a worker's own link, and whether its rpc-server
    # keeps the tensor cache (-c).
    ms_per_mb: float | None = None
    speed_from: str | None = None
    link_mbit: float | None = None
    rpc_cache: bool = False
    # The CPUs a worker's rpc-server is pinned to (its big cores, "4-7": taskset -c), None
    # when not pinned, and then why not in a few words (None for the master): decide.cpu_pin_of.
    cpu_pin: str | None = None
    cpu_pin_reason: str | None = None


@dataclass
class MasterPlan:
    """How llama-server runs on the master: `server_host`:`server_port` is where it listens,
    `api_url` where clients reach it (the cluster address when it listens everywhere)."""

    name: str
    api_url: str
    load_mode: str
    rpc: str
    tensor_split: str
    threads: int
    server_host: str = ""
    server_port: int = 0
    # The groups of workers it serves with when some are away, best first (llamafleet.plan.heal).
    degraded: tuple[ServingRow, ...] = ()
    # llama-server's -ngl: "all" offloads every layer to the workers; fewer keeps the first
    # layers on the master's CPU (master_computes). How the split was made ("ram", "speed",
    # "hand"), and the time of a token the measured speeds predict.
    gpu_layers: str = "all"
    split_by: str = "ram"
    predicted_ms: float | None = None


@dataclass
class Plan:
    """The whole cluster: master first (rank 0), then workers in rank order."""

    hosts: list[PlannedHost]
    master: MasterPlan
    model_size_mb: float
    hints: list[str] = field(default_factory=list)

    def workers(self) -> list[PlannedHost]:
        return [host for host in self.hosts if host.role == "worker"]

    def serving(self) -> list[PlannedHost]:
        """The workers llama-server's --rpc names, in its order (the speed split may leave
        some out; none when the master holds the whole model)."""
        endpoints = self.master.rpc.split(",") if self.master.rpc else []
        return [host for host in self.workers() if host.connect in endpoints]

    def host(self, name: str) -> PlannedHost:
        """One host's entry (KeyError naming the host when the plan has none)."""
        for planned in self.hosts:
            if planned.name == name:
                return planned
        raise KeyError(f"{name}: not in the plan")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `llamafleet plan --json` and for templates."""
        return {
            "model_size_mb": round(self.model_size_mb, 1),
            "hosts": [asdict(host) for host in self.hosts],
            "master": asdict(self.master),
            "hints": list(self.hints),
        }
