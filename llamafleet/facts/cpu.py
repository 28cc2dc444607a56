"""The CpuProfile fact: /proc/cpuinfo and uname -m, parsed by llamafleet.cpu.profile with the
CPU table (llamafleet.cpu.table) and the host's extra rows from group data `llama_cpu_table`;
beside them the CPUs' max clocks and the CPUs the device lets its processes use
(llamafleet.cpu.affinity: what the plan pins a worker to)."""

from __future__ import annotations

from dataclasses import replace

from pyinfra.api import FactBase

from llamafleet.cpu.affinity import parse_allowed, parse_max_freqs
from llamafleet.cpu.profile import parse_cpuinfo
from llamafleet.cpu.table import table_for

SEPARATOR = "---llamafleet-uname---"
NPROC_SEPARATOR = "---llamafleet-nproc---"
CPUFREQ_SEPARATOR = "---llamafleet-cpufreq---"
ALLOWED_SEPARATOR = "---llamafleet-allowed---"
SEPARATORS = (SEPARATOR, NPROC_SEPARATOR, CPUFREQ_SEPARATOR, ALLOWED_SEPARATOR)


def _sections(lines: list[str]) -> dict[str | None, list[str]]:
    """The output's lines by the separator above them (None: /proc/cpuinfo's, before any); a
    separator missing from the output (an older command) gives no entry."""
    sections: dict[str | None, list[str]] = {None: []}
    current = None
    for line in lines:
        if line.strip() in SEPARATORS:
            current = line.strip()
            sections[current] = []
        else:
            sections[current].append(line)
    return sections


class CpuProfile(FactBase[dict]):
    """The device's CPU as llamafleet sees it (llamafleet.cpu.profile.CpuProfile.to_dict()),
    with the CPUs its processes may use (`nproc`) as usable_cpus, each CPU's max clock by
    cpufreq as cpu_max_khz ({CPU list: kHz}; {} where /sys hides cpufreq) and the CPUs the
    reading shell may run on (Cpus_allowed_list of /proc/self/status) as allowed_cpus:

    .. code:: python

        {"arch": "aarch64", "uname_m": "aarch64", "logical_cpus": 8,
         "cores": {"cortex-a55": 4, "cortex-a76": 2, "exynos-m5": 2},
         "core_equivalents": {}, "features": ["asimd", "dotprod", "fp16", ...],
         "big_cores": 4, "threads": 4, "march": "armv8.2-a+dotprod+fp16",
         "mcpu": "exynos-m5", "tune_candidates": ["exynos-m5", "cortex-a76"],
         "cpu_architecture": 8, "model": None, "usable_cpus": 8,
         "cpu_max_khz": {"0-3": 1803000, "4-5": 2348000, "6-7": 2850000}, "allowed_cpus": "0-7"}

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
        # Max clocks: "<path>:<kHz>" per CPU whose cpufreq is readable (many VMs and some
        # phones have none). Allowed CPUs: grep's own, inherited from this shell unchanged.
        return (f"cat /proc/cpuinfo 2>/dev/null; echo {SEPARATOR}; uname -m 2>/dev/null; "
                f"echo {NPROC_SEPARATOR}; nproc 2>/dev/null; "
                f"echo {CPUFREQ_SEPARATOR}; grep -H . /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq 2>/dev/null; "
                f"echo {ALLOWED_SEPARATOR}; grep '^Cpus_allowed_list:' /proc/self/status 2>/dev/null; true")

    def process(self, output: list[str]) -> dict:
        sections = _sections(list(output))
        uname_m = next((line.strip() for line in sections.get(SEPARATOR, []) if line.strip()), None)
        nproc = (line.strip() for line in sections.get(NPROC_SEPARATOR, []))
        usable = next((int(line) for line in nproc if line.isdigit()), None)
        # A bad table raises CpuTableError naming the file and row; `llamafleet check` (the
        # deploy's first step) refuses it before any fact is read.
        profile = parse_cpuinfo("\n".join(sections[None]), uname_m, table_for(self.cpu_table))
        return replace(profile, usable_cpus=usable, cpu_max_khz=parse_max_freqs(sections.get(CPUFREQ_SEPARATOR, [])),
                       allowed_cpus=parse_allowed(sections.get(ALLOWED_SEPARATOR, []))).to_dict()
