"""A lab phone that is an ARM device of a real SoC, as far as every program on it can tell.

`lab up --soc phone2=google-tensor-g2` makes phone2 such a device (SOCS: two aarch64 phones and
a 32-bit armv7 one). Stands for:
- **/proc/cpuinfo** of the real SoC: the dump in socs/ (from hrw/arm-socs-table, see
  SOCS), bind-mounted over the phone's own procfs file.
- **uname(2) says aarch64** (or armv7l): the phone's userland is the machine's x86_64 programs (sh, cmake,
  python, coreutils), so /etc/ld.so.preload in the phone's mount namespace loads a small library
  that rewrites the machine field of uname() in every dynamically linked program; `uname -m`,
  CMake's CMAKE_SYSTEM_PROCESSOR and Python's platform.machine() all read it. Programs built for
  the phone run under qemu-user, which reports aarch64 itself.
- **sysfs CPUs and cpufreq** (/sys/devices/system/cpu: online, cpuN/cpufreq/cpuinfo_max_freq,
  topology): the SoC's CPUs with the clocks its vendor publishes, so big and little cores differ
  as on the real phone (kernel ABI: Documentation/ABI/testing/sysfs-devices-system-cpu).
- **an ARM CPU that runs what the phone builds**: aarch64 (ARM) ELF files are handed by binfmt_misc
  (kernel Documentation/admin-guide/binfmt-misc.rst) to Debian's qemu-aarch64-static (qemu-arm-static) with the
  CPU model closest to the dump that has no feature the dump lacks (qemu_model), so an
  instruction the SoC lacks dies with SIGILL as on the phone. Debian's arm64 (armel: the
  soft-float ABI that Termux's softfp armeabi-v7a code links with) cross libc stands for
  Android's bionic (MACHINES).
- **Termux's clang builds for the phone**: the lab's `clang` stand-in (bin/clang) adds
  `--target` for the machine uname reports; Termux's clang targets its own device by default.

What stays the machine's: the kernel, the number of CPUs that really run (the phone's cpuset
holds the machine's CPUs), and x86_64 programs other than the phone's builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llamafleet_lab.qemu_user import MACHINES, PHONE_QEMU_CPU_FILE, PRELOAD_FILE, Machine, preload_line
from llamafleet_lab import qemu_user

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Soc:
    dump: str  # file in socs/
    source: str  # where the dump was published
    machine: str  # key of MACHINES
    # CPU part (MIDR) → max clock in kHz, as the vendor publishes it (cpuinfo_max_freq).
    max_khz: dict[str, int]


SOCS: dict[str, Soc] = {
    # Pixel 7: 2× Cortex-X1 2.85 GHz, 2× Cortex-A78 2.35 GHz, 4× Cortex-A55 1.8 GHz.
    "google-tensor-g2": Soc(
        "google-tensor-g2.txt",
        "https://github.com/hrw/arm-socs-table/blob/9301c7116c1aaec29e8f1907daea48de94304dbc/cpuinfo-data/Google-Tensor-G2.cpuinfo",
        "aarch64",
        {"0xd44": 2850000, "0xd41": 2348000, "0xd05": 1803000},
    ),
    # OnePlus 9 Pro: 1× Cortex-X1 2.84 GHz, 3× Cortex-A78 2.42 GHz, 4× Cortex-A55 1.8 GHz.
    "snapdragon-888": Soc(
        "snapdragon-888.txt",
        "https://github.com/hrw/arm-socs-table/blob/b6df2b71aab46ac0c572c51e37d703c4ffdfe03a/cpuinfo-data/oneplus-9pro",
        "aarch64",
        {"0xd44": 2841600, "0xd41": 2419200, "0xd05": 1804800},
    ),
    # Nexus 4 (APQ8064): 4× Krait 1.5 GHz, ARMv7 with NEON and VFPv4, a 32-bit phone.
    "snapdragon-s4-pro": Soc(
        "snapdragon-s4-pro.txt",
        "https://github.com/pytorch/cpuinfo/blob/079ccbd263a842e3d3d8266c01404cf49dd43475/test/cpuinfo/nexus4.log",
        "armv7l",
        {"0x06f": 1512000},
    ),
}
DEFAULT_SOC = "google-tensor-g2"


class SocError(ValueError):
    pass


def soc(name: str) -> Soc:
    if name not in SOCS:
        raise SocError(f"unknown SoC {name!r}: one of {', '.join(sorted(SOCS))}")
    return SOCS[name]


def machine_of(name: str) -> Machine:
    return MACHINES[soc(name).machine]


def dump_text(name: str) -> str:
    return (HERE / "socs" / soc(name).dump).read_text()


def processors(text: str) -> list[dict[str, str]]:
    """The dump's per-processor blocks as {field: value}."""
    blocks, current = [], {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "processor" and current:
            blocks.append(current)
            current = {}
        current[key] = value
    if current.get("processor") is not None:
        blocks.append(current)
    return [block for block in blocks if "processor" in block]


def features(text: str) -> set[str]:
    """Features every processor of the dump reports (the kernel shows the common set)."""
    # Old kernels print one Features line after all the processors (the Nexus 4's).
    sets = [set(block["Features"].split()) for block in processors(text) if "Features" in block]
    return set.intersection(*sets) if sets else set()


def qemu_model(dump_features: set[str], machine: str = "aarch64") -> tuple[str, str]:
    """The qemu 7.2 CPU model for a dump, and why. qemu-aarch64's models: cortex-a35/a53/a57/
    a72/a76, neoverse-n1, a64fx, max; qemu-arm's: cortex-a7/a8/a9/a15 and more. The closest
    that has nothing the dump lacks, so a build that over-reaches dies as on the phone."""
    if machine == "armv7l":
        if {"neon", "vfpv4"} <= dump_features:
            return "cortex-a15", "ARMv7 with NEON and VFPv4 (and integer divide, which Krait has too)"
        if "neon" in dump_features:
            return "cortex-a9", "ARMv7 with NEON, VFPv3 (qemu lets VFPv4's fused NEON through on it)"
        return "cortex-a7", "ARMv7"
    if dump_features & {"i8mm", "sve", "sve2", "bf16"}:
        return "max", "the dump has ARMv8.6+/SVE features no named qemu 7.2 model has: max (which has more)"
    if {"asimddp", "asimdhp"} <= dump_features:
        return "cortex-a76", "ARMv8.2 with dotprod and fp16, no i8mm, bf16 or SVE, as the dump"
    if "atomics" in dump_features:
        return "cortex-a76", "ARMv8.2 (no qemu model has v8.2 without dotprod: dotprod is extra)"
    return "cortex-a53", "ARMv8.0"


# --- the phone's files ---------------------------------------------------------------------


def _sys_cpu_tree(root: Path, blocks: list[dict[str, str]], chosen: Soc) -> None:
    """/sys/devices/system/cpu for the SoC: one cpuN per processor, clusters by CPU part."""
    count = len(blocks)
    root.mkdir(parents=True)
    for name in ("online", "possible", "present"):
        (root / name).write_text(f"0-{count - 1}\n")
    (root / "offline").write_text("\n")
    (root / "kernel_max").write_text(f"{count - 1}\n")
    parts = list(dict.fromkeys(block.get("CPU part", "") for block in blocks))
    for index, block in enumerate(blocks):
        part = block.get("CPU part", "")
        siblings = [str(i) for i, other in enumerate(blocks) if other.get("CPU part", "") == part]
        cpu = root / f"cpu{index}"
        freq = cpu / "cpufreq"
        freq.mkdir(parents=True)
        khz = chosen.max_khz.get(part, min(chosen.max_khz.values()))
        for name, value in (("cpuinfo_max_freq", khz), ("scaling_max_freq", khz), ("scaling_cur_freq", khz),
                            ("cpuinfo_min_freq", 300000), ("scaling_min_freq", 300000)):
            (freq / name).write_text(f"{value}\n")
        (freq / "related_cpus").write_text(" ".join(siblings) + "\n")
        (freq / "affected_cpus").write_text(" ".join(siblings) + "\n")
        topology = cpu / "topology"
        topology.mkdir()
        for name, value in (("physical_package_id", 0), ("cluster_id", parts.index(part)), ("core_id", index)):
            (topology / name).write_text(f"{value}\n")
        (cpu / "online").write_text("1\n")


def phone_files(soc_name: str, host_dir: Path, system_root: Path) -> list[dict]:
    """Write an ARM phone's files below its host dir and /system; return its extra mounts."""
    text = dump_text(soc_name)
    machine = machine_of(soc_name)
    model, _why = qemu_model(features(text), machine.uname)
    cpuinfo = host_dir / "fs" / "cpuinfo"
    cpuinfo.write_text(text)
    cpuinfo.chmod(0o444)
    sys_cpu = host_dir / "fs" / "sys-cpu"
    _sys_cpu_tree(sys_cpu, processors(text), soc(soc_name))
    preload = host_dir / "fs" / "ld.so.preload"
    preload.write_text(preload_line(machine) + "\n")
    preload.chmod(0o644)
    qemu_cpu = system_root / PHONE_QEMU_CPU_FILE.removeprefix("/system/")
    qemu_cpu.parent.mkdir(parents=True, exist_ok=True)
    qemu_cpu.write_text(model + "\n")
    for path in (qemu_cpu.parent, qemu_cpu):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return [
        {"type": "bind", "source": str(cpuinfo), "target": "/proc/cpuinfo"},
        {"type": "bind", "source": str(sys_cpu), "target": "/sys/devices/system/cpu"},
        {"type": "bind", "source": str(preload), "target": PRELOAD_FILE},
    ]


# --- machine-wide pieces (llamafleet_lab.qemu_user) -----------------------------------------


def missing_programs(socs: dict[str, str]) -> list[str]:
    return qemu_user.missing_programs({machine_of(name) for name in socs.values()})


def install_machine_pieces(socs: dict[str, str]) -> None:
    qemu_user.install_machine_pieces({machine_of(name) for name in socs.values()})


remove_machine_pieces = qemu_user.remove_machine_pieces
