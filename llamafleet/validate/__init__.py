"""`llamafleet check`: every rule an inventory must pass before any host is touched.

Offline: reads the inventory and group data (llamafleet.inventory_data), never connects.
Each rule returns Problems ("host: key: message"); deploy.py runs `validate_pyinfra_inventory`
on the inventory pyinfra loaded as its first step and stops on any problem.

The rules, by what they look at:

- `schema`: the known keys and the kind each takes (llamafleet.settings' declarations, then
  pyinfra's own keys);
- `host_rules`: one host's own data, each value against its declaration (ranges, choices, and
  llamafleet.settings.patterns: what a value that reaches a device must look like);
- `cluster_rules` and `network_rules`: across hosts (roles, one source and model, one entry per
  machine, the fit of the model; who listens where);
- `group_rules`: group data that pyinfra merges without a word.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from llamafleet.inventory_data import (
    InventoryError,
    InventoryHost,
    LoadedInventory,
    load_inventory_full,
)
from llamafleet.settings.kinds import Kind
from llamafleet.settings.patterns import is_ip_or_hostname
from llamafleet.validate.cluster_rules import CLUSTER_WIDE_KEYS, check_cluster
from llamafleet.validate.findings import CLUSTER, Findings, Problem
from llamafleet.validate.group_rules import check_groups, shadowed_problems
from llamafleet.validate.host_rules import check_host
from llamafleet.validate.schema import Schema, pyinfra_keys

__all__ = [
    "CLUSTER", "CLUSTER_WIDE_KEYS", "Kind", "Problem", "Schema", "is_ip_or_hostname", "pyinfra_keys",
    "shadowed_problems", "summary", "validate_hosts", "validate_inventory", "validate_loaded",
    "validate_pyinfra_inventory",
]


def validate_loaded(loaded: LoadedInventory) -> list[Problem]:
    """Run every rule over a loaded inventory: its group data, each host, then the cluster."""
    findings = Findings()
    findings.problems.extend(shadowed_problems(loaded.shadowed))
    check_groups(findings, loaded.hosts, loaded.group_data)
    schema = Schema.load()
    for host in loaded.hosts:
        check_host(findings, host, schema)
    if not loaded.hosts:
        findings.report(CLUSTER, "inventory", "no hosts in the inventory")
    else:
        check_cluster(findings, schema, loaded.hosts)
    return findings.problems


def validate_hosts(hosts: list[InventoryHost]) -> list[Problem]:
    """Run the host and cluster rules over already-loaded hosts (no group data at hand)."""
    return validate_loaded(LoadedInventory(hosts, []))


def validate_pyinfra_inventory(inventory: Any) -> list[Problem]:
    """Validate the `Inventory` pyinfra has loaded (deploy.py's first step: `from pyinfra import
    inventory`). Same rules as `llamafleet check`, except the rule about inventory values that
    group data files replace, which needs the inventory file."""
    from llamafleet.inventory_data import group_data_of, hosts_from_inventory

    return validate_loaded(LoadedInventory(hosts_from_inventory(inventory), [], group_data_of(inventory)))


def validate_inventory(
    path: str | os.PathLike, group_data_dir: str | os.PathLike | None = None
) -> list[Problem]:
    """Load an inventory offline and return its problems (empty: the inventory is fine)."""
    try:
        loaded = load_inventory_full(path, group_data_dir)
    except InventoryError as error:
        return [Problem(CLUSTER, "inventory", str(error))]
    return validate_loaded(loaded)


def summary(hosts: list[InventoryHost]) -> str:
    """One line for a clean inventory: hosts, master, workers, model, llama.cpp source."""
    master = next((h for h in hosts if h.data.get("llama_role") == "master"), None)
    workers = [h.name for h in hosts if h is not master]
    data: Mapping[str, Any] = master.data if master else {}
    model = os.path.basename(data.get("model_file") or data.get("model_url") or "?")
    source = data.get("llama_cpp_ref") or os.path.basename(data.get("llama_cpp_archive") or "?")
    return (f"ok: {len(hosts)} hosts, master {master.name if master else '?'}, "
            f"workers {', '.join(workers)}, model {model}, ref {source}")
