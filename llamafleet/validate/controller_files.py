"""Rules for the keys that name a file on the controller and change what a device gets: the
chat template llama-server is given and an extra CPU table. Each must load here, before any
host is touched."""

from __future__ import annotations

from functools import lru_cache

from llamafleet.cpu.table import CpuTableError, table_for
from llamafleet.inventory_data import InventoryHost
from llamafleet.serving import chat_template
from llamafleet.validate.findings import Findings


@lru_cache(maxsize=None)
def _cpu_table_problem(path: str) -> str:
    """Why the CPU table at `path` cannot be used ("" when it can): read once per file."""
    try:
        table_for(path)
    except CpuTableError as error:
        return str(error)
    return ""


def check_controller_files(findings: Findings, host: InventoryHost) -> None:
    template_problem = chat_template.problem(findings.value(host, "llama_chat_template"))
    if template_problem:
        findings.bad_value(host, "llama_chat_template", template_problem)
    # A missing file, bad YAML or a malformed row stop here, before a fact is read with it.
    table = findings.value(host, "llama_cpu_table")
    if table and (problem := _cpu_table_problem(table)):
        findings.bad_value(host, "llama_cpu_table", problem)
