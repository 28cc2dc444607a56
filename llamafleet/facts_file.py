"""The facts file: what `llamafleet plan --record FILE` writes and `llamafleet plan --facts FILE`
reads, to plan without connecting (on a train, in a test, on another controller).

One JSON object with a key per inventory host, each holding the facts the plan reads under
their fact class names, as the facts return them (llamafleet.facts):

    {"phone1": {"CpuProfile": {"arch": "aarch64", "threads": 4, ...},
                "MemInfo": {"total_mb": 7612, "available_mb": 3120},
                "DevicePlatform": {"platform": "termux", "home": "...", ...},
                "RpcPortRecord": {"rpc_port": 50052, "rpc_port_base": 50052, "since": "..."}},
     ...}

Only RAM is required: MemInfo.total_mb, unless the host's data has ram_mb. Without
DevicePlatform the platform comes from the `termux` group; without CpuProfile a worker gets
one thread and no -march; RpcPortRecord null (or absent) is a worker without a recorded port;
CpuRefusals ({"i8mm": {"date": ..., "reason": "sigill", "flags": ...}}; absent: none) the ISA
features the device's CPU refused, which the plan's march leaves out.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping

from llamafleet.gather import PLAN_FACTS, GatherError
from llamafleet.plan import PORT_RECORD_FACT
from llamafleet.plan.decide import REFUSALS_FACT
from llamafleet.plan.speed import SPEED_FACT

_FACT_NAMES = (*PLAN_FACTS, PORT_RECORD_FACT, REFUSALS_FACT, SPEED_FACT)


def write_facts(path: str | os.PathLike, hosts: Iterable[Any]) -> None:
    """Write the hosts' facts (HostInputs, inventory order) to `path` as the file above."""
    facts = {host.name: dict(host.facts) for host in hosts}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(facts, handle, indent=2)
        handle.write("\n")


def load_facts(path: str | os.PathLike) -> dict[str, Any]:
    """The file's content; GatherError naming the file when it cannot be read or is not an
    object of hosts."""
    try:
        with open(path, encoding="utf-8") as handle:
            recorded = json.load(handle)
    except OSError as error:
        raise GatherError(f"{path}: cannot read the facts file: {error.strerror or error}") from error
    except ValueError as error:
        raise GatherError(f"{path}: not JSON: {error}") from error
    if not isinstance(recorded, dict):
        raise GatherError(f"{path}: expected a JSON object of host name -> facts, "
                          f"got {type(recorded).__name__}")
    return recorded


def _shown(keys: Iterable[str]) -> str:
    return ", ".join(keys) or "none"


def _host_problem(data: Mapping[str, Any], entry: Any, recorded: Mapping[str, Any], source: str) -> str | None:
    """What is wrong with one host's facts in the file (None: the plan can use them)."""
    needs_ram = not data.get("ram_mb")
    if entry is None:
        if not needs_ram:
            return None  # planned from its ram_mb, as offline planning does
        return (f"not in {source} (it has facts of: {_shown(recorded)}); record them with "
                f"`llamafleet plan INVENTORY --record {source}`, or set ram_mb")
    if not isinstance(entry, dict):
        return f"expected an object of facts by name in {source}, got {type(entry).__name__}"
    for fact in _FACT_NAMES:
        value = entry.get(fact)
        if value is not None and not isinstance(value, dict):
            return f"{fact}: expected an object in {source}, got {type(value).__name__} {value!r}"
    meminfo = entry.get("MemInfo")
    if needs_ram and meminfo is None:
        return (f"MemInfo: not in {source} (its facts there: {_shown(entry)}); "
                "record it again, or set ram_mb")
    total = (meminfo or {}).get("total_mb")
    if needs_ram and not (isinstance(total, (int, float)) and not isinstance(total, bool) and total > 0):
        what = "not" if total is None else f"{total!r} is not a positive number"
        return (f"MemInfo.total_mb: {what} in {source} (its MemInfo there has: {_shown(meminfo)}); "
                "record it again, or set ram_mb")
    record = entry.get(PORT_RECORD_FACT)
    if record is not None:
        port = record.get("rpc_port")
        if not (isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535):
            return f"{PORT_RECORD_FACT}.rpc_port: {port!r} in {source} is not a TCP port (1..65535)"
    return None


def recorded_problems(recorded: Mapping[str, Any], hosts: Iterable[Any], source: str) -> dict[str, str]:
    """Host name -> what the plan misses in the recorded facts of that host (InventoryHosts
    in inventory order), each naming `source` and the fact's key."""
    problems = {}
    for host in hosts:
        problem = _host_problem(host.data, recorded.get(host.name), recorded, source)
        if problem:
            problems[host.name] = problem
    return problems
