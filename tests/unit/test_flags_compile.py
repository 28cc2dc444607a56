"""The chosen flags against real compilers.

Needs (Debian 12; CI installs them): gcc, clang (`apt-get install -y clang`), and the cross
compilers `gcc-aarch64-linux-gnu` and `gcc-arm-linux-gnueabihf`. Tests that need a cross
compiler say so in their name (`test_cross_...`). A missing compiler fails the test with the
package to install; nothing here is skipped.

Each check compiles a small C file with exactly the flags ggml's CPU code would get and reads
the ACLE / x86 feature macros the compiler then defines: the macros must match what the
device's Features line reports, no more (SIGILL) and no less (slow kernels).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from llamafleet.cpu.compilers import TUNE_SUPPORT, knows_tune, parse_version_output
from llamafleet.cpu.flags import build_flags
from llamafleet.cpu.profile import parse_cpuinfo

DATA = Path(__file__).resolve().parents[1] / "data" / "cpuinfo"
MANIFEST = json.loads((DATA / "MANIFEST.json").read_text())["files"]

# (apt package, argv prefix) per target and compiler family.
TOOLCHAINS = {
    ("aarch64", "gcc"): ("gcc-aarch64-linux-gnu", ["aarch64-linux-gnu-gcc"]),
    ("aarch64", "clang"): ("clang", ["clang", "--target=aarch64-linux-gnu"]),
    ("aarch64-android", "clang"): ("clang", ["clang", "--target=aarch64-linux-android24"]),
    ("armv7l", "gcc"): ("gcc-arm-linux-gnueabihf", ["arm-linux-gnueabihf-gcc"]),
    ("armv7l", "clang"): ("clang", ["clang", "--target=armv7a-linux-gnueabihf"]),
    ("armv7l-android", "clang"): ("clang", ["clang", "--target=armv7a-linux-androideabi24"]),
    ("x86_64", "gcc"): ("gcc", ["gcc"]),
    ("x86_64", "clang"): ("clang", ["clang"]),
}

ARM_MACROS = {
    "dotprod": "__ARM_FEATURE_DOTPROD",
    "fp16": "__ARM_FEATURE_FP16_VECTOR_ARITHMETIC",
    "i8mm": "__ARM_FEATURE_MATMUL_INT8",
    "bf16": "__ARM_FEATURE_BF16_VECTOR_ARITHMETIC",
    "sve": "__ARM_FEATURE_SVE",
    "sve2": "__ARM_FEATURE_SVE2",
}
X86_MACROS = {
    "avx2": "__AVX2__",
    "avx512f": "__AVX512F__",
    "avx512_vnni": "__AVX512VNNI__",
    "avx512_bf16": "__AVX512BF16__",
    "f16c": "__F16C__",
    "fma": "__FMA__",
}

TINY_C = "float scale(float *v, int n) { float s = 0; for (int i = 0; i < n; i++) s += v[i] * 2.0f; return s; }\n"


def toolchain(target: str, family: str) -> list[str]:
    package, argv = TOOLCHAINS[(target, family)]
    if not shutil.which(argv[0]):
        pytest.fail(f"{argv[0]} not installed: apt-get install -y {package}")
    return argv


def compiler_identity(argv: list[str]) -> dict:
    out = subprocess.run([argv[0], "--version"], capture_output=True, text=True, check=True).stdout
    identity = parse_version_output(out)
    assert identity, out
    return identity


def accepts_with(argv: list[str], tmp_path: Path):
    def accepts(flags: list[str]) -> bool:
        return (
            subprocess.run(
                [*argv, *flags, "-c", "-x", "c", "/dev/null", "-o", "/dev/null"], cwd=tmp_path, capture_output=True
            ).returncode
            == 0
        )

    return accepts


def compile_and_read_macros(argv: list[str], flags: list[str], tmp_path: Path) -> set[str]:
    """Compile TINY_C for real (-O2 -c), then return the predefined macro names."""
    source = tmp_path / "tiny.c"
    source.write_text(TINY_C)
    built = subprocess.run(
        [*argv, *flags, "-O2", "-c", str(source), "-o", str(tmp_path / "tiny.o")], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    macros = subprocess.run(
        [*argv, *flags, "-E", "-dM", "-x", "c", "/dev/null"], capture_output=True, text=True, check=True
    ).stdout
    return {line.split()[1] for line in macros.splitlines() if line.startswith("#define ")}


def dumps_for(arch: str) -> list[str]:
    return sorted(n for n, e in MANIFEST.items() if e["expected_arch"] == arch)


def check_dump(name: str, target: str, family: str, platform: str, tmp_path: Path) -> None:
    argv = toolchain(target, family)
    entry = MANIFEST[name]
    profile = parse_cpuinfo((DATA / name).read_text(), entry["expected_uname_m"])
    flags = build_flags(profile, compiler_identity(argv), platform=platform, accepts=accepts_with(argv, tmp_path))
    # The best rung and the table's tune must both be accepted as they are.
    assert flags.fallback is None and flags.warnings == [], flags
    macros = compile_and_read_macros(argv, flags.compile_flags, tmp_path)
    features = {**entry["features"], **entry["features_extra"]}
    if profile.arch == "x86_64":
        for feature, macro in X86_MACROS.items():
            assert (macro in macros) is (feature in profile.features), f"{name}: {macro}"
        return
    assert "__ARM_NEON" in macros, f"{name}: NEON must be on"
    for feature, macro in ARM_MACROS.items():
        assert (macro in macros) is features[feature], f"{name} with {argv}: {macro}"


@pytest.mark.parametrize("family", ["gcc", "clang"])
@pytest.mark.parametrize("name", dumps_for("x86_64"))
def test_x86_dump_flags_build_on_this_machine(name, family, tmp_path):
    check_dump(name, "x86_64", family, "linux", tmp_path)


@pytest.mark.parametrize("family", ["gcc", "clang"])
@pytest.mark.parametrize("name", dumps_for("aarch64"))
def test_cross_aarch64_dump_flags_compile(name, family, tmp_path):
    check_dump(name, "aarch64", family, "linux", tmp_path)


@pytest.mark.parametrize("name", dumps_for("aarch64"))
def test_cross_aarch64_android_clang_compiles(name, tmp_path):
    """Termux builds with clang for aarch64-linux-android."""
    check_dump(name, "aarch64-android", "clang", "termux", tmp_path)


@pytest.mark.parametrize("family", ["gcc", "clang"])
@pytest.mark.parametrize("name", dumps_for("armv7l"))
def test_cross_armv7_dump_flags_compile(name, family, tmp_path):
    check_dump(name, "armv7l", family, "linux", tmp_path)


@pytest.mark.parametrize("name", dumps_for("armv7l"))
def test_cross_armv7_android_clang_compiles_with_softfp(name, tmp_path):
    check_dump(name, "armv7l-android", "clang", "termux", tmp_path)


def test_cross_real_gcc12_refuses_sme_and_the_ladder_steps_down(tmp_path):
    """A device with SME (Features: sme) on GCC 12, which knows neither armv9.2-a nor +sme."""
    features = "fp asimd atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp i8mm bf16 sve sve2 sme"
    text = "".join(
        f"processor\t: {i}\nFeatures\t: {features}\nCPU implementer\t: 0x41\nCPU part\t: 0xd81\n\n" for i in range(2)
    )
    argv = toolchain("aarch64", "gcc")
    identity = compiler_identity(argv)
    assert identity["version"].startswith("12."), "this test documents GCC 12's refusal"
    flags = build_flags(parse_cpuinfo(text, "aarch64"), identity, accepts=accepts_with(argv, tmp_path))
    assert flags.march == "armv9-a+dotprod+fp16+i8mm+bf16+sve+sve2"
    assert "armv9.2-a+dotprod+fp16+i8mm+bf16+sve+sve2+sme" in flags.fallback and "dropped: sme" in flags.fallback
    # cortex-a720 needs GCC 14: the table never offers it, cortex-a710 is its substitute.
    assert flags.mcpu == "cortex-a710"


AARCH64_TUNES = [
    name for name in TUNE_SUPPORT if name not in ("cortex-a7", "cortex-a9", "cortex-a15", "cortex-a17", "krait")
]
ARM32_TUNES = ["cortex-a7", "cortex-a9", "cortex-a15", "cortex-a17", "krait", "cortex-a53", "cortex-a75", "cortex-a76"]


@pytest.mark.parametrize("family", ["gcc", "clang"])
def test_cross_tune_table_matches_the_installed_aarch64_compilers(family, tmp_path):
    """Every name the table claims for this compiler version is accepted, and every name it
    denies is refused (so the table neither breaks builds nor gives up tuning needlessly)."""
    argv = toolchain("aarch64", family)
    identity = compiler_identity(argv)
    accepts = accepts_with(argv, tmp_path)
    wrong = [
        name for name in AARCH64_TUNES if knows_tune(name, identity) != accepts(["-march=armv8-a", f"-mtune={name}"])
    ]
    assert not wrong, f"{identity}: table disagrees on {wrong}"


@pytest.mark.parametrize("family", ["gcc", "clang"])
def test_cross_tune_table_matches_the_installed_armv7_compilers(family, tmp_path):
    argv = toolchain("armv7l", family)
    identity = compiler_identity(argv)
    accepts = accepts_with(argv, tmp_path)
    base = ["-march=armv7-a", "-mfpu=neon-vfpv4"]
    wrong = [name for name in ARM32_TUNES if knows_tune(name, identity) != accepts([*base, f"-mtune={name}"])]
    assert not wrong, f"{identity}: table disagrees on {wrong}"
