"""`llamafleet plan --measure`: a short, bounded benchmark of the master and of each worker
through RPC and its link, kept on each device for later plans (llamafleet.plan.speed).

On a deployed cluster, from the controller:
1. each worker's link: a bounded upload over SSH (at most LINK_SECONDS). The controller stands
   for the master here: on a home network both reach the phone over the same Wi-Fi, whose
   airtime is the narrow part;
2. the master's llama-server service is stopped (every rpc-server takes one client, and the
   service holds them all), and on the master llama-server runs on 127.0.0.1 with -ngl 0 (the
   master's CPU alone), then once per worker with that worker's --rpc and as many of the last
   layers as its RAM holds and its link sends in LOAD_SECONDS, each run two short completions
   (templates/llamafleet/libexec/measure.bash.j2);
3. the service is started again, whatever happened, and each device gets its record
   (templates/llamafleet/etc/speed.j2) at <base>/etc/speed, read back by the SpeedRecord fact.
"""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timezone

from llamafleet.connect import run, ssh_client, upload_mbit
from llamafleet.layout import paths_for
from llamafleet.measure_math import MeasureError, RunResult, layers_to_measure, parse_run, worker_ms_per_mb
from llamafleet.plan import Plan, PlannedHost
from llamafleet.privilege import as_deployed
from llamafleet.serving.services import layout_for
from llamafleet.templates import render

LINK_SECONDS = 3.0
LINK_LIMIT_BYTES = 64 * 1024 * 1024
LOAD_SECONDS = 20.0  # what a worker's share may take to send while measured
LOAD_LIMIT = 240  # a run that has not loaded by then fails (a link far slower than measured)
TOKENS = 16
PROMPT = "The three primary colours are"


def _service_command(master: PlannedHost, prefix: str | None, action: str) -> str:
    """Stop ("down") or start ("up") the master's llama-server service."""
    if master.service_manager == "systemd":
        return f"systemctl {'stop' if action == 'down' else 'start'} llamafleet-llama-server"
    svdir = layout_for(master.service_manager, "llama-server", prefix).svdir
    return f"SVDIR={shlex.quote(str(svdir))} sv -w 30 {action} llama-server"


def _script(plan: Plan, master: PlannedHost, bash: str, ngl: str, rpc: str | None) -> str:
    """The measurement script for one run, as one bash -c argument."""
    argv = [f"{master.base}/bin/{master.binary}", "-m", str(master.model_path), "--host", "127.0.0.1",
            "--port", str(plan.master.server_port), "-ngl", ngl, "-t", str(plan.master.threads), "-c", "512",
            "--load-mode", plan.master.load_mode,
            # Verbosity 4: llama.cpp's own load lines (n_layer, each device's model buffer size).
            "-lv", "4"]
    if rpc:
        argv += ["--rpc", rpc, "-ts", "1"]
    # The deployed key: on a phone any app may reach 127.0.0.1, for as long as this runs.
    key_file = f"{master.base}/etc/api-key"
    argv += ["--api-key-file", key_file]
    command = shlex.join(argv)
    if master.service_user:  # as the service runs it: the model is readable by its group
        command = (f"setpriv --reuid {shlex.quote(master.service_user)} --regid {shlex.quote(str(master.service_group))} "
                   f"--clear-groups {command}")
    return render("llamafleet/libexec/measure.bash.j2", bash=bash, port=plan.master.server_port,
                  log=f"{paths_for(str(master.base)).logs}/measure.log", command=command, load_limit=LOAD_LIMIT,
                  prompt=json.dumps(PROMPT), tokens=TOKENS, key_file=key_file)


def _build_id(client, data, path: str) -> str:
    code, out, _ = run(client, as_deployed(f"sha256sum {shlex.quote(path)}", data))
    return out.split()[0][:12] if code == 0 and out else "unknown"


def _write_record(client, data, planned: PlannedHost, values: dict) -> None:
    path = paths_for(str(planned.base)).speed_record
    text = render("llamafleet/etc/speed.j2", **values)
    stdin, stdout, stderr = client.exec_command(as_deployed(f"cat > {shlex.quote(path)}", data), timeout=30)
    stdin.write(text)
    stdin.channel.shutdown_write()
    if stdout.channel.recv_exit_status() != 0:
        raise MeasureError(f"{planned.name}: cannot write {path}: {stderr.read().decode(errors='replace').strip()}")


def _run_hung_up(client, command: str, timeout: float) -> str:
    """Run `command` with a terminal: when the controller goes away (Ctrl-C, a lost link),
    sshd hangs it up and the script's HUP trap ends its llama-server, which would otherwise
    keep the port and a worker's only connection. Its output (stderr merged in by the pty)."""
    _, stdout, _ = client.exec_command(command, timeout=timeout, get_pty=True)
    out = stdout.read().decode(errors="replace")
    stdout.channel.recv_exit_status()
    return out.replace("\r\n", "\n")  # a terminal ends its lines with CR LF


def _restart_master(client, master: PlannedHost, data, prefix, say) -> None:
    """Start the master's service again; through a fresh connection when the first is gone."""
    command = as_deployed(_service_command(master, prefix, "up"), data)
    for attempt in range(2):
        try:
            if attempt:
                client = ssh_client(master.name, data)
            run(client, command, timeout=60)
            return
        except Exception as error:  # noqa: BLE001 - any failure: try once more, then say how
            if attempt:
                say(f"{master.name}: could not start llama-server again ({error}): run `{command}` there")


def measure(plan: Plan, hosts: list, say=print) -> list[dict]:
    """Measure the cluster of `plan` (HostInputs `hosts` give each host's data and facts) and
    write the records; the records' values, master first. MeasureError says what failed."""
    data = {host.name: host.data for host in hosts}
    facts = {host.name: host.facts for host in hosts}
    master = plan.hosts[0]
    if plan.model_size_mb > master.usable_mb:
        # The master's CPU alone is the yardstick every worker is measured against.
        raise MeasureError(f"{master.name}: measuring loads the whole model ({plan.model_size_mb:.0f} MiB) on the "
                           f"master once, beyond its usable RAM ({master.usable_mb:.0f} MiB): split by RAM or by "
                           "hand (llama_tensor_split), or make a host that holds the model the master")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    model_sha = str(data[master.name].get("model_sha256") or "unknown").lower()
    links: dict[str, float] = {}
    for worker in plan.workers():
        client = ssh_client(worker.name, data[worker.name])
        try:
            links[worker.name] = upload_mbit(client, LINK_LIMIT_BYTES, LINK_SECONDS)
        finally:
            client.close()
        say(f"{worker.name}: link {links[worker.name]:.0f} Mbit/s")

    prefix = (facts[master.name].get("DevicePlatform") or {}).get("prefix")
    bash = layout_for(master.service_manager, "llama-server", prefix).bash
    client = ssh_client(master.name, data[master.name])
    master_data = data[master.name]

    def one_run(ngl: str, rpc: str | None) -> RunResult:
        script = _script(plan, master, bash, ngl, rpc)
        limit = LOAD_LIMIT + 120
        command = f"timeout {limit} {shlex.quote(bash)} -c {shlex.quote(script)}"
        return parse_run(_run_hung_up(client, as_deployed(command, master_data), timeout=limit + 30))

    runs: dict[str, tuple[int, RunResult]] = {}
    try:
        code, _, err = run(client, as_deployed(_service_command(master, prefix, "down"), master_data), timeout=60)
        if code != 0:
            raise MeasureError(f"{master.name}: cannot stop llama-server: {err.strip()}")
        alone = one_run("0", None)
        if not alone.n_layer:
            raise MeasureError(f"{master.name}: llama-server's log gave no n_layer (see {master.base}/logs/measure.log)")
        for worker in plan.workers():
            layers = layers_to_measure(alone.n_layer, plan.model_size_mb, worker.usable_mb, links[worker.name],
                                       LOAD_SECONDS)
            runs[worker.name] = (layers, one_run("all" if layers > alone.n_layer else str(layers), str(worker.connect)))
        # Once more at the end: a phone master that warmed up (and slowed down) meanwhile would
        # otherwise make every worker look slower by what its own CPU lost.
        again = one_run("0", None)
    finally:
        _restart_master(client, master, master_data, prefix, say)
        client.close()

    master_speed = (alone.ms_per_token + again.ms_per_token) / 2 / plan.model_size_mb
    say(f"{master.name}: alone {1000 / alone.ms_per_token:.1f} then {1000 / again.ms_per_token:.1f} tokens/s: "
        f"{master_speed:.4f} ms per MiB")
    records = [{"host": master, "role": "master", "ms_per_mb": master_speed, "measured_mb": plan.model_size_mb,
                "link_mbit": None, "n_layer": alone.n_layer, "threads": plan.master.threads}]
    for worker in plan.workers():
        layers, result = runs[worker.name]
        speed = worker_ms_per_mb(result, master_speed, plan.model_size_mb)
        say(f"{worker.name}: {layers} of {alone.n_layer + 1} layers ({result.rpc_mb:.0f} MiB), "
            f"{1000 / result.ms_per_token:.1f} tokens/s, loaded in {result.load_ms / 1000:.1f} s: "
            f"{speed:.4f} ms per MiB")
        records.append({"host": worker, "role": "worker", "ms_per_mb": speed, "measured_mb": result.rpc_mb,
                        "link_mbit": links[worker.name], "n_layer": None, "threads": worker.threads})

    from llamafleet.plan.decide import device_class_of

    for record in records:
        planned: PlannedHost = record.pop("host")
        device = ssh_client(planned.name, data[planned.name])
        try:
            build = _build_id(device, data[planned.name], f"{paths_for(str(planned.base)).bin}/{planned.binary}")
            host_input = next(host for host in hosts if host.name == planned.name)
            values = {**record, "device_class": device_class_of(host_input.settings, host_input.facts) or "-",
                      "build": build, "model_sha256": model_sha, "measured_at": now,
                      "ms_per_mb": f"{record['ms_per_mb']:.6g}", "measured_mb": f"{record['measured_mb']:.1f}",
                      "link_mbit": None if record["link_mbit"] is None else f"{record['link_mbit']:.1f}"}
            _write_record(device, data[planned.name], planned, values)
        finally:
            device.close()
        record.update(name=planned.name, measured_at=now)
    return records
