"""ARM MIDR (implementer, part) → core type, from the `cores:` rows of the CPU table.

`/proc/cpuinfo` on ARM prints, per CPU, `CPU implementer` (MIDR_EL1[31:24]) and `CPU part`
(MIDR_EL1[15:4]). Only the *pair* names a core: part 0xd40 is a Neoverse-V1 under ARM (0x41)
but a Cortex-A76 under HiSilicon (0x48). So the table is keyed on the pair, never on the part
alone. The rows, their sources and what each field means are in table.yaml; a core that is not
there can be added without Python (group data `llama_cpu_table`, see table.py).
"""

from __future__ import annotations

from .table import CoreType, CpuTable, builtin_table

__all__ = ["MIDR_TABLE", "CoreType", "lookup", "unknown_core"]

# (implementer, part) → CoreType of the built-in table (read-only).
MIDR_TABLE = builtin_table().cores


def unknown_core(implementer: int | None, part: int | None) -> CoreType:
    """A core the table does not know. It counts as big (better one slow thread too many than
    a fast core left idle) and gets no tuning; its name keeps the raw ids for bug reports."""
    imp = f"{implementer:#04x}" if implementer is not None else "none"
    prt = f"{part:#05x}" if part is not None else "none"
    return CoreType(f"unknown-{imp}-{prt}", None, little=False)


def lookup(implementer: int | None, part: int | None, table: CpuTable | None = None) -> CoreType:
    """Core type for a MIDR pair in `table` (default: the built-in one); `unknown_core` when
    the pair is not there."""
    if implementer is None or part is None:
        return unknown_core(implementer, part)
    cores = (table or builtin_table()).cores
    return cores.get((implementer, part)) or unknown_core(implementer, part)
