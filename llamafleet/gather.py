"""Connect to the inventory's hosts with pyinfra's API and gather the facts the plan needs.

The only part of `llamafleet plan` that touches hosts, and it only reads: each fact is a
read-only command (llamafleet.facts). Hosts that cannot be reached are reported, not fatal
here: the caller decides (the plan needs every host).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Mapping

from llamafleet.inventory_data import hosts_from_inventory, make_pyinfra_inventory
from llamafleet.plan import PORT_RECORD_FACT, HostInput
from llamafleet.plan.decide import REFUSALS_FACT
from llamafleet.plan.speed import SPEED_FACT

# The facts the plan reads, by class name in llamafleet.facts; and, beside them, the port the
# deploy recorded on a worker (RpcPortRecord: its path depends on the device, read after these),
# and the ISA features the device's CPU refused (CpuRefusals: the march the plan shows).
PLAN_FACTS = ("CpuProfile", "MemInfo", "DevicePlatform")


class GatherError(Exception):
    """The fact classes cannot be found (llamafleet.facts missing or incomplete)."""


@dataclass
class Gathered:
    """Hosts with their facts, in inventory order, and why some hosts have none.

    + hosts: one HostInput per inventory host (facts empty for failed hosts)
    + errors: host name -> what went wrong (connect or fact error)
    """

    hosts: list[HostInput]
    errors: dict[str, str] = field(default_factory=dict)


def plan_fact_classes() -> dict[str, type]:
    """Import CpuProfile, MemInfo and DevicePlatform from llamafleet.facts (lazily: the facts
    package is only needed when a plan connects to hosts)."""
    try:
        package = importlib.import_module("llamafleet.facts")
    except ImportError as error:
        raise GatherError(f"llamafleet.facts is not available: {error}") from error
    found = {name: getattr(package, name) for name in PLAN_FACTS if hasattr(package, name)}
    # The classes may live in submodules that the package does not re-export.
    for module_info in pkgutil.iter_modules(getattr(package, "__path__", [])):
        if len(found) == len(PLAN_FACTS):
            break
        module = importlib.import_module(f"llamafleet.facts.{module_info.name}")
        for name in PLAN_FACTS:
            if name not in found and hasattr(module, name):
                found[name] = getattr(module, name)
    missing = [name for name in PLAN_FACTS if name not in found]
    if missing:
        raise GatherError(f"llamafleet.facts has no {', '.join(missing)}")
    return found


# The plan and the build read facts alike, once per host and run: llamafleet.facts.reading.
from llamafleet.facts.reading import read_fact  # noqa: E402


def read_plan_facts(host, classes: Mapping[str, type] | None = None) -> dict[str, Any]:
    """Every fact the plan needs from one host, through that host's connection: the deploy
    (llamafleet.serving.cluster), `plan`, `status` and the verify suite read the same."""
    from llamafleet.facts.ports import read_port_record
    from llamafleet.facts.refusals import read_refusals
    from llamafleet.facts.speed import read_speed_record

    facts = {name: read_fact(host, cls) for name, cls in (classes or plan_fact_classes()).items()}
    facts[PORT_RECORD_FACT] = read_port_record(host)
    facts[REFUSALS_FACT] = read_refusals(host)
    facts[SPEED_FACT] = read_speed_record(host)
    return facts


def _error_text(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def gather_facts(
    path: str | os.PathLike,
    group_data_dir: str | os.PathLike | None = None,
    fact_classes: Mapping[str, type] | None = None,
) -> Gathered:
    """Load the inventory, connect to every host and read the plan's facts.

    + path: the pyinfra inventory file
    + group_data_dir: as for `llamafleet check` (default: the deploy's group_data/)
    + fact_classes: fact name -> pyinfra FactBase class (default: llamafleet.facts' classes)
    """
    import gevent
    from pyinfra.api import Config, State
    from pyinfra.api.connect import disconnect_all
    from pyinfra.api.exceptions import ConnectError
    from pyinfra.context import ctx_host, ctx_state

    classes = dict(fact_classes) if fact_classes is not None else plan_fact_classes()
    # check_for_changes=False: nothing will be executed, facts are read once.
    state = State(check_for_changes=False)
    errors: dict[str, str] = {}
    facts: dict[str, dict[str, Any]] = {}

    def read(host) -> None:
        # Like pyinfra.api.connect.connect_all, but a host that does not answer becomes an
        # error line instead of ending the run.
        try:
            host.connect(show_errors=False, raise_exceptions=True)
            state.activate_host(host)
            with ctx_host.use(host):
                facts[host.name] = read_plan_facts(host, classes)
        except ConnectError as error:
            errors[host.name] = f"cannot connect: {_error_text(error)}"
        except Exception as error:  # a fact that raised: report which host, keep going
            errors[host.name] = f"cannot read facts: {type(error).__name__}: {_error_text(error)}"

    with ctx_state.use(state):
        inventory = make_pyinfra_inventory(path, group_data_dir)
        state.init(inventory, Config())
        # Every host at once, in pyinfra's own greenlet pool (pyinfra_cli, imported to load the
        # inventory, has made sockets cooperative): a fleet answers in the time of its slowest host.
        gevent.joinall([state.pool.spawn(read, host) for host in inventory])
        disconnect_all(state)
        hosts = [
            HostInput(name=h.name, data=h.data, facts=facts.get(h.name, {}), groups=h.groups)
            for h in hosts_from_inventory(inventory)
        ]
    return Gathered(hosts, errors)


def hosts_with_recorded_facts(
    path: str | os.PathLike,
    recorded: Mapping[str, Mapping[str, Any]],
    group_data_dir: str | os.PathLike | None = None,
    source: str = "the recorded facts",
) -> Gathered:
    """HostInputs from the inventory with facts recorded earlier (`plan --facts FILE`), for
    planning without connecting: {host: {"CpuProfile": {...}, "MemInfo": {...}, ...}}, the
    format `plan --record FILE` writes (llamafleet.facts_file). What the plan cannot do
    without is an error per host naming `source` (the file) and the fact's key."""
    from llamafleet.facts_file import recorded_problems
    from llamafleet.inventory_data import load_inventory

    if not isinstance(recorded, Mapping):
        raise GatherError(f"{source}: expected a JSON object of host name -> facts, got {type(recorded).__name__}")
    listed = load_inventory(path, group_data_dir)
    errors = recorded_problems(recorded, listed, source)
    hosts = [
        HostInput(name=h.name, data=h.data, groups=h.groups,
                  facts={} if h.name in errors else dict(recorded.get(h.name) or {}))
        for h in listed
    ]
    return Gathered(hosts, errors)
