"""Pick the ladder for a device's architecture."""

from __future__ import annotations

from . import arm32, arm64, x86
from .step import Step

ARM32_ARCHES = ("armv7l", "armv6l")


def ladder_for(
    arch: str,
    features: set[str] | frozenset[str],
    cpu_architecture: int | None = None,
    platform: str | None = None,
) -> list[Step]:
    """All rungs for the device, best first. Unknown architectures get one empty rung: ggml
    then builds with its generic C code, which is slow but runs."""
    if arch == "aarch64":
        return arm64.ladder(features)
    if arch in ARM32_ARCHES:
        return arm32.ladder(features, cpu_architecture, platform, uname_m=arch)
    if arch == "x86_64":
        return x86.ladder(features)
    return [Step(march=arch, compile_flags=())]
