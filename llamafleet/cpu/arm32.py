"""32-bit ARM (armv7l, and armv8l: a 32-bit userland on a 64-bit CPU): the -march/-mfpu ladder.

ggml's CMake has no FPU option: `GGML_CPU_ARM_ARCH` gives `-march`, and NEON has to be switched
on with `-mfpu` in CMAKE_C_FLAGS/CMAKE_CXX_FLAGS (Debian armhf GCC defaults to vfpv3-d16,
without NEON). ggml itself adds `-mfp16-format=ieee`. The float ABI must match the system's
libraries, so it is only stated when the platform is known: `hard` on Linux armhf, `softfp` on
Android/Termux (armeabi-v7a).
"""

from __future__ import annotations

from .step import Step, dedupe

FLOAT_ABI = {"linux": "hard", "termux": "softfp"}


def _step(march: str, fpu: str, float_abi: str | None, features: frozenset[str]) -> Step:
    c_flags = [f"-mfpu={fpu}"]
    if float_abi:
        c_flags.append(f"-mfloat-abi={float_abi}")
    return Step(
        march=march,
        compile_flags=(f"-march={march}", *c_flags),
        cmake_args=(f"-DGGML_CPU_ARM_ARCH={march}",),
        c_flags=tuple(c_flags),
        features=features,
    )


def is_armv8(features: frozenset[str], cpu_architecture: int | None) -> bool:
    """An ARMv8 core seen from 32-bit userland. `CPU architecture: 8` is trustworthy when it
    says 8; a 32-bit kernel on an ARMv8 core says 7, but then lists crc32 in Features."""
    return (cpu_architecture or 0) >= 8 or "crc" in features


def ladder(
    features: set[str] | frozenset[str],
    cpu_architecture: int | None = None,
    platform: str | None = None,
    uname_m: str | None = None,
) -> list[Step]:
    """Rungs from the best FPU/NEON level the Features line allows down to VFPv3-D16."""
    features = frozenset(features)
    float_abi = FLOAT_ABI.get(platform or "")
    steps = []
    if uname_m == "armv6l":
        # Raspberry Pi Zero/1: ARMv6 with VFPv2 only, no NEON.
        return [_step("armv6", "vfp", float_abi, features & {"vfp"})]
    if "neon" in features and is_armv8(features, cpu_architecture):
        steps.append(_step("armv8-a", "neon-fp-armv8", float_abi, features & {"neon", "vfpv4", "crc"}))
    if {"neon", "vfpv4"} <= features:
        steps.append(_step("armv7-a", "neon-vfpv4", float_abi, frozenset({"neon", "vfpv4"})))
    if "neon" in features:
        steps.append(_step("armv7-a", "neon", float_abi, frozenset({"neon"})))
    steps.append(_step("armv7-a", "vfpv3-d16", float_abi, frozenset()))
    return dedupe(steps)
