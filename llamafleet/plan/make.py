"""`make_plan`: who is master, which worker gets which port (llamafleet.plan.ports), bind and
share of the model, and every other per-host decision (llamafleet.plan.decide), made once.

A pure function of the hosts' typed settings and facts; `llamafleet plan`, `check` (offline,
with ram_mb), `status`, the verify suite and deploy.py all call it, so what is shown is what
gets deployed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from llamafleet.plan import decide
from llamafleet.plan.addresses import cluster_address_of
from llamafleet.plan.firewall import firewall_plan, gets_firewall
from llamafleet.plan.heal import degraded_rows
from llamafleet.plan.memory import SPLIT_STEPS, format_split, quantisation_hint, split_by_capacity
from llamafleet.plan.speed import SPEED_FACT, Speed, speed_of, usable_record
from llamafleet.plan.split import Member, SplitChoice, choose_split, ram_choice
from llamafleet.plan.ports import PortChoice, plan_ports, rank_order
from llamafleet.plan.shapes import HostInput, MasterPlan, Plan, PlanError, PlannedHost
from llamafleet.settings import SettingError

# A device is "tight" when less than this fraction of its usable RAM is left after its share.
_TIGHT_FRACTION = 0.10

# Three or more RPC workers: upstream users report deadlocks (see shared llama-cpp-today notes).
_MANY_WORKERS = 3


@dataclass
class _Device:
    """Working values for one host while planning."""

    host: HostInput
    platform: str
    ram_mb: float
    usable_mb: float
    arch: str | None
    device_class: str = ""
    speed: Speed | None = None


def _ram_of(host: HostInput) -> float | None:
    """ram_mb from data wins over the detected MemInfo total (offline planning)."""
    if host.settings.ram_mb:
        return float(host.settings.ram_mb)
    total = (host.facts.get("MemInfo") or {}).get("total_mb")
    return float(total) if total else None


def _device(host: HostInput, reasons: list[str]) -> _Device | None:
    ram = _ram_of(host)
    if ram is None:
        meminfo = host.facts.get("MemInfo")
        if not meminfo:
            why = "no MemInfo fact"
        else:  # the fact was read, but holds no total (an unreadable /proc/meminfo)
            why = f"the MemInfo fact has no total_mb, only {', '.join(meminfo)},"
        reasons.append(f"{host.name}: ram_mb: RAM unknown ({why} and no ram_mb in data)")
        return None
    arch = (host.facts.get("CpuProfile") or {}).get("arch")
    return _Device(host, decide.platform_of(host), ram, decide.usable_of(host.settings, ram, arch), arch,
                   decide.device_class_of(host.settings, host.facts))


def _planned(
    device: _Device, role: str, rank: int, split: float, model_size_mb: float, load_mode: str = "",
    port_choice: PortChoice | None = None,
) -> PlannedHost:
    """Fill a PlannedHost for a master (rank 0, no port_choice) or a worker."""
    settings, name = device.host.settings, device.host.name
    cpu = device.host.facts.get("CpuProfile") or {}
    platform_fact = device.host.facts.get("DevicePlatform") or {}
    address = cluster_address_of(name, settings)
    port = connect = transport = None
    bind = address
    if port_choice is not None:
        transport = decide.effective_transport(settings, device.platform)
        bind = decide.effective_bind(settings, transport, address)
        port = port_choice.port
        connect = decide.connect_of(transport, bind, address, port)
    share_mb = split * model_size_mb
    expected = share_mb + settings.rpc_overhead_mb
    if role == "master" and load_mode == "mmap":
        # Mapped model pages sit in the master's page cache while tensors are sent.
        expected += model_size_mb
    base = decide.base_of(name, settings, device.platform, platform_fact)
    service_user, service_group = decide.service_account_of(settings, device.platform)
    cpu_pin, cpu_pin_reason = decide.cpu_pin_of(settings, cpu, role)
    return PlannedHost(
        name=name,
        role=role,
        rank=rank,
        platform=device.platform,
        cluster_address=address,
        address=bind,
        rpc_port=port,
        rpc_port_since=port_choice.since if port_choice else None,
        connect=connect,
        transport=transport,
        arch=device.arch,
        march=decide.march_of(settings, cpu, device.host.facts.get(decide.REFUSALS_FACT)),
        cpu_refused=tuple(sorted(device.host.facts.get(decide.REFUSALS_FACT) or ())),
        cores=dict(cpu.get("cores") or {}),
        big_cores=cpu.get("big_cores"),
        threads=decide.threads_of(settings, cpu, cpu_pin),
        split=split,
        ram_mb=round(device.ram_mb, 1),
        usable_mb=round(device.usable_mb, 1),
        share_mb=round(share_mb, 1),
        expected_mb=round(expected, 1),
        headroom_mb=round(device.ram_mb - expected, 1),
        service_manager=decide.service_manager_of(settings, device.platform, platform_fact),
        binary=decide.binary_of(role),
        base=base,
        model_path=decide.model_path_of(base, settings),
        service_user=service_user,
        service_group=service_group,
        cpu_pin=cpu_pin,
        cpu_pin_reason=cpu_pin_reason,
    )


def _speed_fields(device: _Device) -> tuple[float | None, str | None]:
    speed = device.speed
    return (speed.ms_per_mb, speed.measured_on) if speed else (None, None)


def _own_link(host: HostInput) -> float | None:
    """The worker's own measured link (a twin's record says nothing of this device's Wi-Fi)."""
    record = host.facts.get(SPEED_FACT) or {}
    return record.get("link_mbit")


def _split_choice(master: _Device, workers: list[_Device], hosts: list[HostInput], model_size_mb: float,
                  hand: list[float] | None, load_mode: str) -> SplitChoice | None:
    """The speed split when measured (llamafleet.plan.split), else None (the RAM split)."""
    records = {host.name: host.facts.get(SPEED_FACT) for host in hosts}
    model_sha = master.host.settings.model_sha256
    for device in [master, *workers]:
        role = "master" if device is master else "worker"
        device.speed = speed_of(device.host.name, role, device.host.facts, device.device_class, records, model_sha)
    master_record = master.host.facts.get(SPEED_FACT)
    master_record = master_record if usable_record(master_record, "master", model_sha) else {}
    # Mapped model pages sit in the master's page cache while it loads: what its CPU may hold.
    cap = master.usable_mb - (model_size_mb if load_mode == "mmap" else 0)
    return choose_split(Member(master.host.name, master.usable_mb, master.speed), master.host.settings,
                        master_record.get("n_layer"),
                        [Member(device.host.name, device.usable_mb, device.speed) for device in workers],
                        model_size_mb, hand, cap)


def _hand_split(master: HostInput, worker_count: int, reasons: list[str]) -> list[float] | None:
    """llama_tensor_split from the master's settings, checked; None when not given."""
    split = master.settings.llama_tensor_split
    if split is None:
        return None
    if len(split) != worker_count:
        reasons.append(
            f"{master.name}: llama_tensor_split: {len(split)} proportions for {worker_count} RPC workers"
        )
    elif abs(sum(split) - 1) > 0.001:
        reasons.append(f"{master.name}: llama_tensor_split: proportions sum to {sum(split):g}, not 1")
    return [float(share) for share in split]


def _read_settings(hosts: list[HostInput]) -> None:
    """Every host's typed settings, or one PlanError naming each refused value (what `llamafleet
    check` refuses first; a plan made without it, e.g. by `status`, says the same)."""
    reasons = []
    for host in hosts:
        try:
            host.settings  # noqa: B018 - read once here, cached on the host
        except SettingError as error:
            reasons.append(str(error))
    if reasons:
        raise PlanError(reasons, "fix these values (`llamafleet check` names every problem)")


def make_plan(hosts: list[HostInput], model_size_mb: float) -> Plan:
    """Place a model of `model_size_mb` MiB on the hosts, or raise PlanError saying why not.

    One master (llama_role "master", rank 0, runs llama-server); the other hosts are RPC workers,
    ranks 1..N in the order of their ports (llamafleet.plan.ports: a worker keeps the port of
    its first deploy, new ones get the lowest free port in inventory order). The tensor split is
    proportional to each worker's usable RAM unless the master's data has llama_tensor_split.
    """
    if not model_size_mb or model_size_mb <= 0:
        raise PlanError(
            ["cluster: model_size_mb: model size unknown"],
            "set model_file (its size is used) or model_size_mb",
        )
    _read_settings(hosts)
    masters = [host for host in hosts if host.settings.llama_role == "master"]
    if len(masters) != 1:
        names = ", ".join(host.name for host in masters) or "none"
        raise PlanError([f"cluster: llama_role: need exactly one master, found {names}"],
                        'set llama_role = "master" on exactly one host')
    master_input = masters[0]
    worker_inputs = [host for host in hosts if host is not master_input]
    if not worker_inputs:
        raise PlanError(["cluster: llama_role: no RPC workers"], "add at least one worker host")
    ports = plan_ports(worker_inputs)
    by_name = {host.name: host for host in worker_inputs}
    worker_inputs = [by_name[name] for name in rank_order(list(by_name), ports)]

    reasons: list[str] = []
    master = _device(master_input, reasons)
    workers = [_device(host, reasons) for host in worker_inputs]
    if reasons:
        raise PlanError(reasons, "set ram_mb for hosts that cannot be reached")
    assert master is not None and all(workers)

    for device in workers:
        if device.usable_mb <= 0:
            settings = device.host.settings
            reasons.append(
                f"{device.host.name}: usable RAM is {device.usable_mb:.0f} MB "
                f"({device.ram_mb:.0f} MB × {settings.rpc_ram_fraction} − "
                f"{settings.rpc_overhead_mb} MB overhead): it cannot hold any tensors"
            )
    if reasons:
        raise PlanError(reasons, "remove these devices from the workers or lower rpc_overhead_mb")

    capacity = sum(device.usable_mb for device in workers)
    master_settings = master_input.settings
    model_name = os.path.basename(str(master_settings.model_name or master_settings.model_file
                                      or master_settings.model_url or ""))
    hand = _hand_split(master_input, len(workers), reasons)
    if reasons:
        raise PlanError(reasons, "give one proportion per worker in rank order, summing to 1, "
                                 "or drop llama_tensor_split to split by RAM")
    load_mode = decide.load_mode_of(master_settings, master.usable_mb, model_size_mb)
    choice = _split_choice(master, workers, hosts, model_size_mb, hand, load_mode)
    if choice is None:
        if hand is None and model_size_mb > capacity:
            raise PlanError(
                [f"cluster: model: {model_size_mb:.0f} MB does not fit the workers' usable RAM "
                 f"({capacity:.0f} MB in total)"],
                quantisation_hint(model_size_mb, capacity, model_name),
            )
        choice = ram_choice([device.usable_mb for device in workers], model_size_mb, hand)
    splits = choice.worker_shares

    for device, split in zip(workers, splits):
        share = split * model_size_mb
        # A rounding slack of one split step keeps the automatic split from refusing itself.
        if share > device.usable_mb + model_size_mb / SPLIT_STEPS:
            limit = "32-bit address space" if device.arch == "armv7l" else "usable RAM"
            reasons.append(f"{device.host.name}: share {share:.0f} MB exceeds its {limit} "
                           f"({device.usable_mb:.0f} MB)")
    if master.arch == "armv7l" and model_size_mb > decide.ARMV7_ADDRESS_LIMIT_MB:
        reasons.append(f"{master_input.name}: a 32-bit (armv7l) master cannot load a "
                       f"{model_size_mb:.0f} MB model (about {decide.ARMV7_ADDRESS_LIMIT_MB} MB address space)")
    if reasons:
        raise PlanError(reasons, "lower those shares in llama_tensor_split (or drop it to split by "
                                 "RAM), make a 64-bit host the master, or "
                                 + quantisation_hint(model_size_mb, capacity, model_name))

    planned = [_planned(master, "master", 0, choice.master_share, model_size_mb, load_mode)]
    planned += [_planned(device, "worker", rank, split, model_size_mb, port_choice=ports[device.host.name])
                for rank, (device, split) in enumerate(zip(workers, splits), start=1)]
    for entry, device in zip(planned, [master, *workers]):
        entry.ms_per_mb, entry.speed_from = _speed_fields(device)
        if entry.role == "worker":
            entry.link_mbit = _own_link(device.host)
            entry.rpc_cache = decide.rpc_cache_of(device.host.settings, entry.link_mbit)
        if gets_firewall(device.host.settings, entry.platform):
            entry.firewall = firewall_plan(entry, planned[0], device.host.settings, master_settings)
    server_host, server_port = decide.server_address_of(master_input.name, master_settings)
    serving = [host for host in planned[1:] if host.connect]
    used = [host for host in serving if host.split > 0]
    degraded = degraded_rows([host.name for host in serving], [str(host.connect) for host in serving], choice.planner)
    master_plan = MasterPlan(
        name=master_input.name,
        api_url=decide.api_url_of(master_input.name, master_settings),
        load_mode=load_mode,
        rpc=",".join(str(host.connect) for host in used),
        tensor_split=format_split(split_by_capacity([host.split for host in used])) if used else "",
        threads=planned[0].threads,
        server_host=server_host,
        server_port=server_port,
        degraded=tuple(degraded),
        gpu_layers=choice.gpu_layers,
        split_by=choice.basis,
        predicted_ms=choice.predicted_ms,
    )
    hints = [*choice.idle.values(), *_hints(planned, len(used))]
    if choice.basis == "ram" and master_settings.llama_split_by != "ram":
        unmeasured = [host.name for host in planned[1:] if host.ms_per_mb is None]
        if unmeasured and len(unmeasured) < len(planned) - 1:
            hints.append(f"split by RAM: {', '.join(unmeasured)} not measured (llamafleet plan --measure)")
    return Plan(planned, master_plan, model_size_mb, hints)


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
