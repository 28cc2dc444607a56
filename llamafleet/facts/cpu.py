"""The CpuProfile fact: /proc/cpuinfo and uname -m, parsed by llamafleet.cpu.profile."""

from __future__ import annotations

from pyinfra.api import FactBase

from llamafleet.cpu.profile import parse_cpuinfo

SEPARATOR = "---llamafleet-uname---"


class CpuProfile(FactBase[dict]):
    """The device's CPU as llamafleet sees it (llamafleet.cpu.profile.CpuProfile.to_dict()):

    .. code:: python

        {"arch": "aarch64", "uname_m": "aarch64", "logical_cpus": 8,
         "cores": {"cortex-a55": 4, "cortex-a76": 2, "exynos-m5": 2},
         "core_equivalents": {}, "features": ["asimd", "dotprod", "fp16", ...],
         "big_cores": 4, "threads": 4, "march": "armv8.2-a+dotprod+fp16",
         "mcpu": "exynos-m5", "tune_candidates": ["exynos-m5", "cortex-a76"],
         "cpu_architecture": 8, "model": None}
    """

    def command(self) -> str:
        # Both reads are allowed to fail (SELinux on some phones hides /proc/cpuinfo): the
        # parser then falls back to uname and one thread instead of failing the fact.
        return f"cat /proc/cpuinfo 2>/dev/null; echo {SEPARATOR}; uname -m 2>/dev/null; true"

    def process(self, output: list[str]) -> dict:
        lines = list(output)
        if SEPARATOR in lines:
            split = lines.index(SEPARATOR)
            cpuinfo, rest = lines[:split], lines[split + 1 :]
        else:
            cpuinfo, rest = lines, []
        uname_m = next((line.strip() for line in rest if line.strip()), None)
        return parse_cpuinfo("\n".join(cpuinfo), uname_m).to_dict()
