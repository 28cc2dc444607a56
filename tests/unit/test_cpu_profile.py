"""parse_cpuinfo against every real dump in tests/data/cpuinfo (driven by MANIFEST.json), plus
synthetic dumps for the traps no real dump here shows (VMs, little-only boards, odd formats)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamafleet.cpu.midr import MIDR_TABLE, lookup
from llamafleet.cpu.profile import CpuProfile, parse_cpuinfo

DATA = Path(__file__).resolve().parents[1] / "data" / "cpuinfo"
MANIFEST = json.loads((DATA / "MANIFEST.json").read_text())["files"]
EXPECTED = json.loads((DATA / "EXPECTED.json").read_text())["files"]

# Manifest feature keys → llamafleet's normalised names (where they differ).
MANIFEST_NAMES = {"asimdfhm": "fhm"}
# Little in-order cores by the names the manifest uses (its ARM equivalents included).
LITTLE = {"cortex-a53", "cortex-a55", "cortex-a510", "cortex-a520", "cortex-a7", "cortex-a35"}


def profile_of(name: str) -> CpuProfile:
    entry = MANIFEST[name]
    return parse_cpuinfo((DATA / name).read_text(), entry["expected_uname_m"])


def test_every_dump_is_listed_in_the_manifest_and_expectations():
    dumps = {p.name for p in DATA.glob("*.txt")}
    assert dumps == set(MANIFEST) == set(EXPECTED)
    assert len(dumps) >= 14


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_arch_and_cpu_count(name):
    profile = profile_of(name)
    assert profile.arch == MANIFEST[name]["expected_arch"]
    assert profile.logical_cpus == MANIFEST[name]["logical_cpus"]


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_core_names_and_counts(name):
    entry = MANIFEST[name]
    profile = profile_of(name)
    assert profile.cores == entry["core_types"]
    assert profile.core_equivalents == entry["core_types_arm_equivalent"]
    # The MIDR pairs the manifest lists map to the same names in our table.
    for midr in entry["core_types_midr"]:
        core = lookup(int(midr["implementer"], 16), int(midr["part"], 16))
        assert core.name == midr["name"]


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_features_match_manifest(name):
    entry = MANIFEST[name]
    features = set(profile_of(name).features)
    for key, present in {**entry["features"], **entry["features_extra"]}.items():
        assert (MANIFEST_NAMES.get(key, key) in features) is present, f"{name}: {key} should be {present}"
    assert profile_of(name).features == sorted(features)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_big_cores_and_threads(name):
    entry = MANIFEST[name]
    profile = profile_of(name)
    assert profile.big_cores == EXPECTED[name]["big_cores"]
    assert profile.threads == profile.big_cores >= 1
    if entry["core_types"]:
        # Independent check from the manifest's names: every core that is not little.
        def arm_name(core):
            return entry["core_types_arm_equivalent"].get(core, core)

        big = sum(n for core, n in entry["core_types"].items() if arm_name(core) not in LITTLE)
        assert profile.big_cores == (big or entry["logical_cpus"])


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_march_is_the_ladders_best_rung(name):
    assert profile_of(name).march == EXPECTED[name]["march"]


def test_to_dict_round_trip_and_json_safe():
    profile = profile_of("exynos-990-galaxy-s20-ultra.txt")
    data = json.loads(json.dumps(profile.to_dict()))
    assert CpuProfile.from_dict(data) == profile
    assert {"arch", "cores", "features", "big_cores", "threads", "logical_cpus", "march", "mcpu"} <= set(data)
    assert CpuProfile.from_dict({**data, "added_later": 1}) == profile


def test_32bit_view_is_armv7_whatever_the_header_says():
    """The Galaxy S9 dump says 'AArch64 Processor' and 'CPU architecture: 8', uname armv8l:
    the process is 32-bit, so no AArch64 feature may appear."""
    text = (DATA / "snapdragon-845-galaxy-s9-us-32bit-process-view.txt").read_text()
    for uname in ("armv8l", None, "aarch64"):
        profile = parse_cpuinfo(text, uname)
        assert profile.arch == "armv7l"
        assert "asimd" not in profile.features and "neon" in profile.features


def test_tune_prefers_the_most_numerous_big_core():
    assert profile_of("snapdragon-888-oneplus-9-pro.txt").mcpu == "cortex-a78"  # 3x A78 vs 1x X1
    assert profile_of("snapdragon-855plus-realme-x3-superzoom.txt").mcpu == "cortex-a76"  # Kryo 4XX Gold
    assert profile_of("exynos-990-galaxy-s20-ultra.txt").tune_candidates == ["exynos-m5", "cortex-a76"]


# --- synthetic dumps -------------------------------------------------------------------


def arm_dump(parts: list[tuple[int, int]], features: str, blank: str = "\n") -> str:
    """A modern arm64 /proc/cpuinfo with one block per (implementer, part)."""
    blocks = []
    for index, (implementer, part) in enumerate(parts):
        blocks.append(
            f"processor\t: {index}\nBogoMIPS\t: 48.00\nFeatures\t: {features}\n"
            f"CPU implementer\t: {implementer:#04x}\nCPU architecture: 8\nCPU variant\t: 0x0\n"
            f"CPU part\t: {part:#05x}\nCPU revision\t: 0\n"
        )
    return blank.join(blocks)


V82 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"


@pytest.mark.parametrize("implementer", [0x61, 0x00])
def test_virtual_machine_cores_are_unknown_and_big(implementer):
    """Linux guests on Apple silicon report 0x61/0x000 (util-linux: 'Swift') or 0x00/0x000 on
    every CPU. No name, all big, ISA from Features."""
    profile = parse_cpuinfo(arm_dump([(implementer, 0x000)] * 4, V82 + " i8mm bf16"), "aarch64")
    assert list(profile.cores) == [f"unknown-{implementer:#04x}-0x000"]
    assert profile.big_cores == 4 and profile.mcpu is None
    assert profile.march == "armv8.6-a+dotprod+fp16+i8mm+bf16"


def test_little_only_board_uses_every_core():
    """Raspberry Pi 3: four Cortex-A53, all little: a device must still get all its cores."""
    profile = parse_cpuinfo(arm_dump([(0x41, 0xD03)] * 4, "fp asimd evtstrm crc32 cpuid"), "aarch64")
    assert profile.cores == {"cortex-a53": 4}
    assert profile.big_cores == profile.threads == 4
    assert profile.march == "armv8-a+crc"


def test_hisilicon_d40_is_not_neoverse_v1():
    assert lookup(0x48, 0xD40).name == "hisilicon-cortex-a76"
    assert lookup(0x41, 0xD40).name == "neoverse-v1"
    assert lookup(0x51, 0x001).name != lookup(0x46, 0x001).name


def test_unknown_part_counts_as_big():
    profile = parse_cpuinfo(arm_dump([(0x41, 0xD05)] * 2 + [(0x48, 0xD42)] * 2, V82), "aarch64")
    assert profile.cores == {"cortex-a55": 2, "unknown-0x48-0xd42": 2}
    assert profile.big_cores == 2


def test_sve_only_when_every_cpu_reports_it():
    """Features are intersected over CPUs: a thread may land on any of them."""
    text = (
        arm_dump([(0x41, 0xD46)], V82 + " sve sve2 i8mm bf16")
        + "\n"
        + arm_dump([(0x41, 0xD47)], V82 + " i8mm bf16").replace("processor\t: 0", "processor\t: 1")
    )
    profile = parse_cpuinfo(text, "aarch64")
    assert profile.logical_cpus == 2
    assert "sve" not in profile.features and "i8mm" in profile.features


def test_windows_line_endings_and_no_blank_lines():
    crlf = arm_dump([(0x41, 0xD0B)] * 2, V82).replace("\n", "\r\n")
    assert parse_cpuinfo(crlf).cores == {"cortex-a76": 2}
    packed = arm_dump([(0x41, 0xD0B)] * 2, V82, blank="")
    assert parse_cpuinfo(packed).cores == {"cortex-a76": 2}


def test_old_single_block_format_shares_the_trailing_block():
    profile = profile_of("nexus-4-krait-armv7.txt")
    assert profile.cores == {"krait": 4} and {"neon", "vfpv4"} <= set(profile.features)


def test_x86_without_topology_counts_logical_cpus():
    text = "\n".join(
        f"processor\t: {i}\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 pni ssse3 sse4_1 sse4_2 popcnt cx16 lahf_lm\n"
        for i in range(3)
    )
    profile = parse_cpuinfo(text, "x86_64")
    assert profile.arch == "x86_64" and profile.big_cores == 3
    assert profile.march == "x86-64-v2" and "sse3" in profile.features


@pytest.mark.parametrize("text", ["", "garbage without colons\n"])
def test_unreadable_cpuinfo_falls_back_to_uname_and_one_thread(text):
    profile = parse_cpuinfo(text, "aarch64")
    assert profile.arch == "aarch64" and profile.threads == 1 and profile.cores == {}
    assert parse_cpuinfo(text).arch == "unknown"


def test_table_uses_gcc_spelling():
    for core in MIDR_TABLE.values():
        assert core.name == core.name.lower() and " " not in core.name
        assert core.tune is None or core.tune == core.tune.lower()
