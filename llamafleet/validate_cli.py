"""`llamafleet check` (offline validation) and `llamafleet plan` (where the model goes).

Exit codes: 0 fine, 2 a problem in the inventory or a plan that cannot fit (one line each).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK = 0
EXIT_PROBLEM = 2


def _add_inventory_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inventory", help="pyinfra inventory file (e.g. inventory/example.py)")
    parser.add_argument(
        "--group-data",
        metavar="DIR",
        help="group data directory (default: the deploy's group_data/)",
    )


def register(subparsers: Any) -> None:
    """Add `check` and `plan` to the llamafleet command."""
    check = subparsers.add_parser(
        "check",
        help="validate an inventory offline (never connects)",
        description="Validate an inventory and its group data without connecting to any host. "
        "Prints one line per problem (host: key: message) and exits 2, or a summary and exits 0.",
    )
    _add_inventory_args(check)
    check.set_defaults(func=run_check)

    plan = subparsers.add_parser(
        "plan",
        help="gather facts and show the cluster plan",
        description="Connect to the hosts, read CPU/RAM/platform facts and show which device "
        "gets which rank, port and share of the model. Exits 2 when the model cannot fit.",
    )
    _add_inventory_args(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    recorded = plan.add_mutually_exclusive_group()
    recorded.add_argument(
        "--facts",
        metavar="FILE",
        help='plan from facts recorded in a JSON file ({"host": {"CpuProfile": {...}, '
        '"MemInfo": {...}, "DevicePlatform": {...}, "RpcPortRecord": {...}}}, as --record '
        "writes it) instead of connecting",
    )
    recorded.add_argument(
        "--record",
        metavar="FILE",
        help="also save the facts read from the hosts to FILE, in the format --facts reads "
        "(written when every host answered, before the plan is made)",
    )
    plan.add_argument("--svg", metavar="FILE", help="also draw the plan as an SVG picture in FILE")
    plan.add_argument("--measure", action="store_true",
                      help="first measure the deployed cluster (each worker through RPC and its link, the "
                           "master's CPU; about a minute per worker, llama-server stops meanwhile) and keep "
                           "the results on the devices: this and later plans split by speed")
    plan.set_defaults(func=run_plan)


def _print_problems(problems: list[Any]) -> int:
    for problem in problems:
        print(problem, file=sys.stderr)
    return EXIT_PROBLEM


def run_check(args: argparse.Namespace) -> int:
    from llamafleet.inventory_data import InventoryError, load_inventory_full
    from llamafleet.validate import CLUSTER, Problem, summary, validate_loaded

    try:
        loaded = load_inventory_full(args.inventory, args.group_data)
    except InventoryError as error:
        return _print_problems([Problem(CLUSTER, "inventory", str(error))])
    problems = validate_loaded(loaded)
    if problems:
        return _print_problems(problems)
    for warning in warnings(loaded.hosts):
        print(f"warning: {warning}", file=sys.stderr)
    print(summary(loaded.hosts))
    return EXIT_OK


def warnings(hosts: list[Any]) -> list[str]:
    """What works but will surprise: a master model without a chat template, a Linux host
    logged into as an ordinary user without sudo, services that run as root because the
    inventory asked for it."""
    from llamafleet.serving.chat_template import missing_template_advice
    from llamafleet.validate.host_rules import privilege_warning

    found = [warning for warning in map(privilege_warning, hosts) if warning]
    for host in hosts:
        if not host.is_termux and host.data.get("service_user") == "root":
            found.append(f"{host.name}: service_user: llamafleet's services run as root (service_user_allow_root "
                         "= True): whoever reaches a worker's RPC port, which has no authentication, or "
                         "exploits llama-server holds the whole machine")
        if host.data.get("llama_role") != "master":
            continue
        advice = missing_template_advice(host.data.get("model_file"), host.data.get("llama_chat_template"))
        if advice:
            found.append(f"{host.name}: llama_chat_template: {advice}")
    return found


def _measure(hosts: list[Any], model_mb: float) -> int:
    """Measure the cluster as planned now (llamafleet.measure); progress on stderr."""
    from paramiko import SSHException
    from pyinfra.api.exceptions import PyinfraError

    from llamafleet.measure import measure
    from llamafleet.measure_math import MeasureError
    from llamafleet.plan import HostInput, PlanError, make_plan

    # The measurement needs each host's address, base and threads, not a split: planned by RAM,
    # so a split that needs the measurement (llama_split_by "speed", master_computes) cannot stop it.
    for_measuring = [HostInput(host.name, {**host.data, "llama_split_by": "ram", "master_computes": None}, host.facts,
                             host.groups) for host in hosts]
    try:
        measure(make_plan(for_measuring, model_mb), hosts, say=lambda line: print(f"measured {line}", file=sys.stderr))
    except (PlanError, MeasureError, PyinfraError, SSHException, OSError) as error:
        print(f"measure: {error}", file=sys.stderr)
        return EXIT_PROBLEM
    return EXIT_OK


def run_plan(args: argparse.Namespace) -> int:
    from llamafleet.gather import GatherError, gather_facts, hosts_with_recorded_facts
    from llamafleet.plan import PlanError, make_plan, model_size_from_data, render_table
    from llamafleet.validate import CLUSTER, Problem, validate_inventory

    # A plan from an inventory that fails `check` would only repeat its problems less clearly.
    problems = validate_inventory(args.inventory, args.group_data)
    if problems:
        return _print_problems(problems)
    from llamafleet.facts_file import load_facts, write_facts

    try:
        if args.facts:
            gathered = hosts_with_recorded_facts(args.inventory, load_facts(args.facts), args.group_data,
                                                 source=args.facts)
        else:
            gathered = gather_facts(args.inventory, args.group_data)
    except (GatherError, OSError, ValueError) as error:
        return _print_problems([Problem(CLUSTER, "facts", str(error))])
    if gathered.errors:
        return _print_problems([Problem(name, "facts", why) for name, why in gathered.errors.items()])
    master = next(h for h in gathered.hosts if h.data.get("llama_role") == "master")
    if getattr(args, "measure", False):
        if args.facts:
            return _print_problems([Problem(CLUSTER, "measure", "--measure reads the live hosts, not --facts")])
        code = _measure(gathered.hosts, model_size_from_data(master.data) or 0)
        if code != EXIT_OK:
            return code
        gathered = gather_facts(args.inventory, args.group_data)  # the plan reads the new records
        if gathered.errors:
            return _print_problems([Problem(name, "facts", why) for name, why in gathered.errors.items()])
    if getattr(args, "record", None):
        try:
            write_facts(args.record, gathered.hosts)
        except OSError as error:
            return _print_problems([Problem(CLUSTER, "record", f"{args.record}: {error.strerror or error}")])
    try:
        plan = make_plan(gathered.hosts, model_size_from_data(master.data) or 0)
    except PlanError as error:
        print(error, file=sys.stderr)
        return EXIT_PROBLEM
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
    elif sys.stdout.isatty():  # the same rich table as `status`
        from rich.console import Console

        from llamafleet.plan import PLAN_COLUMNS, master_lines, table_rows
        from llamafleet.tables import rich_table

        console = Console()
        console.print(rich_table(PLAN_COLUMNS, table_rows(plan), "llamafleet plan", ("host", "role", "rank")))
        console.print("\n".join(master_lines(plan)), highlight=False, markup=False)
    else:
        print(render_table(plan))
    if getattr(args, "svg", None):
        from llamafleet.picture import from_plan

        try:
            with open(args.svg, "w", encoding="utf-8") as handle:
                handle.write(from_plan(plan))
        except OSError as error:
            return _print_problems([Problem(CLUSTER, "svg", str(error))])
    return EXIT_OK
