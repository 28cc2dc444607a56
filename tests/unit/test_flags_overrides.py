"""Group-data overrides of the flag table, written out flag by flag from the rules they follow.

The rules (llamafleet/cpu/arm32.py's docstring, GCC's and clang's ARM options):
- on 32-bit ARM, NEON is switched on only by `-mfpu` (ggml's CMake has no option for it), and the
  float ABI must match the system's libraries: `hard` on Linux armhf, `softfp` on Android;
- `llama_cpu_arch` replaces the -march, never the FPU or the ABI: a Raspberry Pi 2 (Features:
  neon vfpv4) keeps `-mfpu=neon-vfpv4`;
- CMAKE_C_FLAGS and CMAKE_CXX_FLAGS carry the same flags (ggml has C and C++ kernels).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from llamafleet.cpu.flags import FlagsError, build_flags
from llamafleet.cpu.profile import parse_cpuinfo

DATA = Path(__file__).resolve().parents[1] / "data" / "cpuinfo"
MANIFEST = json.loads((DATA / "MANIFEST.json").read_text())["files"]


def profile_of(name: str):
    return parse_cpuinfo((DATA / name).read_text(), MANIFEST[name]["expected_uname_m"])


PI2 = "raspberry-pi-2-armv7.txt"  # Cortex-A7, Features: ... neon vfpv4 ...


# --- (b) an armv7 llama_cpu_arch override keeps -mfpu and -mfloat-abi --------------------------


@pytest.mark.parametrize("platform, abi", [("termux", "softfp"), ("linux", "hard")])
def test_armv7_arch_override_keeps_the_fpu_and_the_float_abi(platform, abi):
    flags = build_flags(profile_of(PI2), None, platform=platform, llama_cpu_arch="armv7-a")
    assert flags.march == "armv7-a"
    assert flags.cmake_args == [
        "-DGGML_NATIVE=OFF",
        "-DGGML_CPU_ARM_ARCH=armv7-a",
        f"-DCMAKE_C_FLAGS=-mfpu=neon-vfpv4 -mfloat-abi={abi}",
        f"-DCMAKE_CXX_FLAGS=-mfpu=neon-vfpv4 -mfloat-abi={abi}",
    ]
    assert flags.c_flags == ["-mfpu=neon-vfpv4", f"-mfloat-abi={abi}"]
    assert flags.compile_flags == ["-march=armv7-a", "-mfpu=neon-vfpv4", f"-mfloat-abi={abi}"]


def test_armv7_arch_override_is_probed_with_its_fpu_and_abi():
    asked: list[list[str]] = []

    def accepts(flags: list[str]) -> bool:
        asked.append(flags)
        return True

    build_flags(profile_of(PI2), None, platform="termux", llama_cpu_arch="armv7-a", accepts=accepts)
    assert asked == [["-march=armv7-a", "-mfpu=neon-vfpv4", "-mfloat-abi=softfp"]]


@pytest.mark.skipif(not shutil.which("arm-linux-gnueabihf-gcc"), reason="needs gcc-arm-linux-gnueabihf")
def test_armv7_arch_override_compiles_with_neon_and_the_hard_float_abi():
    """The compiler's own word: NEON on (__ARM_NEON) and the VFP calling convention of armhf
    (__ARM_PCS_VFP), with exactly the flags the override gives ggml's CPU code."""
    flags = build_flags(profile_of(PI2), None, platform="linux", llama_cpu_arch="armv7-a")
    macros = subprocess.run(
        ["arm-linux-gnueabihf-gcc", *flags.compile_flags, "-E", "-dM", "-x", "c", "/dev/null"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")
    assert "#define __ARM_NEON 1" in macros
    assert "#define __ARM_PCS_VFP 1" in macros


# --- what check and the deploy say about a bad override ------------------------------------------

PI5 = "raspberry-pi-5.txt"  # aarch64, Cortex-A76
RYZEN = "x86_64-amd-ryzen-7-pro-7840hs.txt"


@pytest.mark.parametrize("dump, kwargs, message", [
    (PI5, {"llama_cpu_arch": 8}, "llama_cpu_arch: expected a string such as 'armv8.2-a+dotprod', got 8"),
    (PI5, {"llama_cpu_arch": ""}, "llama_cpu_arch: expected a string such as 'armv8.2-a+dotprod', got ''"),
    (PI5, {"llama_cpu_arch": "x86-64-v3"},
     "llama_cpu_arch: 'x86-64-v3' is not an ARM -march value for this aarch64 device "
     "(e.g. 'armv8.2-a+dotprod+fp16', or 'native')"),
    (PI5, {"llama_cpu_arch": "armv7-a"},
     "llama_cpu_arch: 'armv7-a' is not an ARM -march value for this aarch64 device "
     "(e.g. 'armv8.2-a+dotprod+fp16', or 'native')"),
    (RYZEN, {"llama_cpu_arch": "armv8-a"},
     "llama_cpu_arch: 'armv8-a' is not an x86-64 level; use one of x86-64, x86-64-v2, x86-64-v3, x86-64-v4 "
     "or 'native'"),
    (PI5, {"llama_cpu_mcpu": "Cortex A76"},
     "llama_cpu_mcpu: expected a core name such as 'cortex-a76' or '' for none, got 'Cortex A76'"),
    (PI5, {"llama_cpu_mcpu": 76}, "llama_cpu_mcpu: expected a core name such as 'cortex-a76' or '' for none, got 76"),
    (PI5, {"llama_cmake_args": "-DGGML_RPC=ON"}, "llama_cmake_args: expected a list of strings, got str '-DGGML_RPC=ON'"),
    (PI5, {"llama_cmake_args": ["GGML_RPC=ON"]}, "llama_cmake_args: each item must be a string starting with '-', got 'GGML_RPC=ON'"),
    (PI5, {"llama_cmake_args": [7]}, "llama_cmake_args: each item must be a string starting with '-', got 7"),
])
def test_a_bad_override_names_its_key_and_what_is_expected(dump, kwargs, message):
    with pytest.raises(FlagsError) as caught:
        build_flags(profile_of(dump), None, **kwargs)
    assert str(caught.value) == message
    assert caught.value.key == message.split(":")[0]


@pytest.mark.parametrize("dump, arch", [
    (PI5, "armv8-a"), (PI5, "armv8.2-a+dotprod"), (PI5, "armv9-a+sve2"),
    (PI2, "armv7-a"), (PI2, "armv8-a"),  # a 32-bit ARM userland takes ARMv7 and ARMv8 -march values
    (RYZEN, "x86-64"), (RYZEN, "x86-64-v4"),
])
def test_good_arch_overrides_are_taken_as_given(dump, arch):
    assert build_flags(profile_of(dump), None, llama_cpu_arch=arch).march == arch


def test_native_hands_detection_to_the_compiler_with_nothing_that_could_fight_it():
    arm = build_flags(profile_of(PI5), {"family": "gcc", "version": "12.2.0"}, llama_cpu_arch="native",
                      llama_cpu_mcpu="cortex-a76", llama_cmake_args=("-DGGML_RPC=ON",))
    assert arm.to_dict() == {
        "cmake_args": ["-DGGML_NATIVE=ON", "-DCMAKE_C_FLAGS=-mtune=cortex-a76", "-DCMAKE_CXX_FLAGS=-mtune=cortex-a76",
                       "-DGGML_RPC=ON"],
        "march": "native", "mcpu": "cortex-a76", "fallback": None, "c_flags": ["-mtune=cortex-a76"], "warnings": [],
        "compile_flags": ["-mcpu=native", "-mtune=cortex-a76"], "features": [], "override": True,
    }
    x86 = build_flags(profile_of(RYZEN), None, llama_cpu_arch="native")
    assert (x86.cmake_args, x86.mcpu, x86.compile_flags) == (["-DGGML_NATIVE=ON"], None, ["-march=native"])


def test_a_tune_the_compiler_refuses_is_kept_as_asked_with_a_warning():
    asked: list[list[str]] = []

    def accepts(flags):
        asked.append(flags)
        return not any(flag.startswith("-mtune=") for flag in flags)

    flags = build_flags(profile_of(PI5), None, llama_cpu_mcpu="cortex-a78", accepts=accepts)
    assert flags.mcpu == "cortex-a78"
    assert flags.warnings == ["the compiler refuses -mtune=cortex-a78 (llama_cpu_mcpu); kept as asked"]
    assert flags.fallback is None
    assert asked[-1] == ["-march=armv8.2-a+dotprod+fp16", "-mtune=cortex-a78"]


# --- what a fallback says (BuildFlags.fallback: which rungs were refused and what was lost) --------

D9000 = "dimensity-9000-redmi-k50-pro.txt"  # Features: ... i8mm bf16 sve sve2; 11 rungs from armv9-a down


def refusing(word: str):
    return lambda flags: not any(word in flag for flag in flags)


def test_a_fallback_lists_every_refused_rung_and_the_features_lost():
    flags = build_flags(profile_of(D9000), None, accepts=refusing("+sve"))
    assert flags.march == "armv8.6-a+dotprod+fp16+i8mm+bf16"
    assert flags.fallback == (
        "rung 5 of 11: the compiler refused -march=armv9-a+dotprod+fp16+i8mm+bf16+sve+sve2; "
        "-march=armv8.2-a+dotprod+fp16+i8mm+bf16+sve+sve2; -march=armv8.6-a+dotprod+fp16+i8mm+bf16+sve; "
        "-march=armv8.2-a+dotprod+fp16+i8mm+bf16+sve; using -march=armv8.6-a+dotprod+fp16+i8mm+bf16 "
        "(dropped: sve, sve2)")
    assert flags.warnings == []


def test_a_fallback_that_loses_nothing_says_so():
    flags = build_flags(profile_of(D9000), None, accepts=refusing("armv9"))
    assert flags.fallback == (
        "rung 2 of 11: the compiler refused -march=armv9-a+dotprod+fp16+i8mm+bf16+sve+sve2; "
        "using -march=armv8.2-a+dotprod+fp16+i8mm+bf16+sve+sve2 (dropped: only the spelling changed)")


def test_a_compiler_that_refuses_everything_is_questioned():
    flags = build_flags(profile_of(PI5), None, accepts=lambda flags: False)
    text = ("the compiler refused every rung down to -march=armv8-a; is it a working compiler for this CPU? "
            "Kept the lowest rung.")
    assert (flags.march, flags.fallback, flags.warnings) == ("armv8-a", text, [text])


EXYNOS = "exynos-990-galaxy-s20-ultra.txt"  # big cores: Exynos M5, then Cortex-A76


def test_refused_tunes_are_named_then_the_one_used_or_none():
    clang14 = {"family": "clang", "version": "14.0.6"}
    one = build_flags(profile_of(EXYNOS), clang14, accepts=refusing("exynos"))
    assert (one.mcpu, one.fallback) == ("cortex-a76", "the compiler refused -mtune=exynos-m5; tuning for cortex-a76")
    none = build_flags(profile_of(EXYNOS), clang14, accepts=refusing("-mtune"))
    assert (none.mcpu, none.fallback) == (None, "the compiler refused -mtune=exynos-m5, -mtune=cortex-a76; no tuning")
    assert not any("-mtune" in arg for arg in none.cmake_args)
    # Snapdragon 8 Gen 2's cores, in the table's order: Cortex-A710, Cortex-A715, Cortex-X3.
    third = build_flags(profile_of("snapdragon-8-gen2-sm8550.txt"), {"family": "clang", "version": "19.1.7"},
                        accepts=lambda flags: not any("a710" in f or "a715" in f for f in flags))
    assert (third.mcpu, third.fallback) == (
        "cortex-x3", "the compiler refused -mtune=cortex-a710, -mtune=cortex-a715; tuning for cortex-x3")


def test_a_step_down_and_a_refused_tune_are_both_told():
    flags = build_flags(profile_of(EXYNOS), {"family": "clang", "version": "14.0.6"},
                        accepts=lambda flags: not any("exynos" in f or "+fp16" in f for f in flags))
    assert flags.fallback == (
        "rung 2 of 4: the compiler refused -march=armv8.2-a+dotprod+fp16; using -march=armv8.2-a+dotprod "
        "(dropped: fp16); the compiler refused -mtune=exynos-m5; tuning for cortex-a76")


def test_an_arch_override_the_compiler_refuses_is_kept_with_a_warning():
    flags = build_flags(profile_of(PI5), None, llama_cpu_arch="armv9.2-a+sme", accepts=refusing("armv9.2"))
    assert flags.march == "armv9.2-a+sme"
    assert flags.warnings == ["the compiler refuses -march=armv9.2-a+sme (llama_cpu_arch); kept as asked"]
