"""The plan as `llamafleet plan` prints it: a row per device, then how llama-server starts."""

from __future__ import annotations

from llamafleet.plan.addresses import host_port
from llamafleet.plan.shapes import Plan, PlannedHost


def _cores_text(host: PlannedHost) -> str:
    total = sum(host.cores.values())
    if not total:
        return "?"
    return f"{host.big_cores if host.big_cores is not None else '?'}/{total}"


def _march_text(host: PlannedHost) -> str:
    """The march, and what the CPU refused (so a plan shows why it is lower than the CPU says)."""
    march = host.march or "?"
    return f"{march} (refused: {', '.join(host.cpu_refused)})" if host.cpu_refused else march


def _pin_text(host: PlannedHost) -> str:
    """The CPUs a worker is pinned to, or "-" and why not (nothing for the master)."""
    if host.cpu_pin:
        return host.cpu_pin
    return f"- ({host.cpu_pin_reason})" if host.cpu_pin_reason else "-"


PLAN_COLUMNS = ("host", "role", "rank", "address:port", "transport", "big/all cores", "threads",
                "pinned to", "march", "RAM MB", "share", "model MB", "expected MB", "headroom MB")


def table_rows(plan: Plan) -> list[tuple[str, ...]]:
    """One row per device, in PLAN_COLUMNS order."""
    rows = []
    for host in plan.hosts:
        listens = host_port(host.address, host.rpc_port) if host.rpc_port else host.cluster_address
        rows.append((
            host.name, host.role, str(host.rank), listens, host.transport or "-",
            _cores_text(host), str(host.threads), _pin_text(host), _march_text(host), f"{host.ram_mb:.0f}",
            f"{host.split:.1%}" if host.role == "worker" or host.split else "-", f"{host.share_mb:.0f}",
            f"{host.expected_mb:.0f}", f"{host.headroom_mb:.0f}",
        ))
    return rows


def master_lines(plan: Plan) -> list[str]:
    """How llama-server will be started, and the plan's hints."""
    master = plan.master
    return [
        f"model: {plan.model_size_mb:.0f} MB",
        f"master {master.name}: {master.api_url}  --load-mode {master.load_mode}  -t {master.threads}",
        f"  --rpc {master.rpc or '(none: the master alone)'}",
        f"  -ts {master.tensor_split or '-'}  -ngl {master.gpu_layers}",
        _basis_line(plan),
        *_without_lines(plan),
        *(f"hint: {hint}" for hint in plan.hints),
    ]


def _basis_line(plan: Plan) -> str:
    """How the split was made; with speeds, each measured device's and the predicted speed."""
    master = plan.master
    if master.split_by != "speed":
        return f"  split by {'hand (llama_tensor_split)' if master.split_by == 'hand' else 'usable RAM'}"
    speeds = ", ".join(f"{host.name} {host.ms_per_mb:.3g}" for host in plan.hosts if host.ms_per_mb is not None)
    predicted = f", about {1000 / master.predicted_ms:.1f} tokens/s" if master.predicted_ms else ""
    on_master = f"; the master's CPU holds {plan.hosts[0].split:.0%}" if plan.hosts[0].split else ""
    return f"  split by measured speed (ms/token per MiB: {speeds}){predicted}{on_master}"


def _without_lines(plan: Plan) -> list[str]:
    """What the master serves with when one worker is away (the groups missing one; more in
    plan --json), or that it waits for it when the others cannot hold the model."""
    names = [worker.name for worker in plan.workers() if worker.connect]
    if len(names) < 2:
        return []
    by_group = {row.group or row.workers: row for row in plan.master.degraded}
    serving = [host.name for host in plan.serving()]
    lines = []
    for away in names:
        if away not in serving:
            lines.append(f"  without {away}: as planned (it holds nothing)")
            continue
        row = by_group.get(tuple(name for name in names if name != away))
        lines.append(f"  without {away}: -ts {row.tensor_split or '-'} over {' '.join(row.workers) or 'the master alone'}" if row
                     else f"  without {away}: the others cannot hold the model; the master waits for it")
    return lines


def render_table(plan: Plan) -> str:
    """A table per device, then how llama-server will be started (plain text)."""
    from llamafleet.tables import aligned

    return "\n".join([*aligned(PLAN_COLUMNS, table_rows(plan)), "", *master_lines(plan)])
