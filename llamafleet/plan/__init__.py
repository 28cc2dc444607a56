"""The cluster plan: every per-host decision, made once (see llamafleet.plan.shapes).

`make` places the model, `decide` holds one function per decision, `ports` the workers' ports
and order (kept across deploys), `firewall` the rules a host gets, `memory` the split, `table`
what `llamafleet plan` prints.
"""

from llamafleet.plan.addresses import WILDCARD_ADDRESSES, cluster_address_of, host_port, is_loopback, is_wildcard
from llamafleet.plan.decide import (
    ARMV7_ADDRESS_LIMIT_MB,
    api_url_of,
    effective_bind,
    effective_transport,
    platform_of,
)
from llamafleet.plan.make import make_plan
from llamafleet.plan.ports import PORT_RECORD_FACT, PortChoice, PortRecord, choose_ports, rank_order
from llamafleet.plan.memory import (
    MIB,
    QUANT_BITS,
    format_split,
    model_size_from_data,
    quantisation_hint,
    split_by_capacity,
)
from llamafleet.plan.shapes import HostInput, MasterPlan, Plan, PlanError, PlannedHost
from llamafleet.plan.table import PLAN_COLUMNS, master_lines, render_table, table_rows

__all__ = [
    "ARMV7_ADDRESS_LIMIT_MB", "MIB", "PLAN_COLUMNS", "PORT_RECORD_FACT", "QUANT_BITS", "WILDCARD_ADDRESSES",
    "HostInput", "MasterPlan", "Plan", "PlanError", "PlannedHost", "PortChoice", "PortRecord", "api_url_of",
    "choose_ports", "cluster_address_of", "effective_bind", "effective_transport", "format_split", "host_port",
    "is_loopback", "is_wildcard", "make_plan", "master_lines", "model_size_from_data", "platform_of",
    "quantisation_hint", "rank_order", "render_table", "split_by_capacity", "table_rows",
]
