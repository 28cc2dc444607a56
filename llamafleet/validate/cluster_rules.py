"""Rules across hosts: one master and some workers, one source and one model for all, the tensor
split, one inventory entry per machine, and whether the model fits the RAM the inventory gives.
"""

from __future__ import annotations

from llamafleet.inventory_data import InventoryHost
from llamafleet.plan import HostInput, PlanError, make_plan, model_size_from_data
from llamafleet.validate.findings import CLUSTER, Findings
from llamafleet.validate.network_rules import check_listeners
from llamafleet.validate.schema import Schema

# Values that must be one for the whole cluster (RPC needs one protocol version; one model).
CLUSTER_WIDE_KEYS = ("llama_cpp_ref", "llama_cpp_archive", "model_url", "model_file", "model_sha256")


def check_roles(findings: Findings, hosts: list[InventoryHost]) -> tuple[InventoryHost | None, list[InventoryHost]]:
    """Exactly one master, at least one worker. Returns (master, workers in rank order)."""
    masters = [h for h in hosts if findings.value(h, "llama_role") == "master"]
    workers = [h for h in hosts if h not in masters]
    if not masters:
        findings.report(CLUSTER, "llama_role", 'no master: set llama_role = "master" on one host')
    for extra in masters[1:]:
        findings.report(extra.name, "llama_role",
                        f"second master ({masters[0].name} is master already): exactly one allowed")
    if not workers:
        findings.report(CLUSTER, "llama_role", "no workers: the master needs at least one RPC worker")
    return (masters[0] if masters else None), workers


def check_cluster_wide(findings: Findings, hosts: list[InventoryHost], master: InventoryHost | None) -> None:
    reference = master or (hosts[0] if hosts else None)
    if reference is None:
        return
    for key in CLUSTER_WIDE_KEYS:
        expected = findings.value(reference, key)
        for host in hosts:
            if host is reference or findings.is_bad(host, key) or findings.is_bad(reference, key):
                continue  # a value already reported as malformed is not compared again
            value = findings.value(host, key)
            if value != expected:
                findings.report(host.name, key, f"{value!r} differs from {expected!r} on {reference.name}: "
                                "one cluster needs one llama.cpp source and one model")


def check_tensor_split(findings: Findings, master: InventoryHost, worker_count: int) -> None:
    split = findings.value(master, "llama_tensor_split")
    if split is None:
        return
    if len(split) != worker_count:
        findings.report(master.name, "llama_tensor_split",
                        f"{len(split)} proportions for {worker_count} workers: one per worker, in rank order")
    if any(share < 0 for share in split):
        findings.report(master.name, "llama_tensor_split", "proportions cannot be negative")
    if abs(sum(split) - 1) > 0.001:
        findings.report(master.name, "llama_tensor_split", f"proportions sum to {sum(split):g}, must be 1")


def check_one_entry_per_machine(findings: Findings, hosts: list[InventoryHost]) -> None:
    """Two entries that log into the same sshd are one machine: the plan would count its RAM
    and cores twice and give it two shares of the model."""
    first_of: dict[tuple[str, int], str] = {}
    for host in hosts:
        if host.name.startswith("@") or findings.is_bad(host, "ssh_hostname", "ssh_port"):
            continue  # "@local"-style hosts are not reached over SSH
        address = str(host.data.get("ssh_hostname") or host.name).strip("[]").rstrip(".").lower()
        port = findings.value(host, "ssh_port") or 22
        login = (address, port)
        if login in first_of:
            findings.report(host.name, "ssh_hostname", f"{address} port {port} is {first_of[login]} "
                            "again: one machine listed twice would have its RAM counted twice; "
                            "keep one entry per machine")
        else:
            first_of[login] = host.name


def _problem_from_reason(findings: Findings, schema: Schema, reason: str, fallback_key: str,
                         suggestion: str) -> None:
    """A PlanError line ("host: key: message", "host: label: message" or "host: message") as a
    Problem naming a data key: the plan's own labels ("model") become the key to change."""
    host, _, rest = reason.partition(": ")
    key, _, message = rest.partition(": ")
    if key not in schema.kinds:
        if " " in key or not message:
            message = rest  # no label: the whole line is the message
        key = fallback_key if host == CLUSTER else "ram_mb"
    findings.report(host, key, f"{message}; {suggestion}" if suggestion else message)


def check_offline_fit(findings: Findings, schema: Schema, hosts: list[InventoryHost],
                      master: InventoryHost | None) -> None:
    """With ram_mb on every host and a known model size, the plan needs no facts: an inventory
    whose model cannot fit is refused here, before any host is touched. Only on an inventory
    with no other problem: the plan would repeat them less clearly."""
    if findings.problems or master is None:
        return
    if not all(findings.value(host, "ram_mb") for host in hosts):
        return  # RAM comes from the devices: `llamafleet plan` and the deploy check the fit
    master_data = findings.clean(master)
    size = model_size_from_data(master_data)
    if not size:
        return
    # The size is model_file's own when that file exists, else model_size_mb: name the one used.
    size_key = "model_size_mb" if master_data.get("model_size_mb") == size else "model_file"
    inputs = [HostInput(host.name, findings.clean(host), groups=host.groups) for host in hosts]
    try:
        make_plan(inputs, size)
    except PlanError as error:
        for reason in error.reasons:
            _problem_from_reason(findings, schema, reason, size_key, error.suggestion)


def check_cluster(findings: Findings, schema: Schema, hosts: list[InventoryHost]) -> None:
    """Every rule across hosts, in the order its lines are printed."""
    master, workers = check_roles(findings, hosts)
    check_cluster_wide(findings, hosts, master)
    if master is not None:
        check_tensor_split(findings, master, len(workers))
    check_listeners(findings, hosts, master, workers)
    check_one_entry_per_machine(findings, hosts)
    check_offline_fit(findings, schema, hosts, master)
