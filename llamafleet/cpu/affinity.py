"""A device's big cores from its cpufreq clocks, and CPU lists as the kernel writes them (pure
functions, no pyinfra).

Why clocks and not core names: on big.LITTLE SoCs each cluster has its own cpufreq policy, so
`cpuinfo_max_freq` (kernel ABI: Documentation/ABI/testing/sysfs-devices-system-cpu) tells the
LITTLE cluster (the lowest clock) from the others on every device, also one whose cores the
CPU table does not name. A Tensor G2 reads 1.80 GHz on CPUs 0-3 (Cortex-A55), 2.35 GHz on 4-5
(A78) and 2.85 GHz on 6-7 (X1): its big cores are 4-7.

Why only the CPUs the device lets its processes use: an Android app runs in a cpuset
(`/dev/cpuset/top-app`, `background`: Cpus_allowed_list in /proc/self/status), and a container
or an affinity mask narrows it too; asking for a CPU outside it makes taskset fail, and the
worker with it.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


def parse_cpu_list(text: str) -> list[int]:
    """"0-3,6" -> [0, 1, 2, 3, 6] (the kernel's list format, as Cpus_allowed_list and
    taskset -c write it); ValueError for anything else, an empty list included."""
    cpus: set[int] = set()
    for part in str(text).strip().split(","):
        match = _RANGE.fullmatch(part.strip())
        if not match:
            raise ValueError(f"not a CPU list: {text!r}")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if high < low:
            raise ValueError(f"not a CPU list: {text!r}")
        cpus.update(range(low, high + 1))
    return sorted(cpus)


def format_cpu_list(cpus: Iterable[int]) -> str:
    """[0, 1, 2, 3, 6] -> "0-3,6": runs of consecutive CPUs as ranges."""
    runs: list[list[int]] = []
    for cpu in sorted(set(cpus)):
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)


_MAX_FREQ_LINE = re.compile(r"/cpu(\d+)/cpufreq/cpuinfo_max_freq:\s*(\d+)\s*$")


def parse_max_freqs(lines: Iterable[str]) -> dict[str, int]:
    """`grep -H . /sys/devices/system/cpu/cpu*/cpufreq/cpuinfo_max_freq` -> one entry per
    clock: {CPU list: kHz}, lowest clock first ({"0-3": 1803000, "4-5": 2348000, "6-7":
    2850000}); {} when nothing was readable. Keys are strings: the fact stays JSON."""
    by_khz: dict[int, list[int]] = {}
    for line in lines:
        match = _MAX_FREQ_LINE.search(line.strip())
        if match:
            by_khz.setdefault(int(match.group(2)), []).append(int(match.group(1)))
    return {format_cpu_list(cpus): khz for khz, cpus in sorted(by_khz.items())}


def parse_allowed(lines: Iterable[str]) -> str | None:
    """The Cpus_allowed_list line of /proc/<pid>/status -> its list ("0-7"), normalised;
    None when absent or not a CPU list."""
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "Cpus_allowed_list":
            try:
                return format_cpu_list(parse_cpu_list(value))
            except ValueError:
                return None
    return None


def big_core_pin(max_khz: Mapping[str, int], allowed: str | None) -> tuple[str | None, str | None]:
    """(the CPU list to pin a worker to, None) or (None, why not, in a few words).

    The big cores are the allowed CPUs whose max clock is above the device's lowest (the
    LITTLE cluster, wherever the processes may run). Nothing to pin with no clocks, with one
    clock for every CPU, with the allowed CPUs unknown, when no big core is allowed (an app
    held to the little cores) or when every allowed CPU is big already (a pin changes nothing).
    ValueError when a key of `max_khz` or `allowed` is not a CPU list."""
    clocks = {cpu: int(khz) for cpus, khz in max_khz.items() for cpu in parse_cpu_list(cpus)}
    if not clocks:
        return None, "no cpufreq"
    lowest = min(clocks.values())
    big = {cpu for cpu, khz in clocks.items() if khz > lowest}
    if not big:
        return None, "one clock for all CPUs"
    if allowed is None:
        return None, "allowed CPUs unknown"
    usable = set(parse_cpu_list(allowed))
    chosen = big & usable
    if not chosen:
        return None, f"big {format_cpu_list(big)} not among allowed {format_cpu_list(usable)}"
    if chosen == usable:
        return None, "every allowed CPU is big"
    return format_cpu_list(chosen), None
