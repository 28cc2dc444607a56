"""`llamafleet diagnose INVENTORY`: what stands between the master and each worker.

For every worker, from the master's side where it matters: TCP connect and its latency, a real
RPC HELLO (protocol version), a bounded transfer for bandwidth, a path-MTU check, the bind
address, and on phones the wake lock and heat. One row per check, ok / warn / fail, with the fix
to try, in the spirit of the seed guide's troubleshooting table. Exit 1 when a check fails.

Nothing here runs `ss` on a worker: Android 10+ denies it to apps. Where the rpc-server listens
and whether the master uses it come from llamafleet.serving.listening (connect probes, the
process's command line, and the master's own connections).
"""

from __future__ import annotations

import argparse
import re
import socket
import struct
import sys
import time
from dataclasses import dataclass

from llamafleet.connect import run, ssh_client, upload_mbit
from llamafleet.gather import gather_facts
from llamafleet.layout import TERMUX_BOOT_SCRIPT
from llamafleet.plan import PlanError, PlannedHost, make_plan, model_size_from_data
from llamafleet.serving.listening import Listening, check_listening, master_connections
from llamafleet.serving.probes import rpc_hello_request, tcp_reachable

# ggml-rpc's HELLO (protocol v7), whose request bytes llamafleet.serving.probes makes: the answer
# is a 64-bit size, then major, minor, patch, padding and the server's 24 capability bytes.
RPC_PROTO_MAJOR = 7
HOT_CELSIUS = 70
TRANSFER_BYTES = 16 * 1024 * 1024


@dataclass
class Row:
    worker: str
    check: str
    status: str  # ok, warn, fail
    detail: str
    fix: str = ""


def rpc_hello(sock: socket.socket) -> tuple[int, int, int]:
    """Send HELLO on a connected socket-like object; the server's (major, minor, patch)."""
    sock.sendall(rpc_hello_request())
    header = _recv_exactly(sock, 8)
    (size,) = struct.unpack("<Q", header)
    body = _recv_exactly(sock, size)
    return body[0], body[1], body[2]


def _recv_exactly(sock, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection (an older protocol, or busy)")
        data += chunk
    return data


def _runner(client):
    """A `run` for llamafleet.serving.listening: (exit status, stdout) of a command over SSH."""
    return lambda command: run(client, command)[:2]


def bind_row(name: str, listening: Listening) -> Row:
    """The bind-address row from the worker's own probes (no ss: phones have none)."""
    if not listening.listening:
        return Row(name, "bind address", "fail", f"nothing listens on {listening.endpoint} ({listening.at_endpoint})",
                   "check the worker service: sv status llama-rpc (logs: llama-rpc/current)")
    if listening.exposed:
        return Row(name, "bind address", "warn",
                   f"{listening.elsewhere} is not refused ({listening.at_elsewhere}): open to the whole network",
                   "unset rpc_bind (bind the cluster address) or use rpc_transport = tunnel")
    if not listening.process_matches:
        return Row(name, "bind address", "fail", "; ".join(listening.problems()),
                   "deploy again: the running rpc-server is not the planned one")
    return Row(name, "bind address", "ok", listening.summary())


def hello_row(name: str, sock) -> Row:
    """The RPC protocol row from a HELLO on a connected socket-like object."""
    try:
        major, minor, patch = rpc_hello(sock)
    except (OSError, ConnectionError) as error:
        return Row(name, "RPC protocol", "fail", f"no HELLO answer: {error}", "build every node from one llama_cpp_ref")
    status = "ok" if major == RPC_PROTO_MAJOR else "fail"
    return Row(name, "RPC protocol", status, f"v{major}.{minor}.{patch} (llamafleet expects v{RPC_PROTO_MAJOR}.x)",
               "" if status == "ok" else "build every node from one llama_cpp_ref")


def check_worker(worker: PlannedHost, master: PlannedHost, data: dict, master_data: dict) -> list[Row]:
    rows: list[Row] = []
    name = worker.name
    worker_ssh = ssh_client(name, data)
    master_ssh = ssh_client(master.name, master_data)
    address, port = worker.connect.rsplit(":", 1)
    try:
        # Bind address: the planned one, never 0.0.0.0 unless asked.
        rows.append(bind_row(name, check_listening(_runner(worker_ssh), worker)))

        # TCP from the master, with latency; an established connection already proves it.
        started = time.monotonic()
        code, _, _ = run(master_ssh, tcp_reachable(address, int(port)))
        latency_ms = (time.monotonic() - started) * 1000
        if code == 0:
            rows.append(Row(name, "TCP from master", "ok", f"{worker.connect} ({latency_ms:.0f} ms incl. SSH round trip)"))
        else:
            fix = ("check the tunnel service on the master (sv status llama-tunnel-" + name + ")"
                   if worker.transport == "tunnel" else "check the worker's firewall admits the master, and Wi-Fi client isolation")
            rows.append(Row(name, "TCP from master", "fail", f"{worker.connect} unreachable", fix))

        # RPC HELLO through the worker's own SSH (reaches 127.0.0.1-bound workers too). A worker
        # serving the master accepts no second client: the master's connection is the proof.
        connected = master_connections(_runner(master_ssh), worker)
        if connected:
            rows.append(Row(name, "RPC protocol", "ok",
                            f"serving {len(connected.evidence)} connection(s) from the master (version accepted; {connected.method})"))
        else:
            channel = worker_ssh.get_transport().open_channel(
                "direct-tcpip", (worker.address if worker.address != "0.0.0.0" else "127.0.0.1", worker.rpc_port), ("127.0.0.1", 0),
                timeout=10,
            )
            channel.settimeout(10)
            try:
                rows.append(hello_row(name, channel))
            finally:
                channel.close()

        # Bandwidth: a bounded transfer over SSH from the controller (iperf3 needs a server).
        mbit = upload_mbit(worker_ssh, TRANSFER_BYTES)
        rows.append(Row(name, "bandwidth (SSH, 16 MiB)", "ok" if mbit >= 100 else "warn", f"{mbit:.0f} Mbit/s",
                        "" if mbit >= 100 else "under 100 Mbit/s: model loads take minutes; use rpc_cache or 5 GHz Wi-Fi"))

        # Path MTU from the master: 1472 bytes of payload + headers = 1500 without fragmenting.
        code, out, _ = run(master_ssh, f"ping -M do -s 1472 -c 1 -W 2 {worker.cluster_address} 2>&1")
        if code == 0:
            rows.append(Row(name, "path MTU 1500", "ok", "no fragmentation"))
        elif "Operation not permitted" in out or "not found" in out:
            rows.append(Row(name, "path MTU 1500", "warn", "ping not permitted here", "check with `ping -M do -s 1472` by hand"))
        else:
            rows.append(Row(name, "path MTU 1500", "warn", "1500-byte packets do not pass unfragmented",
                            "lower the MTU on the path (ip link set dev wlan0 mtu 1400)"))

        if worker.platform == "termux":
            rows.extend(_phone_rows(worker_ssh, name))
    finally:
        worker_ssh.close()
        master_ssh.close()
    return rows


def _phone_rows(client, name: str) -> list[Row]:
    rows = []
    _, boot, _ = run(client, f"cat ~/{TERMUX_BOOT_SCRIPT} 2>/dev/null")
    if "termux-wake-lock" in boot:
        rows.append(Row(name, "wake lock at boot", "ok", f"~/{TERMUX_BOOT_SCRIPT} takes it"))
    else:
        rows.append(Row(name, "wake lock at boot", "fail", "no boot script taking the wake lock",
                        "deploy again; install and open the Termux:Boot app once"))
    _, temps, _ = run(client, "cat /sys/class/thermal/thermal_zone*/temp 2>/dev/null")
    rows.append(temperature_row(name, temps))
    return rows


def temperature_row(name: str, temps: str) -> Row:
    """The hottest thermal zone (millidegrees in /sys/class/thermal), or unknown: many Android
    builds deny apps those files, and an unknown heat is not a good one."""
    values = [int(t) / 1000 for t in temps.split() if re.fullmatch(r"-?\d+", t)]
    if not values:
        return Row(name, "temperature", "warn", "unknown: /sys/class/thermal is not readable here",
                   "watch the battery temperature instead (termux-battery-status, from Termux:API)")
    hottest = max(values)
    if hottest < HOT_CELSIUS:
        return Row(name, "temperature", "ok", f"{hottest:.0f} °C")
    return Row(name, "temperature", "warn", f"{hottest:.0f} °C",
               "throttling likely: cool the phone, fewer threads (rpc_threads)")


def render(rows: list[Row]) -> str:
    headers = ("worker", "check", "status", "detail", "fix")
    table = [headers, *[(r.worker, r.check, r.status.upper(), r.detail, r.fix) for r in rows]]
    widths = [max(len(str(line[i])) for line in table) for i in range(4)]
    return "\n".join(
        "  ".join(str(cell).ljust(widths[i]) if i < 4 else str(cell) for i, cell in enumerate(line)).rstrip()
        for line in table
    )


def _cmd_diagnose(args: argparse.Namespace) -> int:
    gathered = gather_facts(args.inventory)
    for host, error in gathered.errors.items():
        print(f"{host}: {error}", file=sys.stderr)
    if gathered.errors:
        return 1
    try:
        plan = make_plan(gathered.hosts, model_size_from_data(gathered.hosts[0].data) or 0)
    except PlanError as error:
        print(error, file=sys.stderr)
        return 2
    data = {h.name: dict(h.data) for h in gathered.hosts}
    master = next(h for h in plan.hosts if h.role == "master")
    rows: list[Row] = []
    for worker in plan.workers():
        try:
            rows.extend(check_worker(worker, master, data[worker.name], data[master.name]))
        except Exception as error:  # one unreachable worker must not hide the others' rows
            rows.append(Row(worker.name, "ssh", "fail", f"{type(error).__name__}: {error}", "is sshd running on the device?"))
    print(render(rows))
    failed = sum(r.status == "fail" for r in rows)
    warned = sum(r.status == "warn" for r in rows)
    print(f"\n{len(rows)} checks: {len(rows) - failed - warned} ok, {warned} warn, {failed} fail")
    return 1 if failed else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("diagnose", help="check the network path from the master to each worker")
    parser.add_argument("inventory")
    parser.set_defaults(func=_cmd_diagnose)
