"""The flag table: march per dump, tuning per compiler, the fallback ladder, overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamafleet.cpu import arm64, x86
from llamafleet.cpu.compilers import knows_tune
from llamafleet.cpu.flags import FlagsError, build_flags
from llamafleet.cpu.profile import parse_cpuinfo

DATA = Path(__file__).resolve().parents[1] / "data" / "cpuinfo"
MANIFEST = json.loads((DATA / "MANIFEST.json").read_text())["files"]
EXPECTED = json.loads((DATA / "EXPECTED.json").read_text())["files"]
AARCH64 = sorted(n for n, e in MANIFEST.items() if e["expected_arch"] == "aarch64")
COMPILERS = {
    "gcc-12": {"family": "gcc", "version": "12.2.0"},
    "clang-14": {"family": "clang", "version": "14.0.6"},
    "clang-19": {"family": "clang", "version": "19.1.7"},
}


def profile_of(name: str):
    return parse_cpuinfo((DATA / name).read_text(), MANIFEST[name]["expected_uname_m"])


def arch_arg(flags) -> str | None:
    found = [a.split("=", 1)[1] for a in flags.cmake_args if a.startswith("-DGGML_CPU_ARM_ARCH=")]
    return found[0] if found else None


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_march_family_per_dump(name):
    flags = build_flags(profile_of(name), None, platform="linux")
    assert flags.cmake_args[0] == "-DGGML_NATIVE=OFF"
    assert flags.march == EXPECTED[name]["march"]
    assert flags.march.split("+")[0] == EXPECTED[name]["march_family"]
    if MANIFEST[name]["expected_arch"] != "x86_64":
        assert arch_arg(flags) == flags.march
    assert flags.c_flags == EXPECTED[name]["c_flags_linux"]
    assert flags.fallback is None and flags.warnings == []


@pytest.mark.parametrize("name", AARCH64)
def test_march_states_exactly_the_manifest_features(name):
    """No tag the Features line lacks (SIGILL), no reported ggml feature left out."""
    features = MANIFEST[name]["features"]
    tags = set(build_flags(profile_of(name)).march.split("+")[1:]) - {"crc"}
    for feature in ("dotprod", "fp16", "i8mm", "bf16", "sve", "sve2"):
        assert (feature in tags) is features[feature], f"{name}: {feature}"
    # A base that implies SVE2 (armv9) only where the kernel exposes SVE2.
    if build_flags(profile_of(name)).march.startswith("armv9"):
        assert features["sve2"]


def test_armv9_phone_without_sve_never_gets_sve():
    """Snapdragon 8 Gen 2: all cores are ARMv9 (-mcpu=cortex-x3 implies SVE2) but Features has
    no sve. The base must not imply it, and no tune may be -mcpu (which would)."""
    flags = build_flags(profile_of("snapdragon-8-gen2-sm8550.txt"), COMPILERS["clang-19"])
    assert "sve" not in flags.march and not flags.march.startswith("armv9")
    assert not any("-mcpu=" in arg for arg in flags.cmake_args)
    assert "-DCMAKE_C_FLAGS=-mtune=cortex-a710" in flags.cmake_args


@pytest.mark.parametrize("name", sorted(MANIFEST))
@pytest.mark.parametrize("compiler", sorted(COMPILERS))
def test_tune_per_compiler(name, compiler):
    flags = build_flags(profile_of(name), COMPILERS[compiler], platform="linux")
    expected = EXPECTED[name]["tune"][compiler]
    assert flags.mcpu == expected
    if expected:
        assert f"-DCMAKE_C_FLAGS={' '.join(flags.c_flags)}" in flags.cmake_args
        assert f"-DCMAKE_CXX_FLAGS={' '.join(flags.c_flags)}" in flags.cmake_args
        assert flags.c_flags[-1] == f"-mtune={expected}"


def test_no_compiler_means_no_tuning():
    flags = build_flags(profile_of("raspberry-pi-5.txt"), None)
    assert flags.mcpu is None and flags.cmake_args == [
        "-DGGML_NATIVE=OFF",
        "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16",
    ]


def test_compiler_version_gates_tuning():
    assert knows_tune("cortex-x3", {"family": "clang", "version": "16"})
    assert not knows_tune("cortex-x3", {"family": "clang", "version": "15.0.6"})
    assert not knows_tune("cortex-x3", {"family": "gcc", "version": "12"})
    assert not knows_tune("exynos-m5", {"family": "gcc", "version": "15"})
    assert not knows_tune("cortex-a76", {"family": "gcc", "version": None})
    assert not knows_tune("cortex-a76", {"family": "icc", "version": "2021"})


def test_x86_sets_every_ggml_option_explicitly():
    """GGML_NATIVE=OFF turns AVX2 & co ON by default on native builds: OFF must be explicit."""
    flags = build_flags(profile_of("x86_64-amd-ryzen-7-pro-7840hs.txt"), COMPILERS["gcc-12"])
    options = dict(a[len("-D") :].split("=") for a in flags.cmake_args[1:])
    assert set(options) == {f"GGML_{name}" for name in x86.OPTIONS}
    on = {k for k, v in options.items() if v == "ON"}
    assert on == {
        f"GGML_{n}"
        for n in ("SSE42", "F16C", "FMA", "BMI2", "AVX", "AVX2", "AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16")
    }
    v2_only = build_flags(parse_cpuinfo("processor: 0\nflags: sse2 pni ssse3 sse4_1 sse4_2 popcnt cx16 lahf_lm avx2\n"))
    assert "-DGGML_AVX2=OFF" in v2_only.cmake_args and "-DGGML_SSE42=ON" in v2_only.cmake_args


def test_termux_armv7_uses_softfp():
    flags = build_flags(profile_of("raspberry-pi-2-armv7.txt"), None, platform="termux")
    assert flags.c_flags == ["-mfpu=neon-vfpv4", "-mfloat-abi=softfp"]
    assert build_flags(profile_of("raspberry-pi-2-armv7.txt")).c_flags == ["-mfpu=neon-vfpv4"]


def test_profile_dict_from_the_fact_works_too():
    profile = profile_of("orange-pi-5-rk3588s.txt")
    assert build_flags(profile.to_dict(), COMPILERS["gcc-12"]) == build_flags(profile, COMPILERS["gcc-12"])


# --- the fallback ladder ----------------------------------------------------------------


def refusing(*words):
    """An accepts() standing for a compiler that rejects any flag containing one of `words`."""
    asked: list[list[str]] = []

    def accepts(flags):
        asked.append(flags)
        return not any(word in flag for flag in flags for word in words)

    accepts.asked = asked
    return accepts


def test_refused_sve2_steps_down_and_says_so():
    accepts = refusing("+sve2")
    flags = build_flags(profile_of("dimensity-9000-redmi-k50-pro.txt"), COMPILERS["gcc-12"], accepts=accepts)
    assert flags.march == "armv8.6-a+dotprod+fp16+i8mm+bf16+sve"
    assert arch_arg(flags) == flags.march
    assert "sve2" in flags.fallback and "armv9-a+dotprod+fp16+i8mm+bf16+sve+sve2" in flags.fallback
    assert flags.fallback.startswith("rung 3 of")
    assert accepts.asked[0] == ["-march=armv9-a+dotprod+fp16+i8mm+bf16+sve+sve2"]
    assert flags.mcpu == "cortex-a710"


def test_unknown_armv9_spelling_keeps_features():
    """An old compiler that does not know armv9-a still gets every feature via armv8.2-a+..."""
    flags = build_flags(profile_of("dimensity-9000-redmi-k50-pro.txt"), None, accepts=refusing("armv9"))
    assert flags.march == "armv8.2-a+dotprod+fp16+i8mm+bf16+sve+sve2"
    assert "only the spelling changed" in flags.fallback


def test_ladder_ends_at_armv8_and_warns_when_nothing_is_accepted():
    flags = build_flags(profile_of("raspberry-pi-5.txt"), None, accepts=lambda flags: False)
    assert flags.march == "armv8-a" and flags.warnings and "refused every rung" in flags.fallback


def test_ladder_order_drops_newest_features_first():
    rungs = [
        step.march
        for step in arm64.ladder({"dotprod", "fp16", "i8mm", "bf16", "sve", "sve2", "sme", "atomics", "rdm", "dcpop"})
    ]
    assert rungs[0] == "armv9.2-a+dotprod+fp16+i8mm+bf16+sve+sve2+sme"
    assert rungs[-1] == "armv8-a"
    assert (
        rungs.index("armv9-a+dotprod+fp16+i8mm+bf16+sve+sve2")
        < rungs.index("armv8.6-a+dotprod+fp16+i8mm+bf16")
        < rungs.index("armv8.2-a+dotprod")
    )


def test_refused_tune_falls_to_the_next_core():
    flags = build_flags(
        profile_of("exynos-990-galaxy-s20-ultra.txt"), COMPILERS["clang-14"], accepts=refusing("exynos")
    )
    assert flags.mcpu == "cortex-a76" and "-mtune=exynos-m5" in flags.fallback


def test_x86_refused_avx512bf16_keeps_avx512():
    flags = build_flags(profile_of("x86_64-amd-ryzen-7-pro-7840hs.txt"), None, accepts=refusing("-mavx512bf16"))
    assert "-DGGML_AVX512=ON" in flags.cmake_args and "-DGGML_AVX512_BF16=OFF" in flags.cmake_args
    assert "avx512_bf16" in flags.fallback


# --- overrides ---------------------------------------------------------------------------


def test_overrides_win_over_detection():
    profile = profile_of("snapdragon-888-oneplus-9-pro.txt")
    flags = build_flags(
        profile,
        COMPILERS["gcc-12"],
        llama_cpu_arch="armv8.2-a+dotprod",
        llama_cpu_mcpu="cortex-x1",
        llama_cmake_args=["-DGGML_CPU_ARM_ARCH=armv8-a", "-DLLAMA_BUILD_SERVER=OFF"],
        accepts=refusing("nothing-is-refused"),
    )
    assert flags.march == "armv8.2-a+dotprod" and flags.mcpu == "cortex-x1"
    # User args come last so CMake's last -D wins for them too.
    assert flags.cmake_args[-2:] == ["-DGGML_CPU_ARM_ARCH=armv8-a", "-DLLAMA_BUILD_SERVER=OFF"]
    assert flags.cmake_args[1] == "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod"


def test_override_refused_by_compiler_is_kept_with_a_warning():
    flags = build_flags(
        profile_of("raspberry-pi-5.txt"), None, llama_cpu_arch="armv9.2-a+sme", accepts=refusing("armv9.2")
    )
    assert flags.march == "armv9.2-a+sme" and "llama_cpu_arch" in flags.warnings[0]


def test_empty_mcpu_disables_tuning_and_native_hands_over():
    profile = profile_of("raspberry-pi-5.txt")
    assert build_flags(profile, COMPILERS["gcc-12"], llama_cpu_mcpu="").mcpu is None
    native = build_flags(profile, COMPILERS["gcc-12"], llama_cpu_arch="native")
    assert native.cmake_args == ["-DGGML_NATIVE=ON"] and native.march == "native"


def test_x86_level_override_caps_the_options():
    flags = build_flags(profile_of("x86_64-amd-ryzen-7-pro-7840hs.txt"), None, llama_cpu_arch="x86-64-v3")
    assert flags.march == "x86-64-v3"
    assert "-DGGML_AVX2=ON" in flags.cmake_args and "-DGGML_AVX512=OFF" in flags.cmake_args


@pytest.mark.parametrize(
    "key, kwargs",
    [
        ("llama_cpu_arch", {"llama_cpu_arch": "x86-64-v3"}),  # x86 level on an ARM board
        ("llama_cpu_arch", {"llama_cpu_arch": "armv8.2-a dotprod"}),
        ("llama_cpu_arch", {"llama_cpu_arch": "armv7-a"}),  # 32-bit ISA on an aarch64 board
        ("llama_cpu_arch", {"llama_cpu_arch": 8}),
        ("llama_cpu_mcpu", {"llama_cpu_mcpu": "Cortex A76"}),
        ("llama_cmake_args", {"llama_cmake_args": "-DGGML_RPC=ON"}),  # a string, not a list
        ("llama_cmake_args", {"llama_cmake_args": ["GGML_RPC=ON"]}),
    ],
)
def test_bad_overrides_name_the_key(key, kwargs):
    with pytest.raises(FlagsError) as error:
        build_flags(profile_of("raspberry-pi-5.txt"), None, **kwargs)
    assert error.value.key == key and str(error.value).startswith(f"{key}: ")


def test_arm_march_on_x86_is_refused():
    with pytest.raises(FlagsError, match="llama_cpu_arch"):
        build_flags(profile_of("x86_64-amd-ryzen-7-pro-7840hs.txt"), None, llama_cpu_arch="armv8-a")
