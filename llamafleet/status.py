"""`llamafleet status INVENTORY`: the whole cluster at a glance, one row per host.

Every host at once (one thread each) runs one SSH command (llamafleet.status_probe); `evaluate`
turns its sections into a HostStatus with the problems found, each with the one-line fix to
try. Roles, ranks and shares are the plan's: `make_plan` on every host's facts, read once with
`gather_facts`, as `llamafleet plan` and the deploy make it. Shown by llamafleet.status_render
(a table, --json, --watch); exit 1 when a host has a problem.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping

from llamafleet.diagnose import bind_row
from llamafleet.doctor import BACKGROUND_CPUSETS, BATTERY_FIX, HOT_CELSIUS, cpu_list
from llamafleet.layout import TERMUX_BOOT_SCRIPT, paths_for
from llamafleet.plan import host_port, is_wildcard
from llamafleet.privilege import as_deployed, uses_sudo
from llamafleet.serving.listening import check_listening
from llamafleet.serving.probes import ACCEPTED, TIMEOUT
from llamafleet.serving.wakelock import parse_record
from llamafleet.status_probe import (
    MARK, START_LINES, ServiceState, Target, listen_commands, listeners, parse_build, parse_sections,
    parse_server, parse_sv_status, parse_systemd_show, parse_temperatures, probe_command, restarts_since,
    targets_from,
)

RESTARTS_PROBLEM = 3  # a crash loop, not the one restart a worker's restart causes upstream
LOW_MEMORY_FRACTION, LOW_BATTERY = 0.05, 15

Runner = Callable[[str, Mapping, str], "tuple[int, str, str]"]  # (host, data, command) -> code, out, err


@dataclass
class Problem:
    check: str
    detail: str
    fix: str
    severity: str = "fail"  # or "warn"; either makes the exit code 1


@dataclass
class HostStatus:
    host: str
    role: str
    rank: int
    platform: str
    reachable: bool = False
    error: str = ""
    services: list[ServiceState] = field(default_factory=list)
    bound: str = "unknown"
    memory: dict | None = None  # total_mb, available_mb, used_mb
    temperature_c: float | None = None
    share: dict | None = None  # workers: fraction and MB of the model
    server: dict | None = None  # master: tokens/s and queue
    build: dict | None = None  # a compile in progress
    phone: dict | None = None  # wake lock, battery, cpuset
    problems: list[Problem] = field(default_factory=list)


# --- judging one host --------------------------------------------------------------------------


def log_of(target: Target, service: str) -> str:
    if target.manager == "systemd":
        return f"journalctl -u llamafleet-{service}"
    return f"{target.layout(service).log_dir}/current"


def service_fix(target: Target, service: str, state: str, master: str) -> str:
    """The one line to try for a service that is not running (or keeps restarting)."""
    if state == "missing":
        return "deploy again (pyinfra INVENTORY deploy.py): the service is not defined here"
    if state == "unsupervised":  # runsvdir is not running: nothing starts the services
        if target.planned.platform == "termux":
            return f"run ~/{TERMUX_BOOT_SCRIPT} in Termux (it starts termux-services)"
        return "start runit's runsvdir (systemctl start runit), or deploy again"
    where = f" on {master}" if service.startswith("llama-tunnel-") else ""
    if target.manager == "systemd":
        command = f"systemctl restart llamafleet-{service}{where}"
    else:
        verb = "restart" if where else "up"
        command = f"SVDIR={target.layout(service).svdir} sv {verb} {service}{where}"
    return f"{command} (log: {log_of(target, service)}); if it stays down, deploy again"


def _bound(target: Target, status: HostStatus, s: dict[str, str], master: str) -> list[Problem]:
    """Where the services listen: `ss` on Linux, the connect probes on a phone (no ss there).
    Only running services are judged: a stopped one has its own problem already."""
    planned, problems = target.planned, []
    running = {service.name for service in status.services if service.state == "running"}
    if planned.platform == "termux" and planned.role == "worker":
        commands = listen_commands(target)
        listening = check_listening(lambda c: (0, s.get(f"listen{commands.index(c)}", "")), planned, target.binary)
        # A local connect that times out met a full backlog: an rpc-server busy with its client.
        answer = "busy (serving its client)" if listening.at_endpoint == TIMEOUT else listening.at_endpoint
        status.bound, row = f"{listening.endpoint} {answer}", bind_row(planned.name, listening)
        if "llama-rpc" in running and row.status != "ok":
            problems.append(Problem("bound", row.detail, row.fix, row.status))
        return problems
    wanted = ([("llama-rpc", planned.address, planned.rpc_port)] if planned.role == "worker" else
              [("llama-server", *target.server), *((name, "127.0.0.1", port) for name, port in target.tunnels.items())])
    found = listeners(s.get("ss", ""))
    if planned.platform != "termux" and not found:
        status.bound = "unknown (ss shows no listening socket)"
        return problems
    texts = []
    for i, (service, address, port) in enumerate(wanted):
        planned_at, elsewhere, exposed = host_port(address, port), False, False
        if planned.platform == "termux":  # a phone master: the connect probes, in `wanted` order
            text = (s.get(f"listen{i}", "").strip().splitlines() or ["no answer"])[-1]
            listening = text.split()[0] in (ACCEPTED, TIMEOUT)
        else:
            bound = found.get(port, [])
            text, listening = ", ".join(host_port(a, port) for a in bound), bool(bound)
            anywhere = any(is_wildcard(a) or a == "*" for a in bound)
            exposed = anywhere and not is_wildcard(address)
            elsewhere = bool(bound) and not anywhere and address not in bound and _is_ip(address)
        texts.append(text or f"nothing on {planned_at}")
        if service not in running:
            continue
        if not listening:
            tunnel = service.startswith("llama-tunnel-")
            problems.append(Problem(service, f"{'dead tunnel: ' * tunnel}nothing listens on {planned_at}",
                                    service_fix(target, service, "dead", master) if tunnel else f"read its log: {log_of(target, service)}"))
        elif exposed or elsewhere:
            key = "rpc_bind" if service == "llama-rpc" else "llama_server_host"
            problems.append(Problem("bound", f"{service} planned on {planned_at}, listening on {text}",
                                    f"unset {key} (or set it to one address), then deploy again" if exposed
                                    else "deploy again: the running server is not the planned one"))
    status.bound = "; ".join(texts)
    return problems


def _is_ip(address: str) -> bool:
    try:
        return bool(ipaddress.ip_address(address))
    except ValueError:
        return False


def evaluate(target: Target, s: dict[str, str], master: str = "") -> HostStatus:
    from llamafleet.cpu.meminfo import parse_meminfo

    planned = target.planned
    status = new_status(target, True)
    problems = status.problems
    paths = paths_for(target.base)
    status.build = parse_build(s.get("build_lock", ""), s.get("build_log", ""))
    uptime = (s.get("uptime", "").split() or [""])[0]
    for name in target.services:
        text = s.get(f"svc {name}", "")
        if target.manager == "systemd":
            state = parse_systemd_show(text, float(uptime) if re.fullmatch(r"[\d.]+", uptime) else None)
        else:
            state = parse_sv_status(text)
            if name in START_LINES:
                state.restarts = restarts_since(s.get(f"starts {name}", ""), s.get(f"defined {name}", ""))
        state.name = name
        status.services.append(state)
        if state.state != "running":
            fix = service_fix(target, name, state.state, master)
            if status.build:
                fix = f"a build is running: wait for the deploy to finish (tail -f {paths.build_log})"
            problems.append(Problem(name, f"{name} is {state.state}", fix))
        elif (state.restarts or 0) >= RESTARTS_PROBLEM:
            problems.append(Problem(name, f"{name} restarted {state.restarts} times since the deploy (crash loop?)",
                                    f"read its log: {log_of(target, name)}", "warn"))
    problems += _bound(target, status, s, master)

    memory = parse_meminfo(s.get("meminfo", ""))
    if memory.get("total_mb") and memory.get("available_mb") is not None:
        status.memory = {**memory, "used_mb": memory["total_mb"] - memory["available_mb"]}
        if memory["available_mb"] < LOW_MEMORY_FRACTION * memory["total_mb"]:
            problems.append(Problem("memory", f"{memory['available_mb']} MB available of {memory['total_mb']}",
                                    "a smaller share for this host (llama_tensor_split) or a smaller model", "warn"))
    status.temperature_c = parse_temperatures(s.get("temps", ""))
    if status.temperature_c is not None and status.temperature_c >= HOT_CELSIUS:
        problems.append(Problem("temperature", f"{status.temperature_c:.0f} °C",
                                "throttling likely: cool the device, fewer threads (rpc_threads)", "warn"))

    if planned.role == "master":
        status.server = parse_server(s.get("health", ""), s.get("metrics", ""), s.get("slots", ""))
        if status.services and status.services[0].state == "running" and not status.server["healthy"]:
            problems.append(Problem("llama-server", f"not ready: {status.server['health'] or 'no answer'}",
                                    "wait (it waits for the workers, then loads the model); else read its log", "warn"))
    if planned.platform == "termux":
        status.phone = _phone(s, paths.wake_lock_record, problems, planned.cpu_pin)
    return status


def _phone(s: dict[str, str], record: str, problems: list[Problem], pin: str | None = None) -> dict:
    boot_id, taken = s.get("boot_id", "").strip().lower(), parse_record(s.get("record", ""))
    wake = "unknown" if not boot_id else "taken" if taken and taken.boot_id == boot_id else "not taken"
    if wake == "not taken":
        problems.append(Problem("wake lock", f"not taken since this boot (record {record}): the phone dozes",
                                f"run ~/{TERMUX_BOOT_SCRIPT} in Termux (takes and records it)"))
    try:
        battery = json.loads(s.get("battery", "")) if s.get("battery", "").strip() else None
    except ValueError:
        battery = None
    if isinstance(battery, dict) and isinstance(battery.get("percentage"), (int, float)):
        battery = {k: battery.get(k) for k in ("percentage", "status", "plugged", "temperature")}
        if battery["percentage"] <= LOW_BATTERY and battery["status"] not in ("CHARGING", "FULL"):
            problems.append(Problem("battery", f"{battery['percentage']}% and {str(battery['status']).lower()}",
                                    "plug the phone in", "warn"))
    else:
        battery = None
    allowed = re.search(r"^Cpus_allowed_list:\s*(\S+)", s.get("allowed", ""), re.M)
    cpuset, cpus = s.get("cpuset", "").strip(), cpu_list(s.get("cpus", ""))
    held = cpu_list(allowed.group(1)) if allowed else set()
    # A pinned worker is held to its big cores by its own taskset, not by Android.
    pinned = bool(pin) and held == cpu_list(pin)
    if cpus and held and (held < cpus and not pinned or cpuset.strip("/") in BACKGROUND_CPUSETS):
        problems.append(Problem("cpuset", f"{cpuset or '?'}: held to CPUs {allowed.group(1)} of {len(cpus)}",
                                f"battery: Unrestricted ({BATTERY_FIX}); keep Termux in the foreground", "warn"))
    elif pin and held and not pinned:  # a cpuset move reset its affinity (kernels before 6.2)
        problems.append(Problem("cpuset", f"llama-rpc runs on CPUs {allowed.group(1)}, not its big cores {pin}",
                                "sv restart llama-rpc on the phone: it starts pinned again", "warn"))
    return {"wake_lock": wake, "wake_lock_at": taken.taken_at if taken else None, "battery": battery,
            "cpuset": cpuset or None, "cpus_allowed": allowed.group(1) if allowed else None,
            "cpus": len(cpus) or None, "cpuset_of": s.get("cpuset_of", "").strip() or None}


# --- the command -------------------------------------------------------------------------------


def ssh_runner(name: str, data: Mapping, command: str) -> tuple[int, str, str]:
    from llamafleet.connect import run, ssh_client

    client = ssh_client(name, data, timeout=10)
    try:
        return run(client, command, timeout=90)
    finally:
        client.close()


def new_status(target: Target, reachable: bool, error: str = "") -> HostStatus:
    planned = target.planned
    status = HostStatus(planned.name, planned.role, planned.rank, planned.platform, reachable, error)
    if planned.role == "worker":  # the plan's, whether or not the host answers
        known = target.share_known
        status.share = {"fraction": planned.split if known else None, "mb": planned.share_mb if known else None}
    return status


def check_host(target: Target, runner: Runner, master: str) -> HostStatus:
    # Through sudo where the deploy uses it: the probe reads what the deploy wrote as root.
    command = as_deployed(probe_command(target), target.data)
    try:
        code, output, error = runner(target.name, target.data, command)
    except Exception as failure:  # unreachable: its row says so, the others still come
        down = new_status(target, False, f"{type(failure).__name__}: {failure}")
        down.problems.append(Problem("ssh", f"unreachable: {down.error}",
                                     "is the device on and sshd running? (Termux: open it, `sshd`, port 8022)"))
        return down
    if MARK not in output:
        down = new_status(target, True, f"exit {code}: {error.strip()[:120]}")
        fix = ("let the SSH user run sudo without a password (NOPASSWD): llamafleet status types none"
               if uses_sudo(target.data) and "sudo" in error else "is `sh` on the SSH user's PATH?")
        down.problems.append(Problem("probe", f"the status command failed ({down.error})", fix))
        return down
    return evaluate(target, parse_sections(output), master)


def collect(targets: list[Target], runner: Runner = ssh_runner) -> list[HostStatus]:
    """Every host at once, one thread and one SSH command each; rows in plan order."""
    master = next((t.name for t in targets if t.planned.role == "master"), "the master")
    with ThreadPoolExecutor(max_workers=max(len(targets), 1)) as pool:
        return list(pool.map(lambda target: check_host(target, runner, master), targets))


def to_json(statuses: list[HostStatus], notes: list[str] = ()) -> dict:
    problems = sum(len(s.problems) for s in statuses)
    return {"hosts": [asdict(s) for s in statuses], "problems": problems, "ok": problems == 0, "notes": list(notes)}


def run_status(args: argparse.Namespace, runner: Runner = ssh_runner, gather=None, out=None) -> int:
    from llamafleet.gather import GatherError, gather_facts
    from llamafleet.inventory_data import InventoryError
    from llamafleet.layout import LayoutError
    from llamafleet.plan import PlanError
    from llamafleet.status_render import show

    try:
        gathered = (gather or gather_facts)(args.inventory)
        targets = targets_from(gathered)
    except (GatherError, InventoryError, LayoutError, PlanError) as error:
        print(error, file=sys.stderr)
        return 2
    notes = [f"{host}: {error} (so the workers' shares are unknown)" for host, error in gathered.errors.items()]
    from llamafleet.picture import drawing_status  # --svg FILE: redrawn from every snapshot

    fetch = drawing_status(lambda: collect(targets, runner), targets, getattr(args, "svg", None), notes)
    return show(fetch, args, out or sys.stdout, notes)


def register(subparsers) -> None:
    parser = subparsers.add_parser("status", help="the whole cluster at a glance: services, binds, RAM, heat, phones")
    parser.add_argument("inventory")
    parser.add_argument("--json", action="store_true", help="print the same data as JSON (one document per refresh)")
    parser.add_argument("--watch", nargs="?", type=float, const=5.0, default=None, metavar="SECONDS",
                        help="refresh in place every SECONDS (default 5) until interrupted")
    parser.add_argument("--svg", metavar="FILE", help="also draw the cluster and its problems as an SVG picture in FILE")
    parser.set_defaults(func=run_status)
