"""Independent oracle for the CPUs a worker's rpc-server runs on: the kernel's own answer
(Cpus_allowed_list in /proc/<pid>/status, proc(5)) beside the device's clocks (cpufreq's
cpuinfo_max_freq) and the CPUs the checking shell may use, read in one command.

What must hold, as group_data/all.py documents `rpc_pin_big_cores`: a pinned worker runs on
exactly the plan's CPUs, each of them faster than the device's slowest CPU (a big core) and
allowed to the device's processes; an unpinned one runs on every CPU the device's processes
may use (no stale pin of an earlier deploy). Parsed here, not with llamafleet.cpu.affinity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llamafleet.serving.probes import process_argvs


def cpus_command(binary: str) -> str:
    """One shell command: "pid <pid> Cpus_allowed_list: ..." per process named `binary`,
    "shell Cpus_allowed_list: ..." for the shell's own, then "<path>:<kHz>" per CPU clock."""
    status = "grep '^Cpus_allowed_list:' /proc/$p/status 2>/dev/null"
    return (f"{{ {process_argvs(binary)}; }} | cut -f 1 | while read -r p; do echo \"pid $p $({status})\"; done; "
            f"p=self; echo \"shell $({status})\"; "
            "grep -H . /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq 2>/dev/null; true")


def cpu_set(text: str) -> set[int] | None:
    """The kernel's CPU list ("0-3,6") as a set; None for anything else."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if not match:
            return None
        cpus.update(range(int(match.group(1)), int(match.group(2) or match.group(1)) + 1))
    return cpus


@dataclass
class SeenCpus:
    """What cpus_command printed: each rpc-server pid's CPU list (text, "" when unreadable),
    the shell's, and each CPU's max clock in kHz ({} without cpufreq)."""

    processes: dict[str, str] = field(default_factory=dict)
    shell: str = ""
    clocks: dict[int, int] = field(default_factory=dict)

    def describe(self) -> str:
        on = ", ".join(f"pid {pid} on CPUs {cpus or '?'}" for pid, cpus in self.processes.items())
        return on or "no rpc-server process"


def parse_cpus(output: str) -> SeenCpus:
    seen = SeenCpus()
    for line in output.splitlines():
        words = line.split()
        listed = line.split("Cpus_allowed_list:", 1)[1].strip() if "Cpus_allowed_list:" in line else ""
        clock = re.search(r"/cpu(\d+)/cpufreq/cpuinfo_max_freq:\s*(\d+)\s*$", line)
        if words[:1] == ["pid"] and len(words) > 1:
            seen.processes[words[1]] = listed
        elif words[:1] == ["shell"]:
            seen.shell = listed
        elif clock:
            seen.clocks[int(clock.group(1))] = int(clock.group(2))
    return seen


def cpu_problems(seen: SeenCpus, pin: str | None) -> list[str]:
    """How the rpc-server's CPUs differ from what must hold (see the module's text)."""
    if not seen.processes:
        return ["no rpc-server process found"]
    shell = cpu_set(seen.shell)
    if shell is None:
        return [f"the CPUs this shell may use are unreadable ({seen.shell!r})"]
    wanted = cpu_set(pin) if pin else shell
    if wanted is None:
        return [f"the planned pin {pin!r} is not a CPU list"]
    problems = []
    for pid, listed in seen.processes.items():
        cpus = cpu_set(listed)
        if cpus != wanted:
            what = f"pinned to {pin}" if pin else f"unpinned, on every CPU allowed here ({seen.shell})"
            problems.append(f"rpc-server pid {pid} runs on CPUs {listed or '?'}, planned {what}")
    if pin:
        if not seen.clocks:
            problems.append(f"pinned to {pin}, yet the device shows no cpufreq clock to tell big cores by")
        else:
            slowest = min(seen.clocks.values())
            little = sorted(cpu for cpu in wanted if seen.clocks.get(cpu, slowest) <= slowest)
            if little:
                problems.append(f"pinned CPUs {little} are not big: their max clock is the device's slowest "
                                f"({slowest} kHz) or unknown")
        if not wanted <= shell:
            problems.append(f"pinned CPUs {pin} are not all allowed here ({seen.shell})")
    return problems

