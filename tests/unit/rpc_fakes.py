"""Real local sockets, processes and shells for the probe tests (test_probes, test_diagnose).

The shell probes run for real in a local bash (or sh) against sockets on this machine: listeners
with llama.cpp's rpc-server backlog of 1, a fake rpc-server process whose command line carries
-H/-p, a fake RPC server thread that speaks HELLO, and PATHs where `ss` is missing or denied, as
on an Android phone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

from llamafleet.plan import PlannedHost, host_port

# Unique to this run, so a real rpc-server on the machine (the lab's) never matches.
FAKE_BINARY = f"fake-rpc-server-{os.getpid()}"

# What the probes need on a phone, and nothing else (no ss).
PHONE_TOOLS = ("bash", "sh", "timeout", "grep", "awk", "head", "wc", "tr", "cat", "sleep")


def run_local(command: str, shell: str = "bash", path: str | None = None) -> tuple[int, str]:
    """(exit status, stdout) of `command` in a local shell: the probes' `run`."""
    env = dict(os.environ, PATH=path) if path else None
    result = subprocess.run([shell, "-c", command], capture_output=True, text=True, timeout=60, env=env)
    return result.returncode, result.stdout


def runner(path: str | None = None):
    return lambda command: run_local(command, path=path)


def answer(command: str, shell: str = "bash", path: str | None = None) -> str:
    return run_local(command, shell, path)[1].strip()


def free_port() -> int:
    """A port nothing listens on (bound once without listening, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def listener(address: str = "127.0.0.1", port: int = 0, backlog: int = 1):
    """A listening socket that never accepts, like a busy rpc-server (backlog 1)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(backlog)
    try:
        yield sock
    finally:
        sock.close()


def fill_backlog(address: str, port: int) -> list[socket.socket]:
    """Connect until the listener's queue is full (a connect times out); the open clients."""
    clients = []
    for _ in range(8):
        client = socket.socket()
        client.settimeout(0.5)
        try:
            client.connect((address, port))
        except OSError:
            client.close()
            return clients
        clients.append(client)
    raise AssertionError(f"the backlog of {address}:{port} never filled")


def lan_address() -> str | None:
    """A non-loopback address of this machine (the default route's source), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: only a route is chosen
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def path_without_ss(directory: Path) -> str:
    """A PATH holding only the phone's tools: `ss` is missing."""
    directory.mkdir(exist_ok=True)
    for tool in PHONE_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed for these tests"
        (directory / tool).symlink_to(os.path.realpath(found))
    return str(directory)


def path_with_fake_ss(directory: Path, script: str) -> str:
    """A PATH where `ss` is the given sh script (a denied or odd ss), then the usual PATH."""
    directory.mkdir(exist_ok=True)
    fake = directory / "ss"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    return f"{directory}:{os.environ['PATH']}"


# One line: the probes print one process a line, and a service's argv has no newline.
_FAKE_PROCESS = "; ".join([
    "import os, socket, sys, time",
    "args = sys.argv[1:]",
    'host, port = args[args.index("-H") + 1], int(args[args.index("-p") + 1])',
    "sock = socket.socket()",
    'sock.bind((os.environ.get("FAKE_BIND") or host, int(os.environ.get("FAKE_BIND_PORT") or port)))',
    "sock.listen(1)",
    'print("ready", flush=True)',
    "time.sleep(120)",
])


@contextlib.contextmanager
def fake_rpc_process(host: str, port: int, bind: str | None = None, bind_port: int | None = None):
    """A process named FAKE_BINARY started as `FAKE_BINARY -H host -p port` (argv[0] a path, as
    the services start it) listening, backlog 1, on bind:bind_port (default: host:port)."""
    env = dict(os.environ, FAKE_BIND=bind or "", FAKE_BIND_PORT=str(bind_port or ""))
    process = subprocess.Popen(
        [f"/opt/fake/bin/{FAKE_BINARY}", "-c", _FAKE_PROCESS, "-H", host, "-p", str(port), "-t", "2"],
        executable=sys.executable, env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline().strip() == "ready", "the fake rpc-server did not start"
        yield process
    finally:
        process.kill()
        process.wait()


class FakeRpcServer:
    """An rpc-server stand-in on 127.0.0.1 (backlog 1, one client at a time): it answers HELLO
    with `version` (after checking the request's bytes) and then serves that client until it
    leaves; with version None it closes every connection at once."""

    def __init__(self, version: tuple[int, int, int] | None = (7, 1, 2)):
        self.version = version
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.endpoint = host_port("127.0.0.1", self.port)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with client:
                try:
                    self._session(client)
                except OSError:  # a probe that hung up with our answer unread resets
                    pass

    def _session(self, client: socket.socket) -> None:
        if self.version is None:
            return
        request = _recv(client, 33)
        self.requests.append(request)
        if request[:9] != struct.pack("<BQ", 14, 24):
            return
        body = bytes(self.version) + bytes(1) + bytes(24)
        client.sendall(struct.pack("<Q", len(body)) + body)
        while client.recv(4096):  # serving this client; nobody else is accepted
            pass

    def close(self) -> None:
        self.sock.close()


def _recv(client: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = client.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def planned_worker(address: str, port: int, cluster_address: str, connect: str | None = None,
                   platform: str = "termux") -> PlannedHost:
    """A worker's plan entry with just what the listening checks read."""
    return PlannedHost(
        name="phone1", role="worker", rank=1, platform=platform, cluster_address=cluster_address,
        address=address, rpc_port=port, connect=connect or host_port(address, port),
        transport="tunnel" if address == "127.0.0.1" else "direct", arch="aarch64", march=None,
        cores={}, big_cores=None, threads=2, split=1.0, ram_mb=0, usable_mb=0, share_mb=0,
        expected_mb=0, headroom_mb=0,
    )
