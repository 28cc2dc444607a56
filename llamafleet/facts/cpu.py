"""The CpuProfile fact: /proc/cpuinfo and uname -m, parsed by llamafleet.cpu.profile with the
CPU table (llamafleet.cpu.table) and the host's extra rows from group data `llama_cpu_table`."""

from __future__ import annotations

from dataclasses import replace

from pyinfra.api import FactBase

from llamafleet.cpu.profile import parse_cpuinfo
from llamafleet.cpu.table import table_for

SEPARATOR = "---llamafleet-uname---"
NPROC_SEPARATOR = "---llamafleet-nproc---"


class CpuProfile(FactBase[dict]):
    """The device's CPU as llamafleet sees it (llamafleet.cpu.profile.CpuProfile.to_dict()),
    with the CPUs its processes may use (`nproc`) as usable_cpus:

    .. code:: python

        {"arch": "aarch64", "uname_m": "aarch64", "logical_cpus": 8,
         "cores": {"cortex-a55": 4, "cortex-a76": 2, "exynos-m5": 2},
         "core_equivalents": {}, "features": ["asimd", "dotprod", "fp16", ...],
         "big_cores": 4, "threads": 4, "march": "armv8.2-a+dotprod+fp16",
         "mcpu": "exynos-m5", "tune_candidates": ["exynos-m5", "cortex-a76"],
         "cpu_architecture": 8, "model": None}

    + cpu_table: a YAML file on the controller whose rows are merged over the built-in CPU
      table (group data `llama_cpu_table`); read when the output is parsed, on the controller.
    """

    # Read once per host and deploy (llamafleet.facts.reading): it cannot change meanwhile.
    same_for_a_deploy = True

    # Set by command(): pyinfra calls command() and process() on one instance per read.
    cpu_table: str | None = None

    @staticmethod
    def arguments_from_data(data) -> dict:
        """The fact's arguments a host's data asks for: its `llama_cpu_table`, when it has one.
        Whatever reads the fact (the plan, the build) passes these, so all see one profile."""
        cpu_table = data.get("llama_cpu_table")
        return {"cpu_table": cpu_table} if cpu_table else {}

    def command(self, cpu_table: str | None = None) -> str:
        self.cpu_table = cpu_table
        # Both reads are allowed to fail (SELinux on some phones hides /proc/cpuinfo): the
        # parser then falls back to uname and one thread instead of failing the fact.
        return (f"cat /proc/cpuinfo 2>/dev/null; echo {SEPARATOR}; uname -m 2>/dev/null; "
                f"echo {NPROC_SEPARATOR}; nproc 2>/dev/null; true")

    def process(self, output: list[str]) -> dict:
        lines = list(output)
        if SEPARATOR in lines:
            split = lines.index(SEPARATOR)
            cpuinfo, rest = lines[:split], lines[split + 1 :]
        else:
            cpuinfo, rest = lines, []
        if NPROC_SEPARATOR in rest:
            split = rest.index(NPROC_SEPARATOR)
            rest, nproc = rest[:split], rest[split + 1:]
        else:
            nproc = []
        uname_m = next((line.strip() for line in rest if line.strip()), None)
        usable = next((int(line) for line in (line.strip() for line in nproc) if line.isdigit()), None)
        # A bad table raises CpuTableError naming the file and row; `llamafleet check` (the
        # deploy's first step) refuses it before any fact is read.
        profile = parse_cpuinfo("\n".join(cpuinfo), uname_m, table_for(self.cpu_table))
        return replace(profile, usable_cpus=usable).to_dict()
