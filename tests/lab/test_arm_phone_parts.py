"""The ARM phone's pieces without a lab: the SoC dumps, the qemu CPU model chosen for each, the
sysfs CPU tree, the topology's checks and `lab up --soc`."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from llamafleet.cpu.profile import parse_cpuinfo
from llamafleet.cpu.table import table_for
from llamafleet_lab import arm_phone, qemu_user
from llamafleet_lab import cli as lab_cli
from llamafleet_lab.topology import plan_hosts

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


DUMPS = {"google-tensor-g2": "google-tensor-g2.txt", "snapdragon-888": "snapdragon-888-oneplus-9-pro.txt",
         "snapdragon-s4-pro": "nexus-4-krait-armv7.txt"}


def test_every_soc_is_one_of_the_real_dumps():
    assert set(arm_phone.SOCS) == set(DUMPS)
    for soc, dump in DUMPS.items():
        assert arm_phone.dump_text(soc) == (REPO / "tests/data/cpuinfo" / dump).read_text()


def test_the_armv7_phone_is_a_32_bit_device_with_neon_and_vfpv4():
    text = arm_phone.dump_text("snapdragon-s4-pro")
    profile = parse_cpuinfo(text, "armv7l", table_for(None))
    assert profile.arch == "armv7l" and {"neon", "vfpv4"} <= set(profile.features)
    assert arm_phone.machine_of("snapdragon-s4-pro").uname == "armv7l"
    assert arm_phone.qemu_model(arm_phone.features(text), "armv7l")[0] == "cortex-a15"


@pytest.mark.parametrize("soc", ["google-tensor-g2", "snapdragon-888"])
def test_each_aarch64_soc_is_read_by_the_product_with_big_and_little_cores(soc):
    text = arm_phone.dump_text(soc)
    profile = parse_cpuinfo(text, "aarch64", table_for(None))
    assert profile.arch == "aarch64" and profile.logical_cpus == 8
    assert {"dotprod", "fp16"} <= set(profile.features) and "i8mm" not in profile.features
    # Every core type of the dump has a clock, and the big ones are faster.
    parts = {block["CPU part"] for block in arm_phone.processors(text)}
    assert parts == set(arm_phone.SOCS[soc].max_khz)
    assert arm_phone.SOCS[soc].max_khz["0xd44"] > arm_phone.SOCS[soc].max_khz["0xd05"]


@pytest.mark.parametrize("features, model", [
    ({"asimd", "asimddp", "asimdhp", "atomics"}, "cortex-a76"),
    ({"asimd", "asimddp", "asimdhp", "i8mm", "bf16"}, "max"),
    ({"asimd", "crc32"}, "cortex-a53"),
])
def test_the_qemu_model_has_no_feature_the_dump_lacks_where_one_exists(features, model):
    assert arm_phone.qemu_model(features)[0] == model


def test_the_sysfs_tree_has_one_cpu_per_processor_with_its_cluster_clock(tmp_path):
    text = arm_phone.dump_text("snapdragon-888")
    (tmp_path / "fs").mkdir()
    mounts = arm_phone.phone_files("snapdragon-888", tmp_path, tmp_path / "system")
    tree = tmp_path / "fs" / "sys-cpu"
    assert (tree / "online").read_text() == "0-7\n"
    clocks = [int((tree / f"cpu{i}/cpufreq/cpuinfo_max_freq").read_text()) for i in range(8)]
    assert clocks == [1804800] * 4 + [2419200] * 3 + [2841600]
    assert (tree / "cpu5/cpufreq/related_cpus").read_text() == "4 5 6\n"
    assert (tmp_path / "fs" / "cpuinfo").read_text() == text
    assert (tmp_path / "system/etc/llamafleet-lab/qemu-cpu").read_text() == "cortex-a76\n"
    assert {mount["target"] for mount in mounts} == {"/proc/cpuinfo", "/sys/devices/system/cpu", "/etc/ld.so.preload"}


def test_socs_are_checked_before_anything_is_built():
    hosts = plan_hosts(2, 1, socs={"phone2": "google-tensor-g2"})
    assert [host.soc for host in hosts if host.is_phone] == ["", "google-tensor-g2"]
    with pytest.raises(ValueError, match="no phone phone3"):
        plan_hosts(2, 1, socs={"phone3": "google-tensor-g2"})
    with pytest.raises(ValueError, match="unknown SoC 'exynos'"):
        plan_hosts(2, 1, socs={"phone1": "exynos"})


@pytest.mark.parametrize("argv, socs", [
    ([], {"phone2": "google-tensor-g2"}),
    (["--phones", "1"], {}),
    (["--soc", "none"], {}),
    (["--soc", "phone1=snapdragon-888"], {"phone1": "snapdragon-888"}),
])
def test_the_default_lab_has_one_arm_phone(argv, socs):
    parser = argparse.ArgumentParser()
    lab_cli.register(parser.add_subparsers())
    args = parser.parse_args(["lab", "up", *argv])
    assert lab_cli._socs(args) == socs


def test_the_uname_library_rewrites_the_machine_for_any_dynamically_linked_program(tmp_path):
    """The library the ARM phone preloads, built as `lab up` builds it, in a program of this
    machine (the phone's preload file names it the same way, through $PLATFORM)."""
    library = tmp_path / "uname.so"
    subprocess.run(["clang", "-O2", "-shared", "-fPIC", '-DMACHINE="aarch64"', "-x", "c", "-", "-o", str(library)],
                   input=qemu_user._UNAME_SHIM, text=True, check=True)
    for argv in (["uname", "-m"], ["python3", "-c", "import platform; print(platform.machine())"]):
        out = subprocess.run(argv, env={"LD_PRELOAD": str(library), "PATH": "/usr/bin:/bin"}, capture_output=True,
                             text=True, check=True).stdout
        assert out.strip() == "aarch64", argv
    assert subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip() == "x86_64"
