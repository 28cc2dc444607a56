"""The verify suite's check of a worker's CPUs (verify_suite/test_cpus.py, oracle in
verify_suite/cpus.py): on canned output it passes a worker as planned and fails, naming the
host, a stale, reset or little pin; and its command, run for real in a local shell, reads the
mask taskset gave a process."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from types import SimpleNamespace

import pytest

from llamafleet.verify_suite import test_cpus as checks
from llamafleet.verify_suite.cpus import SeenCpus, cpu_problems, cpus_command, parse_cpus

G2_CLOCKS = "\n".join(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq:{khz}"
                      for cpu, khz in enumerate([1803000] * 4 + [2348000] * 2 + [2850000] * 2))


def printed(worker: str, shell: str = "0-7", clocks: str = G2_CLOCKS, pid: str = "8123") -> str:
    return f"pid {pid} Cpus_allowed_list:\t{worker}\nshell Cpus_allowed_list:\t{shell}\n{clocks}\n"


def test_the_output_is_read_per_process_shell_and_cpu():
    seen = parse_cpus(printed("4-7") + "pid 9000 \n")
    assert seen.processes == {"8123": "4-7", "9000": ""} and seen.shell == "0-7"
    assert seen.clocks == {0: 1803000, 1: 1803000, 2: 1803000, 3: 1803000, 4: 2348000, 5: 2348000,
                           6: 2850000, 7: 2850000}
    assert seen.describe() == "pid 8123 on CPUs 4-7, pid 9000 on CPUs ?"
    assert parse_cpus("shell Cpus_allowed_list:\t0-1\n").describe() == "no rpc-server process"


def test_a_worker_as_planned_has_no_problem():
    assert cpu_problems(parse_cpus(printed("4-7")), "4-7") == []
    assert cpu_problems(parse_cpus(printed("0-7")), None) == []
    # The lab's ARM phone: 2 CPUs allowed, nothing pinned, the worker on both.
    assert cpu_problems(parse_cpus(printed("0-1", shell="0-1")), None) == []


@pytest.mark.parametrize("worker, pin, shell, clocks, problem", [
    # The pin was reset (a cpuset move) or never applied.
    ("0-7", "4-7", "0-7", G2_CLOCKS, "rpc-server pid 8123 runs on CPUs 0-7, planned pinned to 4-7"),
    # A pin an earlier deploy left although the plan pins nothing now.
    ("4-7", None, "0-7", G2_CLOCKS, "rpc-server pid 8123 runs on CPUs 4-7, planned unpinned, on every CPU allowed here (0-7)"),
    # A plan that pinned the little cores: the clocks say so.
    ("0-3", "0-3", "0-7", G2_CLOCKS, "pinned CPUs [0, 1, 2, 3] are not big: their max clock is the device's slowest"),
    ("4-7", "4-7", "0-7", "", "pinned to 4-7, yet the device shows no cpufreq clock to tell big cores by"),
    ("4-7", "4-7", "0-5", G2_CLOCKS, "pinned CPUs 4-7 are not all allowed here (0-5)"),
    ("4-7", "4-7", "", G2_CLOCKS, "the CPUs this shell may use are unreadable ('')"),
])
def test_what_differs_is_named(worker, pin, shell, clocks, problem):
    problems = cpu_problems(parse_cpus(printed(worker, shell, clocks)), pin)
    assert any(found.startswith(problem) for found in problems), problems


def test_no_worker_process_is_a_problem():
    assert cpu_problems(SeenCpus(shell="0-7"), None) == ["no rpc-server process found"]


class FakeHost:
    def __init__(self, answers: dict[str, str]):
        self.answers = answers

    def run(self, command: str):
        return SimpleNamespace(rc=0, stdout=self.answers.get(command, ""), stderr="")


def worker(output: str, pin: str | None, reason: str | None = None):
    planned = SimpleNamespace(binary="ggml-rpc-server", cpu_pin=pin, cpu_pin_reason=reason)
    return SimpleNamespace(name="phone2", planned=planned, host=FakeHost({cpus_command("ggml-rpc-server"): output}))


def test_the_check_reports_each_workers_cpus_and_fails_naming_the_host():
    lines: list[str] = []
    checks.test_worker_runs_on_its_planned_cpus(worker(printed("4-7"), "4-7"), lines.append)
    checks.test_worker_runs_on_its_planned_cpus(worker(printed("0-1", "0-1"), None, "big 4-7 not among allowed 0-1"),
                                                lines.append)
    assert lines == ["phone2: pid 8123 on CPUs 4-7 (plan: pinned to 4-7)",
                     "phone2: pid 8123 on CPUs 0-1 (plan: not pinned: big 4-7 not among allowed 0-1)"]
    with pytest.raises(AssertionError, match=r"phone2: rpc-server pid 8123 runs on CPUs 0-7, planned pinned to 4-7"):
        checks.test_worker_runs_on_its_planned_cpus(worker(printed("0-7"), "4-7"), lines.append)


@pytest.mark.skipif(not shutil.which("taskset") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs taskset and two CPUs to pin one of")
def test_the_command_reads_the_mask_taskset_gave_a_running_process(tmp_path):
    """A stand-in rpc-server (a copy of sleep under the binary's name) started by `taskset -c`
    with this process's first CPU, and one started plainly: the command finds both by name and
    reads what the kernel holds for each, and this shell's own CPUs."""
    fake = tmp_path / "fake-rpc-server"
    shutil.copy(shutil.which("sleep"), fake)
    allowed = sorted(os.sched_getaffinity(0))
    first = str(allowed[0])
    pinned = subprocess.Popen(["taskset", "-c", first, str(fake), "30"])
    plain = subprocess.Popen([str(fake), "31"])
    try:
        time.sleep(0.3)  # taskset has exec'd the stand-in: the same pid
        seen = parse_cpus(subprocess.run(["sh", "-c", cpus_command("fake-rpc-server")], capture_output=True,
                                         text=True, timeout=30).stdout)
    finally:
        for process in (pinned, plain):
            process.kill()
            process.wait()
    assert seen.processes[str(pinned.pid)] == first
    assert seen.processes[str(plain.pid)] == seen.shell and len(seen.processes) == 2
    assert cpu_problems(SeenCpus({str(plain.pid): seen.shell}, seen.shell, seen.clocks), None) == []
    assert cpu_problems(SeenCpus({str(pinned.pid): first}, seen.shell, seen.clocks), None) != []
