"""Big cores from cpufreq clocks (llamafleet.cpu.affinity) and the CpuProfile fact's reading of
them: the kernel's CPU lists, `grep -H` of cpuinfo_max_freq, Cpus_allowed_list, and the fact's
command run for real on a Tensor G2's sysfs (bind-mounted) under taskset."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from llamafleet.cpu.affinity import (
    big_core_pin,
    format_cpu_list,
    parse_allowed,
    parse_cpu_list,
    parse_max_freqs,
)
from llamafleet.facts import CpuProfile
from llamafleet.facts.cpu import ALLOWED_SEPARATOR, CPUFREQ_SEPARATOR, NPROC_SEPARATOR, SEPARATOR

DATA = Path(__file__).resolve().parents[1] / "data" / "cpuinfo"
# Pixel 7 (Tensor G2): 4× Cortex-A55 1.80 GHz, 2× A78 2.35 GHz, 2× X1 2.85 GHz, as its cpufreq reads.
G2_KHZ = [1803000] * 4 + [2348000] * 2 + [2850000] * 2
G2_TIERS = {"0-3": 1803000, "4-5": 2348000, "6-7": 2850000}


def grep_lines(khz: list[int]) -> list[str]:
    return [f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq:{value}" for cpu, value in enumerate(khz)]


# --- CPU lists ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, cpus", [("0-3,6", [0, 1, 2, 3, 6]), ("7", [7]), (" 4-5,6-7\n", [4, 5, 6, 7]),
                                        ("0,0-1", [0, 1])])
def test_cpu_lists_as_the_kernel_writes_them(text, cpus):
    assert parse_cpu_list(text) == cpus


@pytest.mark.parametrize("text", ["", "0-", "a", "3-1", "0;1", "0-3,"])
def test_anything_else_is_not_a_cpu_list(text):
    with pytest.raises(ValueError, match="not a CPU list"):
        parse_cpu_list(text)


def test_cpu_lists_are_written_as_ranges():
    assert format_cpu_list([6, 0, 1, 2, 3]) == "0-3,6"
    assert format_cpu_list([4, 5, 6, 7]) == "4-7" and format_cpu_list([6, 7, 6]) == "6-7"
    assert format_cpu_list([1, 3, 5]) == "1,3,5" and format_cpu_list([]) == ""


# --- what the fact reads -------------------------------------------------------------------------


def test_max_clocks_are_grouped_by_clock_lowest_first():
    assert parse_max_freqs(grep_lines(G2_KHZ)) == G2_TIERS
    # Snapdragon 888 (1× X1, 3× A78, 4× A55), listed in another order: one entry per clock.
    lines = list(reversed(grep_lines([1804800] * 4 + [2419200] * 3 + [2841600])))
    assert parse_max_freqs(lines) == {"0-3": 1804800, "4-6": 2419200, "7": 2841600}
    assert parse_max_freqs([]) == {} and parse_max_freqs(["grep: no such file", ""]) == {}


def test_allowed_cpus_from_proc_status():
    status = ["Name:\tsh", "Cpus_allowed:\tff", "Cpus_allowed_list:\t0-3,4-7", "Mems_allowed_list:\t0"]
    assert parse_allowed(status) == "0-7"
    assert parse_allowed(["Cpus_allowed_list:\t0-1"]) == "0-1"
    assert parse_allowed(["Name:\tsh"]) is None and parse_allowed(["Cpus_allowed_list:\tgarbage"]) is None


def test_the_fact_keeps_clocks_and_allowed_cpus_apart_from_cpuinfo():
    dump = (DATA / "google-tensor-g2.txt").read_text().splitlines()
    output = [*dump, SEPARATOR, "aarch64", NPROC_SEPARATOR, "8", CPUFREQ_SEPARATOR, *grep_lines(G2_KHZ),
              ALLOWED_SEPARATOR, "Cpus_allowed_list:\t0-7"]
    profile = CpuProfile().process(output)
    assert (profile["cpu_max_khz"], profile["allowed_cpus"], profile["usable_cpus"]) == (G2_TIERS, "0-7", 8)
    assert profile["logical_cpus"] == 8 and profile["uname_m"] == "aarch64"
    # Without cpufreq (a VM, some phones) and from an older command (no such sections): nothing.
    bare = CpuProfile().process([*dump, SEPARATOR, "aarch64", NPROC_SEPARATOR, "8", CPUFREQ_SEPARATOR,
                                 ALLOWED_SEPARATOR, "Cpus_allowed_list:\t0-1"])
    assert (bare["cpu_max_khz"], bare["allowed_cpus"]) == ({}, "0-1")
    old = CpuProfile().process([*dump, SEPARATOR, "aarch64", NPROC_SEPARATOR, "8"])
    assert (old["cpu_max_khz"], old["allowed_cpus"]) == ({}, None)
    assert {key: old[key] for key in ("arch", "cores", "big_cores")} == {key: profile[key] for key in ("arch", "cores", "big_cores")}


needs_root_unshare = pytest.mark.skipif(
    os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("taskset")),
    reason="needs root, unshare and taskset (a private mount namespace over /sys/devices/system/cpu)",
)


@needs_root_unshare
def test_the_facts_command_reads_a_phones_sysfs_and_the_shells_affinity(tmp_path):
    """The fact's own command in a mount namespace where /sys/devices/system/cpu is a Tensor
    G2's (cpuidle and the policy directory beside the CPUs, as on a phone), started by
    `taskset -c 0`: the clocks per CPU, and the one CPU the shell may use."""
    tree = tmp_path / "cpu"
    for cpu, khz in enumerate(G2_KHZ):
        freq = tree / f"cpu{cpu}" / "cpufreq"
        freq.mkdir(parents=True)
        (freq / "cpuinfo_max_freq").write_text(f"{khz}\n")
    (tree / "cpuidle").mkdir()
    (tree / "cpufreq" / "policy0").mkdir(parents=True)
    (tree / "cpufreq" / "policy0" / "cpuinfo_max_freq").write_text("1803000\n")
    fact = CpuProfile()
    command = fact.command()
    script = f"mount --bind {tree} /sys/devices/system/cpu && taskset -c 0 sh -c {shlex.quote(command)}"
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    profile = fact.process(result.stdout.splitlines())
    assert profile["cpu_max_khz"] == G2_TIERS
    assert profile["allowed_cpus"] == "0" and profile["usable_cpus"] == 1


# --- the big cores ---------------------------------------------------------------------------------


def test_a_three_clock_soc_pins_every_cpu_above_the_little_cluster():
    assert big_core_pin(G2_TIERS, "0-7") == ("4-7", None)
    # An app allowed 0-5 (no X1): its big cores are the two A78.
    assert big_core_pin(G2_TIERS, "0-5") == ("4-5", None)


@pytest.mark.parametrize("clocks, allowed, why", [
    ({}, "0-7", "no cpufreq"),
    ({"0-7": 2000000}, "0-7", "one clock for all CPUs"),
    (G2_TIERS, None, "allowed CPUs unknown"),
    # The lab's ARM phone: sysfs shows 8 CPUs, the scheduler allows 2 (the machine's), both little.
    (G2_TIERS, "0-1", "big 4-7 not among allowed 0-1"),
    # An Android app in the background cpuset: the little cores only.
    (G2_TIERS, "0-3", "big 4-7 not among allowed 0-3"),
    # Already on big cores alone: a pin would change nothing.
    (G2_TIERS, "4-7", "every allowed CPU is big"),
])
def test_nothing_is_pinned_where_it_cannot_or_need_not_be(clocks, allowed, why):
    assert big_core_pin(clocks, allowed) == (None, why)


def test_a_malformed_clock_table_is_an_error_for_the_caller():
    with pytest.raises(ValueError, match="not a CPU list"):
        big_core_pin({"zero": 1}, "0-1")
