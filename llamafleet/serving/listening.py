"""Does a worker's rpc-server listen where planned and nowhere else; is the master connected?

One answer for every host, from the probes in llamafleet.serving.probes, which work on a phone
(Android 10+ denies apps `ss`, `netstat` and `ip`) as well as on Linux:

- listening: a connect from the worker to its planned address:port is not refused (accepted,
  or timed out: an rpc-server busy with its client has a backlog of 1), a connect to another
  local address of the worker on that port is refused (not bound to 0.0.0.0 or the LAN), and
  the rpc-server process's own command line carries the planned -H and -p;
- connected: read on the master, where the connection starts: `ss` lists its established
  connections to the worker as the master dials it (a tunnel's local port for tunnelled
  workers); a master without a usable `ss` (a phone) sends a HELLO instead, which a worker
  serving a client leaves unanswered.

`run` is how a command reaches the host: it takes a shell command and returns (exit status,
stdout), from paramiko (diagnose), testinfra (the verify suite) or a local shell (unit tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from llamafleet.plan import PlannedHost, host_port, is_loopback, is_wildcard
from llamafleet.serving.probes import (
    ACCEPTED,
    REFUSED,
    TIMEOUT,
    connect_probe,
    established_to,
    process_argvs,
    rpc_hello_probe,
)

Run = Callable[[str], tuple[int, str]]


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """"127.0.0.1:50052" or "[::1]:50052" -> (address without brackets, port)."""
    address, port = endpoint.rsplit(":", 1)
    return address.strip("[]"), int(port)


def rpc_server_endpoint(argv: list[str]) -> tuple[str | None, str | None]:
    """The (host, port) an rpc-server command line asks for: ggml-rpc-server's -H/--host and
    -p/--port (the last one wins, as in its parser); None where a flag is absent."""
    found: dict[str, str | None] = {"host": None, "port": None}
    names = {"-H": "host", "--host": "host", "-p": "port", "--port": "port"}
    i = 0
    while i < len(argv) - 1:
        if argv[i] in names:
            found[names[argv[i]]] = argv[i + 1]
            i += 2
        else:
            i += 1
    return found["host"], found["port"]


def other_local_address(planned: PlannedHost) -> str | None:
    """An address of the worker its rpc-server must refuse: the cluster address for a
    loopback bind (it is not on the LAN; another loopback address when the cluster address is
    the bind itself), loopback for a bind to one LAN address (it is not bound everywhere); None
    when it binds a wildcard on purpose (rpc_bind = 0.0.0.0)."""
    bind = planned.address
    if is_wildcard(bind):
        return None
    if not is_loopback(bind):
        return "127.0.0.1"
    other = planned.cluster_address
    if other == bind or is_loopback(other) or is_wildcard(other):
        return "127.0.0.2" if bind != "127.0.0.2" else "127.0.0.1"
    return other


@dataclass
class Listening:
    """What the worker's probes found; `problems()` is empty when all is as planned."""

    endpoint: str  # planned address:port
    at_endpoint: str  # connect_probe's answer there
    elsewhere: str | None  # another local address:port that must refuse
    at_elsewhere: str | None
    planned_args: tuple[str, str]  # (-H, -p) the plan asks for
    processes: list[list[str]] = field(default_factory=list)  # argv of each rpc-server process

    @property
    def listening(self) -> bool:
        return self.at_endpoint.split(" ", 1)[0] in (ACCEPTED, TIMEOUT)

    @property
    def exposed(self) -> bool:
        return self.elsewhere is not None and self.at_elsewhere != REFUSED

    @property
    def process_matches(self) -> bool:
        return any(rpc_server_endpoint(argv) == self.planned_args for argv in self.processes)

    def problems(self) -> list[str]:
        found = []
        if not self.listening:
            found.append(f"nothing listens on {self.endpoint} (connect: {self.at_endpoint})")
        if self.exposed:
            answered = self.at_elsewhere.split(" ", 1)[0] in (ACCEPTED, TIMEOUT)
            found.append(f"{self.elsewhere} is not refused ({self.at_elsewhere}): "
                         + (f"listening beyond {self.endpoint}" if answered
                            else f"cannot show it listens on {self.endpoint} only"))
        if not self.process_matches:
            seen = "; ".join(" ".join(argv) for argv in self.processes) or "no rpc-server process"
            found.append(f"no rpc-server started with -H {self.planned_args[0]} -p {self.planned_args[1]} ({seen})")
        return found

    def summary(self) -> str:
        parts = [f"{self.endpoint} {self.at_endpoint}"]
        if self.elsewhere:
            parts.append(f"{self.elsewhere} {self.at_elsewhere}")
        parts.append(f"process -H {self.planned_args[0]} -p {self.planned_args[1]}"
                     + ("" if self.process_matches else " not found"))
        return ", ".join(parts)


def _answer(run: Run, command: str) -> str:
    _, out = run(command)
    return (out.strip().splitlines() or ["no answer"])[-1]


# The probes connect to the worker's own addresses: a closed port is refused and an open one
# accepts within microseconds; only a full backlog (an rpc-server busy with the master) leaves
# the SYN unanswered. One second tells all three apart, and a healthy busy worker costs
# `status` and `verify` one second instead of three.
LOCAL_PROBE_SECONDS = 1


def check_listening(run: Run, planned: PlannedHost, binary: str | None = None,
                    seconds: int = LOCAL_PROBE_SECONDS) -> Listening:
    """Probe, on the worker itself, where its rpc-server listens (see the module's text). The
    program is the plan's (`planned.binary`) unless `binary` names a stand-in."""
    binary = binary or planned.binary
    port = int(planned.rpc_port)
    probed = "127.0.0.1" if is_wildcard(planned.address) else planned.address
    other = other_local_address(planned)
    _, out = run(process_argvs(binary))
    # "pid<TAB>arg0<TAB>arg1...<TAB>": cmdline ends with a NUL, hence the last, empty field.
    processes = [line.split("\t")[1:] for line in out.splitlines() if "\t" in line]
    return Listening(
        endpoint=host_port(planned.address, port),
        at_endpoint=_answer(run, connect_probe(probed, port, seconds)),
        elsewhere=host_port(other, port) if other else None,
        at_elsewhere=_answer(run, connect_probe(other, port, seconds)) if other else None,
        planned_args=(planned.address, str(port)),
        processes=[argv[:-1] if argv and argv[-1] == "" else argv for argv in processes],
    )


@dataclass
class MasterConnections:
    """Evidence that the master holds a connection to a worker, and how it was read."""

    evidence: list[str]
    method: str

    def __bool__(self) -> bool:
        return bool(self.evidence)


def master_connections(run_on_master: Run, worker: PlannedHost, seconds: int = 3) -> MasterConnections:
    """The master's established connections to `worker.connect`: `ss` lines where `ss` works;
    else a HELLO that the worker leaves unanswered (it serves one client at a time, so a
    silent worker is busy with a client: the master, as nothing else is meant to reach it).
    A connect that times out proves nothing there (a full backlog, or a firewall) and counts as
    no connection."""
    address, port = split_endpoint(worker.connect)
    code, out = run_on_master(established_to(address, port))
    if code == 0:
        return MasterConnections([line.strip() for line in out.splitlines() if line.strip()], "ss on the master")
    answer = _answer(run_on_master, rpc_hello_probe(address, port, seconds))
    evidence = [f"{worker.connect} took a connection but did not answer HELLO: busy with a client"]
    return MasterConnections(evidence if answer == "silent" else [], f"HELLO from the master (no ss there): {answer}")
