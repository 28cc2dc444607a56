"""Which RPC port each worker gets, and the workers' order in llama-server's --rpc: both stay
put while devices are added to or removed from the inventory.

A worker's port is in its service, in the master's --rpc and tunnels, and in its firewall rule;
moving it restarts all of these. So a worker keeps the port of its first deploy:

1. `rpc_port` in its data, when set, always wins;
2. else the port recorded on the device: the deploy writes `<llamafleet_dir>/etc/rpc-port`
   on each worker (tasks/ports.py, templates/llamafleet/etc/rpc-port.j2) and the plan reads
   it back with every host's facts (the RpcPortRecord fact). It is kept while the host's
   `rpc_port_base` is the one it was given under;
3. else (a first deploy, a new device, a record from another rpc_port_base) the lowest port
   from the host's `rpc_port_base` up that no other worker holds, new workers in inventory
   order.

The record lives on the device, not on the controller: every controller, and a limited run
(`--limit`, which still reads every host's facts), plans the same ports; a host taken out of the
inventory is not read, so its port is free for the next new worker. When two records claim one
port (a device taken out without `llamafleet remove`, its port given to a newcomer, then put
back) the later claim holds it: the record says since when, and the device put back gets a
new port. A recorded port that another host's `rpc_port` asks for is refused, naming both:
the plan cannot move a running worker by itself. Offline (`llamafleet check`, `plan --facts`
without records) there are no records, and ports follow rule 3: rpc_port_base + 0, 1, ... in
inventory order, as on a first deploy.

Workers are ranked by port (then inventory order): a new worker takes its place by its port,
and the others keep their order in --rpc, in -ts and in llama_tensor_split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from llamafleet.plan.shapes import PlanError

HIGHEST_PORT = 65535

# The record's key among a host's facts (as `llamafleet plan --record` writes them too).
PORT_RECORD_FACT = "RpcPortRecord"

PORT_SUGGESTION = ("set rpc_port on one of the two hosts (a worker with rpc_port moves to it; "
                   "its service and tunnel restart), or drop the rpc_port that takes a recorded port")


@dataclass(frozen=True)
class PortRecord:
    """What the deploy recorded on a worker: its port, the rpc_port_base it was given under
    (None: not recorded) and since when it holds the port (UTC, "2026-12-01T10:00:00Z")."""

    rpc_port: int
    rpc_port_base: int | None = None
    since: str = ""

    @classmethod
    def from_fact(cls, fact: Any) -> "PortRecord | None":
        """The RpcPortRecord fact's value ({"rpc_port": .., "rpc_port_base": .., "since": ..}),
        or None for no record or one without a usable port (never written by llamafleet)."""
        if not isinstance(fact, Mapping):
            return None
        port, base = fact.get("rpc_port"), fact.get("rpc_port_base")
        if not _is_port(port):
            return None
        return cls(port, base if _is_port(base) else None, str(fact.get("since") or ""))


@dataclass(frozen=True)
class PortChoice:
    """A worker's port, and since when it holds it (None: given by this plan, not recorded)."""

    port: int
    since: str | None = None


@dataclass(frozen=True)
class Refusal:
    """A port the plan cannot give: host, data key and why."""

    host: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.host}: {self.key}: {self.message}"


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= HIGHEST_PORT


def choose_ports(workers: Iterable[tuple[str, Any, Any]]) -> tuple[dict[str, PortChoice], list[Refusal]]:
    """Each worker's port, by the rules of this module.

    + workers: (name, typed settings, RpcPortRecord fact or None) per worker, in inventory order
    Returns the choices and what was refused (a worker refused gets no choice).
    """
    workers = list(workers)
    chosen: dict[str, PortChoice] = {}
    refused: list[Refusal] = []
    holder: dict[int, str] = {}  # port -> the worker holding it

    explicit = {name: settings.rpc_port for name, settings, _ in workers if settings.rpc_port is not None}
    recorded = []
    for name, settings, fact in workers:
        record = PortRecord.from_fact(fact)
        if name in explicit:
            # Its own record of the same port keeps its time: a second deploy rewrites nothing.
            same = record is not None and record.rpc_port == explicit[name]
            chosen[name] = PortChoice(explicit[name], (record.since or None) if same else None)
            holder.setdefault(explicit[name], name)
            continue
        if record is None:
            continue
        if record.rpc_port_base is not None and record.rpc_port_base != settings.rpc_port_base:
            continue  # rpc_port_base changed: this worker is numbered afresh from the new base
        recorded.append((name, record))
    # The latest claim first: sorted() is stable, so equal times keep inventory order.
    for name, record in sorted(recorded, key=lambda item: item[1].since, reverse=True):
        port = record.rpc_port
        owner = holder.get(port)
        if owner in explicit:
            refused.append(Refusal(owner, "rpc_port", f"{port} is {name}'s RPC port (recorded on {name} "
                                   f"since {record.since or 'an earlier deploy'}); two workers cannot share it"))
        elif owner is None:
            holder[port] = name
            chosen[name] = PortChoice(port, record.since or None)
        # else: a later claim holds the port; this worker gets a new one below.

    for name, settings, _ in workers:
        if name in chosen:
            continue
        port = next((p for p in range(settings.rpc_port_base, HIGHEST_PORT + 1) if p not in holder), None)
        if port is None:
            refused.append(Refusal(name, "rpc_port_base", f"no free port from {settings.rpc_port_base} "
                                   f"to {HIGHEST_PORT}: the other workers hold them; lower rpc_port_base "
                                   "or set rpc_port"))
            continue
        holder[port] = name
        chosen[name] = PortChoice(port)
    return chosen, refused


def rank_order(names: list[str], chosen: Mapping[str, PortChoice]) -> list[str]:
    """The workers in rank order (llama-server's --rpc): by port, then inventory order."""
    return sorted(names, key=lambda name: (chosen[name].port, names.index(name)))


def plan_ports(hosts: list[Any]) -> dict[str, PortChoice]:
    """The ports of the plan's workers (HostInputs, inventory order), or a PlanError naming
    each host and key refused."""
    chosen, refused = choose_ports((host.name, host.settings, host.facts.get(PORT_RECORD_FACT)) for host in hosts)
    if refused:
        raise PlanError([str(refusal) for refusal in refused], PORT_SUGGESTION)
    return chosen
