"""The cluster plan: who is master, which worker gets which port, bind and share of the model.

`make_plan` is a pure function of the hosts' data and facts; `llamafleet plan` and deploy.py both
call it, so what is shown is what gets deployed. The small `effective_*` helpers are the single
definition of the defaults documented in group_data/all.py (transport, bind, port) and are also
used by `llamafleet check`.

Memory model (all in MiB, written "MB" as in group_data/all.py):
  usable   = total RAM × rpc_ram_fraction − rpc_overhead_mb   (what a worker may hold in tensors)
  share    = the worker's fraction of the model × model size
  expected = share + rpc_overhead_mb;  headroom = total RAM − expected
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

MIB = 1024 * 1024

# A 32-bit process (armv7l) has about 3 GiB of user address space (the kernel keeps the rest):
# it cannot map or hold more model than that, whatever the RAM.
ARMV7_ADDRESS_LIMIT_MB = 3072

# Tensor split proportions are rounded to thousandths (what llama-server's -ts needs, no more).
_SPLIT_STEPS = 1000

# A device is "tight" when less than this fraction of its usable RAM is left after its share.
_TIGHT_FRACTION = 0.10

# Three or more RPC workers: upstream users report deadlocks (see shared llama-cpp-today notes).
_MANY_WORKERS = 3

# Approximate bits per weight of common GGUF quantisations, largest first (llama.cpp's
# quantize table). Q4_0_4_4 and friends are gone upstream: never suggest them.
QUANT_BITS = {
    "F16": 16.0,
    "Q8_0": 8.5,
    "Q6_K": 6.56,
    "Q5_K_M": 5.69,
    "Q5_0": 5.5,
    "Q4_K_M": 4.85,
    "Q4_0": 4.5,
    "Q3_K_M": 3.91,
    "Q2_K": 2.96,
}

WILDCARD_ADDRESSES = {"0.0.0.0", "::", "[::]"}


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


@dataclass
class PlannedHost:
    """One device in the plan. For workers, `address`/`rpc_port` is where ggml-rpc-server
    listens and `connect` is the same server as llama-server's --rpc sees it."""

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


@dataclass
class MasterPlan:
    """How llama-server runs on the master."""

    name: str
    api_url: str
    load_mode: str
    rpc: str
    tensor_split: str
    threads: int


@dataclass
class Plan:
    """The whole cluster: master first (rank 0), then workers in rank order."""

    hosts: list[PlannedHost]
    master: MasterPlan
    model_size_mb: float
    hints: list[str] = field(default_factory=list)

    def workers(self) -> list[PlannedHost]:
        return [host for host in self.hosts if host.role == "worker"]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `llamafleet plan --json` and for templates."""
        return {
            "model_size_mb": round(self.model_size_mb, 1),
            "hosts": [asdict(host) for host in self.hosts],
            "master": asdict(self.master),
            "hints": list(self.hints),
        }


# --- Effective settings (the defaults documented in group_data/all.py) ---------------------------


def cluster_address_of(name: str, data: Mapping[str, Any]) -> str:
    """The address other members use: cluster_address, else ssh_hostname, else the name."""
    return data.get("cluster_address") or data.get("ssh_hostname") or name


def platform_of(host: HostInput) -> str:
    """"termux" or "linux": the DevicePlatform fact, else membership of the `termux` group."""
    platform = (host.facts.get("DevicePlatform") or {}).get("platform")
    if platform:
        return platform
    return "termux" if "termux" in host.groups else "linux"


def effective_transport(data: Mapping[str, Any], platform: str) -> str:
    """rpc_transport, else tunnel for Termux (no firewall possible) and direct for Linux."""
    return data.get("rpc_transport") or ("tunnel" if platform == "termux" else "direct")


def effective_bind(data: Mapping[str, Any], transport: str, cluster_address: str) -> str:
    """rpc_bind, else 127.0.0.1 behind a tunnel, else the cluster address (never a wildcard)."""
    if data.get("rpc_bind"):
        return data["rpc_bind"]
    return "127.0.0.1" if transport == "tunnel" else cluster_address


def worker_port(data: Mapping[str, Any], rank: int) -> int | None:
    """rpc_port, else rpc_port_base + rank − 1 (None when neither is a usable integer)."""
    if data.get("rpc_port") is not None:
        return data["rpc_port"]
    base = data.get("rpc_port_base")
    if not isinstance(base, int) or isinstance(base, bool):
        return None
    return base + rank - 1


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


def api_url_of(name: str, data: Mapping[str, Any]) -> str:
    """The master's HTTP API: llama_server_host (else its cluster address) and port."""
    host = data.get("llama_server_host") or cluster_address_of(name, data)
    if is_wildcard(host):
        # Listening everywhere: clients still reach it at the cluster address.
        host = cluster_address_of(name, data)
    return f"http://{host_port(host, data.get('llama_server_port', 8080))}"


def model_size_from_data(data: Mapping[str, Any]) -> float | None:
    """Model size in MB: the size of model_file on the controller, else model_size_mb."""
    model_file = data.get("model_file")
    if model_file and os.path.isfile(os.path.expanduser(model_file)):
        return os.path.getsize(os.path.expanduser(model_file)) / MIB
    size = data.get("model_size_mb")
    return float(size) if size else None


def format_split(shares: list[float]) -> str:
    """"0.5,0.25,0.25": proportions as llama-server's -ts takes them."""
    return ",".join(f"{share:.3f}".rstrip("0").rstrip(".") or "0" for share in shares)


def split_by_capacity(capacities: list[float]) -> list[float]:
    """Proportions of the model per worker, proportional to capacity, summing exactly to 1.

    Rounded to thousandths with the largest-remainder method, so the printed -ts adds up.
    """
    total = sum(capacities)
    exact = [capacity / total * _SPLIT_STEPS for capacity in capacities]
    steps = [int(value) for value in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - steps[i], reverse=True)
    for i in by_remainder[: _SPLIT_STEPS - sum(steps)]:
        steps[i] += 1
    return [step / _SPLIT_STEPS for step in steps]


def quantisation_hint(model_size_mb: float, capacity_mb: float, model_name: str = "") -> str:
    """Suggest a smaller quantisation that fits capacity_mb, from the model's name when it
    carries a quantisation tag (e.g. "...-Q8_0.gguf"), else as a size to aim for."""
    target = max(capacity_mb, 0.0)
    def named(tag: str) -> bool:
        return re.search(rf"(?<![A-Za-z0-9]){tag}(?![A-Za-z0-9])", model_name, re.I) is not None

    current = next((tag for tag in QUANT_BITS if named(tag)), None)
    if current:
        for tag, bits in QUANT_BITS.items():
            estimate = model_size_mb * bits / QUANT_BITS[current]
            if bits < QUANT_BITS[current] and estimate <= target:
                return (
                    f"use a smaller quantisation: {tag} of this model is about {estimate:.0f} MB "
                    f"(now {current}, {model_size_mb:.0f} MB; the workers can hold {target:.0f} MB)"
                )
    return (
        f"use a model or quantisation of at most {target:.0f} MB (now {model_size_mb:.0f} MB; "
        f"e.g. Q4_K_M is about {QUANT_BITS['Q4_K_M'] / QUANT_BITS['Q8_0']:.0%} of Q8_0), "
        "or add devices"
    )


# --- The plan ----------------------------------------------------------------------------------


@dataclass
class _Device:
    """Working values for one host while planning."""

    host: HostInput
    platform: str
    ram_mb: float
    usable_mb: float
    arch: str | None


def _ram_of(host: HostInput) -> float | None:
    """ram_mb from data wins over the detected MemInfo total (offline planning)."""
    if host.data.get("ram_mb"):
        return float(host.data["ram_mb"])
    total = (host.facts.get("MemInfo") or {}).get("total_mb")
    return float(total) if total else None


def _usable_of(data: Mapping[str, Any], ram_mb: float, arch: str | None) -> float:
    fraction = data.get("rpc_ram_fraction", 0.70)
    overhead = data.get("rpc_overhead_mb", 500)
    usable = ram_mb * fraction - overhead
    if arch == "armv7l":
        usable = min(usable, ARMV7_ADDRESS_LIMIT_MB)
    return usable


def _threads_of(data: Mapping[str, Any], cpu: Mapping[str, Any]) -> int:
    """rpc_threads, else the big cores from the CpuProfile fact, never less than 1."""
    threads = data.get("rpc_threads") or cpu.get("threads") or cpu.get("big_cores") or 1
    return max(1, int(threads))


def _load_mode(master: _Device, model_size_mb: float) -> str:
    """mmap when the master could hold the whole model in its usable RAM (lower peak RAM);
    none when that is tight: the seeds report page-fault thrash with mmap on low-RAM phones."""
    chosen = master.host.data.get("llama_load_mode")
    if chosen:
        return chosen
    return "mmap" if model_size_mb <= master.usable_mb else "none"


def _device(host: HostInput, reasons: list[str]) -> _Device | None:
    ram = _ram_of(host)
    if ram is None:
        reasons.append(f"{host.name}: ram_mb: RAM unknown (no MemInfo fact and no ram_mb in data)")
        return None
    arch = (host.facts.get("CpuProfile") or {}).get("arch")
    return _Device(host, platform_of(host), ram, _usable_of(host.data, ram, arch), arch)


def _planned(
    device: _Device, role: str, rank: int, split: float, model_size_mb: float, load_mode: str = ""
) -> PlannedHost:
    """Fill a PlannedHost for a master (rank 0) or a worker."""
    data, name = device.host.data, device.host.name
    cpu = device.host.facts.get("CpuProfile") or {}
    address = cluster_address_of(name, data)
    port = connect = transport = None
    bind = address
    if role == "worker":
        transport = effective_transport(data, device.platform)
        bind = effective_bind(data, transport, address)
        port = worker_port(data, rank)
        if transport == "tunnel":
            # The master keeps an SSH local forward from its own loopback, on the same port
            # number as the worker's: one number per worker, easy to recognise in `ss -lt`.
            connect = host_port("127.0.0.1", port)
        else:
            connect = host_port(address if is_wildcard(bind) else bind, port)
    share_mb = split * model_size_mb
    expected = share_mb + data.get("rpc_overhead_mb", 500)
    if role == "master" and load_mode == "mmap":
        # Mapped model pages sit in the master's page cache while tensors are sent.
        expected += model_size_mb
    return PlannedHost(
        name=name,
        role=role,
        rank=rank,
        platform=device.platform,
        cluster_address=address,
        address=bind,
        rpc_port=port,
        connect=connect,
        transport=transport,
        arch=device.arch,
        march=data.get("llama_cpu_arch") or cpu.get("march"),
        cores=dict(cpu.get("cores") or {}),
        big_cores=cpu.get("big_cores"),
        threads=_threads_of(data, cpu),
        split=split,
        ram_mb=round(device.ram_mb, 1),
        usable_mb=round(device.usable_mb, 1),
        share_mb=round(share_mb, 1),
        expected_mb=round(expected, 1),
        headroom_mb=round(device.ram_mb - expected, 1),
    )


def _hand_split(master: HostInput, worker_count: int, reasons: list[str]) -> list[float] | None:
    """llama_tensor_split from the master's data, checked; None when not given."""
    split = master.data.get("llama_tensor_split")
    if split is None:
        return None
    if len(split) != worker_count:
        reasons.append(
            f"{master.name}: llama_tensor_split: {len(split)} proportions for {worker_count} RPC workers"
        )
    elif abs(sum(split) - 1) > 0.001:
        reasons.append(f"{master.name}: llama_tensor_split: proportions sum to {sum(split):g}, not 1")
    return [float(share) for share in split]


def make_plan(hosts: list[HostInput], model_size_mb: float) -> Plan:
    """Place a model of `model_size_mb` MB on the hosts, or raise PlanError saying why not.

    One master (llama_role "master", rank 0, runs llama-server); the other hosts are RPC workers,
    ranks 1..N in the given (inventory) order. The tensor split is proportional to each worker's
    usable RAM unless the master's data has llama_tensor_split.
    """
    if not model_size_mb or model_size_mb <= 0:
        raise PlanError(
            ["cluster: model_size_mb: model size unknown"],
            "set model_file (its size is used) or model_size_mb",
        )
    masters = [host for host in hosts if host.data.get("llama_role") == "master"]
    if len(masters) != 1:
        names = ", ".join(host.name for host in masters) or "none"
        raise PlanError([f"cluster: llama_role: need exactly one master, found {names}"],
                        'set llama_role = "master" on exactly one host')
    master_input = masters[0]
    worker_inputs = [host for host in hosts if host is not master_input]
    if not worker_inputs:
        raise PlanError(["cluster: llama_role: no RPC workers"], "add at least one worker host")

    reasons: list[str] = []
    master = _device(master_input, reasons)
    workers = [_device(host, reasons) for host in worker_inputs]
    if reasons:
        raise PlanError(reasons, "set ram_mb for hosts that cannot be reached")
    assert master is not None and all(workers)

    for device in workers:
        if device.usable_mb <= 0:
            data = device.host.data
            reasons.append(
                f"{device.host.name}: usable RAM is {device.usable_mb:.0f} MB "
                f"({device.ram_mb:.0f} MB × {data.get('rpc_ram_fraction', 0.70)} − "
                f"{data.get('rpc_overhead_mb', 500)} MB overhead): it cannot hold any tensors"
            )
    if reasons:
        raise PlanError(reasons, "remove these devices from the workers or lower rpc_overhead_mb")

    capacity = sum(device.usable_mb for device in workers)
    model_name = str(master_input.data.get("model_name") or master_input.data.get("model_file")
                     or master_input.data.get("model_url") or "")
    splits = _hand_split(master_input, len(workers), reasons)
    if reasons:
        raise PlanError(reasons, "give one proportion per worker in rank order, summing to 1, "
                                 "or drop llama_tensor_split to split by RAM")
    if splits is None:
        if model_size_mb > capacity:
            raise PlanError(
                [f"cluster: model: {model_size_mb:.0f} MB does not fit the workers' usable RAM "
                 f"({capacity:.0f} MB in total)"],
                quantisation_hint(model_size_mb, capacity, os.path.basename(model_name)),
            )
        splits = split_by_capacity([device.usable_mb for device in workers])

    for device, split in zip(workers, splits):
        share = split * model_size_mb
        # A rounding slack of one split step keeps the automatic split from refusing itself.
        if share > device.usable_mb + model_size_mb / _SPLIT_STEPS:
            limit = "32-bit address space" if device.arch == "armv7l" else "usable RAM"
            reasons.append(f"{device.host.name}: share {share:.0f} MB exceeds its {limit} "
                           f"({device.usable_mb:.0f} MB)")
    if master.arch == "armv7l" and model_size_mb > ARMV7_ADDRESS_LIMIT_MB:
        reasons.append(f"{master_input.name}: a 32-bit (armv7l) master cannot load a "
                       f"{model_size_mb:.0f} MB model (about {ARMV7_ADDRESS_LIMIT_MB} MB address space)")
    if reasons:
        raise PlanError(reasons, "lower those shares in llama_tensor_split (or drop it to split by "
                                 "RAM), make a 64-bit host the master, or "
                                 + quantisation_hint(model_size_mb, capacity, os.path.basename(model_name)))

    load_mode = _load_mode(master, model_size_mb)
    planned = [_planned(master, "master", 0, 0.0, model_size_mb, load_mode)]
    planned += [_planned(device, "worker", rank, split, model_size_mb)
                for rank, (device, split) in enumerate(zip(workers, splits), start=1)]
    master_plan = MasterPlan(
        name=master_input.name,
        api_url=api_url_of(master_input.name, master_input.data),
        load_mode=load_mode,
        rpc=",".join(host.connect for host in planned[1:] if host.connect),
        tensor_split=format_split(splits),
        threads=planned[0].threads,
    )
    return Plan(planned, master_plan, model_size_mb, _hints(planned, len(workers)))


def _hints(planned: list[PlannedHost], worker_count: int) -> list[str]:
    """Warnings that do not stop the plan."""
    hints = []
    for host in planned[1:]:
        if host.usable_mb - host.share_mb < _TIGHT_FRACTION * host.usable_mb:
            hints.append(f"{host.name}: tight: {host.share_mb:.0f} of {host.usable_mb:.0f} MB usable "
                         "RAM; a smaller quantisation leaves room for the OS")
    if worker_count >= _MANY_WORKERS:
        hints.append(f"{worker_count} RPC workers: upstream reports stalls with 3+ workers; if the "
                     "master hangs, try fewer, larger workers")
    return hints


# --- Rendering ---------------------------------------------------------------------------------


def _cores_text(host: PlannedHost) -> str:
    total = sum(host.cores.values())
    if not total:
        return "?"
    return f"{host.big_cores if host.big_cores is not None else '?'}/{total}"


PLAN_COLUMNS = ("host", "role", "rank", "address:port", "transport", "big/all cores", "threads",
                "march", "RAM MB", "share", "model MB", "expected MB", "headroom MB")


def table_rows(plan: Plan) -> list[tuple[str, ...]]:
    """One row per device, in PLAN_COLUMNS order."""
    rows = []
    for host in plan.hosts:
        listens = host_port(host.address, host.rpc_port) if host.rpc_port else host.cluster_address
        rows.append((
            host.name, host.role, str(host.rank), listens, host.transport or "-",
            _cores_text(host), str(host.threads), host.march or "?", f"{host.ram_mb:.0f}",
            f"{host.split:.1%}" if host.role == "worker" else "-", f"{host.share_mb:.0f}",
            f"{host.expected_mb:.0f}", f"{host.headroom_mb:.0f}",
        ))
    return rows


def master_lines(plan: Plan) -> list[str]:
    """How llama-server will be started, and the plan's hints."""
    master = plan.master
    return [
        f"model: {plan.model_size_mb:.0f} MB",
        f"master {master.name}: {master.api_url}  --load-mode {master.load_mode}  -t {master.threads}",
        f"  --rpc {master.rpc}",
        f"  -ts {master.tensor_split}",
        *(f"hint: {hint}" for hint in plan.hints),
    ]


def render_table(plan: Plan) -> str:
    """A table per device, then how llama-server will be started (plain text)."""
    from llamafleet.tables import aligned

    return "\n".join([*aligned(PLAN_COLUMNS, table_rows(plan)), "", *master_lines(plan)])
