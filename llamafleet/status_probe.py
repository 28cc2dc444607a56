"""What `llamafleet status` runs on a host, and the pure parsing of what it prints.

`probe_command` is one sh command printing marked sections (like llamafleet.doctor's probe);
every parser below takes text as a host prints it, so all of it is unit-tested without a host.

Restarts since the deploy: systemd's NRestarts (automatic restarts since the unit was last
started on purpose: by the deploy, or the boot). runit records no count, and llamafleet's run
script (templates/runit/run.j2) logs nothing of its own at start; so they are the lines the
service itself prints once per start (START_LINES), kept timestamped by `svlogd -tt` in its log
directory (current and rotated files), after the deploy last wrote the run script or swapped in
new binaries, less the start that deploy made. A tunnel (`ssh -N`) prints nothing at start:
its count is unknown under runit.

On a phone there is no `ss` (Android denies it): where the rpc-server listens comes from the
probes of llamafleet.serving.listening, run inside the same command and replayed here. The API
key reaches curl on the master through stdin (a curl config), never through an argv.
"""

from __future__ import annotations

import calendar
import json
import re
import shlex
import time
from dataclasses import dataclass, field, replace
from typing import Mapping

from llamafleet import probe_output
from llamafleet.probe_output import sh_path
from llamafleet.layout import paths_for
from llamafleet.plan import HostInput, PlannedHost, host_port, is_wildcard, platform_of
from llamafleet.serving.listening import check_listening
from llamafleet.serving.probes import connect_probe, process_argvs
from llamafleet.serving.wakelock import BOOT_ID_FILE

MARK = "@@llamafleet-status "
TERMUX_PREFIX, TERMUX_HOME = "/data/data/com.termux/files/usr", "/data/data/com.termux/files/home"
# What a service prints once at every start, kept by svlogd: ggml-rpc.cpp's banner (stdout,
# flushed at the latest with its first client) and llama-server's first log line (server.cpp).
START_LINES = {"llama-rpc": "Starting RPC server v", "llama-server": "initializing ..."}
SYSTEMD_PROPS = "LoadState,ActiveState,SubState,NRestarts,ActiveEnterTimestamp,ActiveEnterTimestampMonotonic"


@dataclass
class Target:
    """One host as the probe sees it: the plan's entry and where llamafleet lives there (all of
    it the plan's decisions; `rpc_binary` stands in another program for a test)."""

    planned: PlannedHost
    data: Mapping
    manager: str
    base: str
    prefix: str
    tunnels: dict[str, int] = field(default_factory=dict)  # master: service -> local port
    share_known: bool = True
    rpc_binary: str = ""
    server: tuple[str, int] = ("", 0)  # master: where llama-server listens

    @property
    def name(self) -> str:
        return self.planned.name

    @property
    def binary(self) -> str:
        return self.rpc_binary or self.planned.binary

    @property
    def services(self) -> list[str]:
        return ["llama-rpc"] if self.planned.role == "worker" else ["llama-server", *self.tunnels]

    def layout(self, service: str):
        from llamafleet.serving.services import layout_for  # lazily: it imports pyinfra's operations

        return layout_for(self.manager, service, self.prefix)


@dataclass
class ServiceState:
    name: str
    state: str  # running, starting, down, finish, failed, missing, unknown
    uptime_s: int | None = None
    restarts: int | None = None
    pid: int | None = None


def _with_stand_ins(host: HostInput, missing: bool) -> HostInput:
    """A host as the plan gets it here: a phone's home where its platform fact has none, and for a
    host whose facts could not be read a stand-in RAM, so that ranks, ports, binds and paths
    (which need no facts) are still planned."""
    device = dict(host.facts.get("DevicePlatform") or {})
    device.setdefault("platform", platform_of(host))
    device["home"] = device.get("home") or (TERMUX_HOME if device["platform"] == "termux" else "~")
    facts = {**host.facts, "DevicePlatform": device}
    if missing:
        facts["MemInfo"] = {"total_mb": 1 << 30}
    return replace(host, facts=facts)


def targets_from(gathered) -> list[Target]:
    """The plan's hosts, with where llamafleet lives on each. Hosts whose facts could not be read
    are planned with a stand-in RAM: the shares, which need every worker's RAM, are then unknown."""
    from llamafleet.plan import make_plan, model_size_from_data

    missing = {h.name for h in gathered.hosts if not (h.facts.get("MemInfo") or {}).get("total_mb")}
    hosts = [_with_stand_ins(h, h.name in missing) for h in gathered.hosts]
    plan = make_plan(hosts, model_size_from_data(hosts[0].data) or 0)  # PlanError: the caller says why
    by_name = {h.name: h for h in hosts}
    tunnels = {f"llama-tunnel-{w.name}": w.rpc_port for w in plan.workers() if w.transport == "tunnel"}
    server = (plan.master.server_host, plan.master.server_port)
    targets = []
    for planned in plan.hosts:
        source = by_name[planned.name]
        master = planned.role == "master"
        targets.append(Target(
            planned, source.data, planned.service_manager, planned.base,
            source.facts["DevicePlatform"].get("prefix") or TERMUX_PREFIX,
            tunnels if master else {}, share_known=not missing, server=server if master else ("", 0)))
    return targets


# --- the probe ---------------------------------------------------------------------------------


def listen_commands(target: Target) -> list[str]:
    """The probes check_listening runs for a worker (recorded, to be run inside the one command)."""
    seen: list[str] = []
    check_listening(lambda command: (seen.append(command), (0, ""))[1], target.planned, target.binary)
    return seen


def probe_command(target: Target) -> str:
    paths, termux = paths_for(target.base), target.planned.platform == "termux"
    q = sh_path
    sections = [("uptime", "cat /proc/uptime"), ("boot_id", f"cat {BOOT_ID_FILE}"),
                ("meminfo", "cat /proc/meminfo"), ("temps", "cat /sys/class/thermal/thermal_zone*/temp")]
    for name in target.services:
        layout = target.layout(name)
        if target.manager == "systemd":
            sections.append((f"svc {name}", f"systemctl show -p {SYSTEMD_PROPS} llamafleet-{name}.service"))
            continue
        sections.append((f"svc {name}", f"SVDIR={q(layout.svdir)} sv status {name}"))
        if name in START_LINES:  # the deploy's last change: the run script, or the binaries
            logs = q(layout.log_dir)
            sections += [(f"defined {name}", f"stat -c %Y {q(layout.definition_dir + '/run')} {q(paths.bin)}"),
                         (f"starts {name}", f"cat {logs}/@* {logs}/current | grep -F -- {shlex.quote(START_LINES[name])}")]
    if termux:
        binary = target.binary
        sections += [("record", f"cat {q(paths.wake_lock_record)}"),
                     ("cpuset_of", f"p=$({{ {process_argvs(binary)}; }} | head -n 1 | cut -f 1); echo ${{p:-self}}"),
                     ("cpuset", "cat /proc/${p:-self}/cpuset"), ("allowed", "cat /proc/${p:-self}/status"),
                     ("cpus", "cat /sys/devices/system/cpu/present"), ("battery", "timeout 5 termux-battery-status")]
        probes = listen_commands(target) if target.planned.role == "worker" else [
            connect_probe("127.0.0.1" if is_wildcard(a) else a, p) for a, p in
            [target.server, *(("127.0.0.1", port) for port in target.tunnels.values())]]
        sections += [(f"listen{i}", command) for i, command in enumerate(probes)]
    else:
        sections.append(("ss", "ss -Htln"))
    lock = q(f"{paths.run}/build.lock")
    # The lock directory is made when the build starts: its age is the build's elapsed time.
    sections += [("build_lock", f'for f in pid worker; do p=$(cat {lock}/$f) && kill -0 "$p" && echo "$f $p"; done; '
                                f'm=$(stat -c %Y {lock} 2>/dev/null) && echo "age $(( $(date +%s) - m ))"'),
                 ("build_log", f"grep -E '^\\[[0-9]+/[0-9]+\\] |^llamafleet: ' {q(paths.build_log)} | tail -n 40")]
    if target.planned.role == "master":
        address, port = target.server
        url = f"http://{host_port('127.0.0.1' if is_wildcard(address) else address, port)}"
        auth = f"printf 'header = \"Authorization: Bearer %s\"\\n' \"$(cat {q(target.base + '/etc/api-key')})\""
        curl = "curl -sS --max-time 5 -w '\\n@@http %{http_code}\\n'"
        sections += [("health", f"{curl} {url}/health 2>&1"),
                     ("metrics", f"m=$({auth} | {curl} -K - {url}/metrics 2>&1); echo \"$m\""),
                     ("slots", f'case $m in *"@@http 200"*) ;; *) {auth} | {curl} -K - {url}/slots 2>&1;; esac')]
    return "exec 2>/dev/null; " + " ".join(f"echo '{MARK}{key}'; {command};" for key, command in sections) + " true"


def parse_sections(output: str) -> dict[str, str]:
    return probe_output.parse_sections(output, MARK)


# --- pure parsers ------------------------------------------------------------------------------


def parse_sv_status(text: str) -> ServiceState:
    """`sv status` → state, pid, seconds in it ("run: llama-rpc: (pid 812) 3600s; run: log: ...");
    "unsupervised" when the service exists but no runsv watches it (runsvdir is not running),
    "missing" when it does not exist."""
    match = re.match(r"(run|down|finish): [^:]+: (?:\(pid (\d+)\) )?(\d+)s", text.strip())
    if not match:
        if "supervise/ok" in text or "runsv not running" in text:
            return ServiceState("", "unsupervised")
        return ServiceState("", "missing" if text.strip() else "unknown")
    state = {"run": "running"}.get(match.group(1), match.group(1))
    return ServiceState("", state, int(match.group(3)), pid=int(match.group(2)) if match.group(2) else None)


def parse_systemd_show(text: str, uptime_s: float | None) -> ServiceState:
    """`systemctl show -p ...` → state, uptime (monotonic timestamp vs /proc/uptime), NRestarts."""
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    if props.get("LoadState") == "not-found":
        return ServiceState("", "missing")
    active, sub = props.get("ActiveState", ""), props.get("SubState", "")
    state = {"active": "running" if sub == "running" else sub or "running", "activating": "starting",
             "inactive": "down", "failed": "failed"}.get(active, "unknown")
    entered = props.get("ActiveEnterTimestampMonotonic", "")
    up = int(uptime_s - int(entered) / 1e6) if state == "running" and entered.isdigit() and int(entered) and uptime_s else None
    restarts = props.get("NRestarts", "")
    return ServiceState("", state, up, int(restarts) if restarts.isdigit() else None)


def svlogd_time(line: str) -> int | None:
    """Seconds since the epoch of a `svlogd -tt` line ("2026-10-02_08:15:42.51234 text", UTC)."""
    match = re.match(r"(\d{4}-\d\d-\d\d_\d\d:\d\d:\d\d)", line)
    return calendar.timegm(time.strptime(match.group(1), "%Y-%m-%d_%H:%M:%S")) if match else None


def restarts_since(start_lines: str, defined: str) -> int | None:
    """Starts logged after the deploy last changed the service (newest of the stat times), less
    the start that deploy made; None when the deploy time is unknown."""
    times = [int(t) for t in defined.split() if t.isdigit()]
    if not times:
        return None
    starts = [t for t in map(svlogd_time, start_lines.splitlines()) if t is not None and t >= max(times) - 1]
    return max(len(starts) - 1, 0)


def parse_temperatures(text: str) -> float | None:
    """The hottest thermal zone in °C (most zones give m°C; unused ones 0 or -273), else None."""
    values = [int(v) / 1000 if abs(int(v)) >= 1000 else int(v) for v in text.split() if re.fullmatch(r"-?\d+", v)]
    return max((v for v in values if 0 < v < 150), default=None)


def parse_prometheus(text: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus text exposition, "llamacpp:" prefix removed."""
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([A-Za-z_:][\w:]*)\s+(\S+)(?:\s+\d+)?", line.strip())
        if match:  # comments ("# TYPE ...") and labelled samples do not match
            try:
                found[match.group(1).removeprefix("llamacpp:")] = float(match.group(2))
            except ValueError:
                pass
    return found


def http_answer(text: str) -> tuple[int, str]:
    """(HTTP status, body) of a section curl wrote with its `@@http CODE` trailer (0: no answer)."""
    body, _, code = text.rstrip("\n").rpartition("\n@@http ")
    return (int(code), body) if code.isdigit() else (0, text)


def parse_server(health: str, metrics: str, slots: str) -> dict:
    """tokens/s and queue from /metrics, else busy slots from /slots; health from /health."""
    status, body = http_answer(health)
    server: dict = {"healthy": status == 200, "health": body.strip()[:160], "source": None}
    status, body = http_answer(metrics)
    if status == 200:
        values = parse_prometheus(body)
        window, spent = values.get("predicted_tokens_seconds"), values.get("tokens_predicted_seconds_total")
        average = values["tokens_predicted_total"] / spent if spent and "tokens_predicted_total" in values else None
        return {**server, "source": "metrics", "tokens_per_second": window or None, "tokens_per_second_avg": average,
                "processing": values.get("requests_processing"), "deferred": values.get("requests_deferred")}
    server["metrics_error"] = f"HTTP {status}: {body.strip()[:120]}" if status else body.strip()[:120]
    status, body = http_answer(slots)
    try:
        listed = json.loads(body) if status == 200 else None
    except ValueError:
        listed = None
    if isinstance(listed, list):
        server.update(source="slots", slots=len(listed), processing=sum(bool(s.get("is_processing")) for s in listed))
    return server


def parse_build(lock: str, log: str) -> dict | None:
    """A build script holding its lock with a live process: its phase, last ninja [N/M], the
    seconds since it started and, once a few steps are done, an estimate of the seconds left
    (steps still to do at the pace so far: llama.cpp's steps are of similar size but for a few)."""
    if not re.search(r"^(pid|worker) \d+", lock, re.M):
        return None
    age = re.search(r"^age (\d+)", lock, re.M)
    elapsed = int(age.group(1)) if age else None
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"llamafleet: (configure|compile start|install start)", line)]
    after = lines[starts[-1]:] if starts else lines
    steps = [re.match(r"\[(\d+)/(\d+)\]", line) for line in after]
    step = next((m for m in reversed(steps) if m), None)
    phase = "installing" if starts and "install start" in lines[starts[-1]] else "compiling"
    done, total = (int(step.group(1)), int(step.group(2))) if step else (None, None)
    left = round(elapsed * (total - done) / done) if elapsed is not None and done and done >= MIN_STEPS_FOR_ESTIMATE else None
    return {"phase": phase, "step": done, "total": total, "elapsed_s": elapsed, "left_s": left}


# Before this many steps the pace says little (configure-time steps are quick).
MIN_STEPS_FOR_ESTIMATE = 5


def listeners(ss_text: str) -> dict[int, list[str]]:
    """`ss -Htln` → port: local addresses listening on it (brackets removed, "*" for any)."""
    found: dict[int, list[str]] = {}
    for line in ss_text.splitlines():
        local = next((f for f in line.split() if re.fullmatch(r"\S*:\d+", f)), None)
        if local:
            address, port = local.rsplit(":", 1)
            found.setdefault(int(port), []).append(address.strip("[]").split("%")[0])
    return found
