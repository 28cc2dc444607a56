"""The pyinfra facts: `.process()` on captured output, and real runs through pyinfra's local
connector on this machine (Debian, root). Termux is simulated where noted."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all

from llamafleet.cpu.affinity import format_cpu_list, parse_cpu_list
from llamafleet.cpu.flags import build_flags
from llamafleet.cpu.profile import parse_cpuinfo
from llamafleet.facts import CompilerAccepts, CompilerInfo, CpuProfile, DevicePlatform, MemInfo, compiler_accepts
from llamafleet.facts.cpu import NPROC_SEPARATOR, SEPARATOR
from llamafleet.facts.device import PROBE

DATA = Path(__file__).resolve().parents[1] / "data" / "cpuinfo"


@pytest.fixture(scope="module")
def local_host():
    """This machine through pyinfra's @local connector (the same code path as SSH hosts)."""
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    connect_all(state)
    return inventory.get_host("@local")


# --- process() on captured output -------------------------------------------------------


def test_cpu_profile_process_splits_cpuinfo_and_uname():
    lines = (DATA / "snapdragon-845-galaxy-s9-us-32bit-process-view.txt").read_text().splitlines()
    result = CpuProfile().process([*lines, SEPARATOR, "armv8l"])
    assert result["arch"] == "armv7l" and result["uname_m"] == "armv8l"
    assert result["cores"] == {"kryo-3xx-silver": 4, "kryo-3xx-gold": 4}


def test_cpu_profile_process_survives_hidden_cpuinfo():
    """Some phones' SELinux policy hides /proc/cpuinfo: uname alone, one thread."""
    result = CpuProfile().process([SEPARATOR, "aarch64"])
    assert result["arch"] == "aarch64" and result["threads"] == 1


def test_meminfo_process():
    out = [
        "MemTotal:        7812340 kB",
        "MemFree:          312000 kB",
        "MemAvailable:    3198000 kB",
        "Cached: 100 kB",
    ]
    assert MemInfo().process(out) == {"total_mb": 7629, "available_mb": 3123}


def test_meminfo_before_linux_3_14_estimates_available():
    out = ["MemTotal: 2048000 kB", "MemFree: 102400 kB", "Buffers: 51200 kB", "Cached: 204800 kB"]
    assert MemInfo().process(out) == {"total_mb": 2000, "available_mb": 350}


def test_device_platform_process_termux():
    out = [
        "prefix=/data/data/com.termux/files/usr",
        "termux_version=0.118.0",
        "home=/data/data/com.termux/files/home",
        "uid=10234",
        "android=13",
        "systemd=0",
        "sv_enable=/data/data/com.termux/files/usr/bin/sv-enable",
        "runsvdir=/data/data/com.termux/files/usr/bin/runsvdir",
    ]
    assert DevicePlatform().process(out) == {
        "platform": "termux",
        "android_version": "13",
        "is_root": False,
        "home": "/data/data/com.termux/files/home",
        "prefix": "/data/data/com.termux/files/usr",
        "has_systemd": False,
        "service_manager": "termux-services",
    }


def test_device_platform_process_linux_with_systemd():
    out = [
        "prefix=",
        "termux_version=",
        "home=/root",
        "uid=0",
        "android=",
        "systemd=1",
        "sv_enable=",
        "runsvdir=/usr/bin/runsvdir",
    ]
    result = DevicePlatform().process(out)
    assert result["platform"] == "linux" and result["is_root"] is True
    assert result["service_manager"] == "systemd" and result["android_version"] is None


def test_termux_detected_by_prefix_alone():
    result = DevicePlatform().process(["prefix=/data/data/com.termux/files/usr", "uid=10100"])
    # termux-services is what Termux supervises with, installed or not yet (packages come first).
    assert result["platform"] == "termux" and result["service_manager"] == "termux-services"


def test_compiler_info_process():
    out = [
        "path=/data/data/com.termux/files/usr/bin/clang",
        "cxx=/data/data/com.termux/files/usr/bin/clang++",
        "---version---",
        "clang version 17.0.6",
        "Target: aarch64-unknown-linux-android24",
    ]
    assert CompilerInfo().process(out) == {
        "family": "clang",
        "version": "17.0.6",
        "path": "/data/data/com.termux/files/usr/bin/clang",
        "cxx": "/data/data/com.termux/files/usr/bin/clang++",
    }
    assert CompilerInfo().process([]) is None
    assert CompilerInfo().process(["path=/usr/bin/tcc", "---version---", "tcc version 0.9.27"]) is None


def test_the_cpus_the_processes_may_use_are_read_with_nproc():
    """An Android app in the background cpuset, or a container, may use fewer CPUs than the
    SoC has; the plan keeps its threads within them (tests/unit/test_plan_*: threads_of)."""
    dump = (Path(__file__).resolve().parents[1] / "data/cpuinfo/google-tensor-g2.txt").read_text().splitlines()
    profile = CpuProfile().process([*dump, SEPARATOR, "aarch64", NPROC_SEPARATOR, "2"])
    assert (profile["big_cores"], profile["threads"], profile["usable_cpus"], profile["uname_m"]) == (4, 4, 2, "aarch64")
    # No uname (its line empty) and no nproc (Termux without coreutils): neither is mistaken for the other.
    profile = CpuProfile().process([*dump, SEPARATOR, NPROC_SEPARATOR, "8"])
    assert (profile["uname_m"], profile["usable_cpus"]) == (None, 8)
    assert CpuProfile().process([*dump, SEPARATOR, "aarch64", NPROC_SEPARATOR])["usable_cpus"] is None


def test_compiler_accepts_process():
    assert CompilerAccepts().process(["yes"]) is True
    assert CompilerAccepts().process(["no"]) is False
    assert CompilerAccepts().process(["missing"]) is None


# --- through pyinfra's local connector --------------------------------------------------


def test_local_cpu_profile_matches_parser(local_host):
    fact = local_host.get_fact(CpuProfile)
    usable = sorted(os.sched_getaffinity(0))
    expected = parse_cpuinfo(Path("/proc/cpuinfo").read_text(), os.uname().machine).to_dict()
    # The clocks and allowed CPUs read here by Python: {CPU list: kHz}, and the affinity as a list.
    clocks: dict[int, list[int]] = {}
    for path in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/cpuinfo_max_freq"):
        clocks.setdefault(int(path.read_text()), []).append(int(path.parent.parent.name[3:]))
    max_khz = {format_cpu_list(cpus): khz for khz, cpus in sorted(clocks.items())}
    assert fact == {**expected, "usable_cpus": len(usable), "cpu_max_khz": max_khz,
                    "allowed_cpus": format_cpu_list(usable)}
    assert parse_cpu_list(fact["allowed_cpus"]) == usable
    assert fact["logical_cpus"] == os.cpu_count() and fact["threads"] >= 1


def test_local_cpu_profile_reads_the_table_it_is_given(local_host, tmp_path):
    """pyinfra calls command() and process() on one fact instance: the table path gets through."""
    from llamafleet.cpu.table import CpuTableError

    table = tmp_path / "cpu.yaml"
    table.write_text("tune:\n  - {name: cortex-a76, gcc: 12, clang: 14}\n")
    assert local_host.get_fact(CpuProfile, cpu_table=str(table)) == local_host.get_fact(CpuProfile)
    with pytest.raises(CpuTableError, match="missing.yaml: no such file"):
        local_host.get_fact(CpuProfile, cpu_table=str(tmp_path / "missing.yaml"))


def test_local_meminfo_is_plausible(local_host):
    fact = local_host.get_fact(MemInfo)
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    assert abs(fact["total_mb"] - total_mb) <= 1
    assert 0 < fact["available_mb"] <= fact["total_mb"]


def test_local_device_platform(local_host):
    fact = local_host.get_fact(DevicePlatform)
    assert fact["platform"] == "linux" and fact["android_version"] is None
    assert fact["is_root"] is (os.geteuid() == 0)
    assert fact["has_systemd"] is Path("/run/systemd/system").is_dir()


def test_local_compiler_info(local_host):
    fact = local_host.get_fact(CompilerInfo)
    assert fact["family"] in ("gcc", "clang") and fact["path"].endswith("/cc")
    assert fact["version"][0].isdigit() and fact["cxx"]
    clang = local_host.get_fact(CompilerInfo, compiler="clang")
    assert clang["family"] == "clang" and clang["cxx"].endswith("clang++")
    assert local_host.get_fact(CompilerInfo, compiler="no-such-cc") is None


def test_local_compiler_accepts(local_host):
    assert local_host.get_fact(CompilerAccepts, flags=["-msse4.2"]) is True
    assert local_host.get_fact(CompilerAccepts, flags=["-mno-such-flag"]) is False
    assert (
        local_host.get_fact(
            CompilerAccepts, flags="-march=armv8.2-a+dotprod -mtune=cortex-a76", compiler="aarch64-linux-gnu-gcc"
        )
        is True
    )
    assert (
        local_host.get_fact(CompilerAccepts, flags=["-march=armv8.2-a+nosuch"], compiler="aarch64-linux-gnu-gcc")
        is False
    )
    assert local_host.get_fact(CompilerAccepts, flags=["-O2"], compiler="no-such-cc") is None


def test_local_flags_probe_end_to_end(local_host):
    """What the deploy does: facts in, probed flags out; this machine's gcc takes its rung."""
    profile = local_host.get_fact(CpuProfile)
    flags = build_flags(profile, local_host.get_fact(CompilerInfo), accepts=compiler_accepts(local_host))
    assert flags.fallback is None and flags.march == profile["march"]
    refusing_cc = compiler_accepts(local_host, compiler="no-such-cc")
    assert refusing_cc(["-O2"]) is False


# --- the probes' shell scripts, Termux simulated ----------------------------------------


def test_device_probe_under_simulated_termux(tmp_path):
    """Runs DevicePlatform's real probe with the environment the Termux app gives a shell.

    Simulated: `getprop` stands for Android's property tool (prints the release for
    ro.build.version.release) and `sv-enable` for the helper of Termux's termux-services
    package; PREFIX/TERMUX_VERSION/HOME are what the Termux app exports."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    getprop = bin_dir / "getprop"
    getprop.write_text('#!/bin/sh\n[ "$1" = ro.build.version.release ] && echo 14\n')
    (bin_dir / "sv-enable").write_text("#!/bin/sh\nexit 0\n")
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PREFIX": "/data/data/com.termux/files/usr",
        "TERMUX_VERSION": "0.118.1",
        "HOME": str(tmp_path),
    }
    out = subprocess.run(["sh", "-c", PROBE], env=env, capture_output=True, text=True, check=True).stdout
    result = DevicePlatform().process(out.splitlines())
    assert result["platform"] == "termux" and result["android_version"] == "14"
    assert result["service_manager"] == "termux-services" and result["home"] == str(tmp_path)


def test_compiler_accepts_runs_in_tmpdir(tmp_path):
    """Termux has no /tmp: the probe must work from $TMPDIR. An unwritable cwd would make the
    compiler fail to create its temporaries."""
    command = CompilerAccepts().command(["-O2"], compiler="gcc")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run(["sh", "-c", str(command.get_raw_value())], env=env, capture_output=True, text=True, cwd="/")
    assert out.stdout.strip() == "yes"
    env["TMPDIR"] = str(tmp_path / "does-not-exist")
    out = subprocess.run(["sh", "-c", str(command.get_raw_value())], env=env, capture_output=True, text=True)
    assert out.stdout.strip() in ("yes", "no")  # never an error: facts do not fail
