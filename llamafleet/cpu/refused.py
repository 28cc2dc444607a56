"""ISA features a device refused: its CPU died of SIGILL running code built with them.

A compiler takes flags the CPU lacks (+i8mm on a Cortex-A76-class core, an override that asks
too much), and /proc/cpuinfo can promise what a core does not do. The build proves each new
build with a self-test before installing it (llamafleet/operations/selftest.py); a SIGILL is
recorded on the device (`<base>/etc/cpu-refused`, read back by the CpuRefusals fact) as the
features the failed rung used beyond the next one down. Every later plan leaves those out:
rungs of the ladder that use one are skipped, and a `llama_cpu_arch` override loses them.

Features are named as the rungs name them (Step.features): the arm64 tags (dotprod, fp16, i8mm,
bf16, sve, sve2, sme) and, on x86, the kernel flags ggml's options need (avx2, avx512f, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from . import arm64, x86
from .step import Step
from .table import builtin_table

_ARM64_BASES = {base.march: base for base in builtin_table().arm64_bases}


def as_refusals(refused: Mapping[str, str] | Iterable[str] | None) -> dict[str, str]:
    """feature -> when it was refused ("" when unknown), from the CpuRefusals fact's shape
    ({"i8mm": {"date": ...}}), a plain mapping of dates, or a list of names."""
    if not refused:
        return {}
    if isinstance(refused, Mapping):
        result = {}
        for name, value in refused.items():
            when = value.get("date", "") if isinstance(value, Mapping) else value
            result[str(name)] = str(when or "")
        return result
    return {str(name): "" for name in refused}


def allowed_steps(steps: list[Step], refused: Mapping[str, str]) -> list[Step]:
    """The rungs that use no refused feature; the last rung is kept whatever it uses, so a
    build is always possible (it is the plainest code ggml has for the architecture)."""
    kept = [step for step in steps if not (step.features & set(refused))]
    return kept or steps[-1:]


def arm64_override_features(value: str) -> frozenset[str]:
    """The tags an AArch64 -march value asks for: the ones it names and the ones its base implies."""
    base, *parts = value.split("+")
    implied = _ARM64_BASES[base].tags if base in _ARM64_BASES else frozenset()
    return frozenset(part for part in parts if part in arm64.TAG_ORDER) | implied


def override_features(arch: str, value: str) -> frozenset[str]:
    """What a `llama_cpu_arch` override relies on, in the rungs' names (empty: unknown, as on
    32-bit ARM, whose -mfpu is not part of the override)."""
    if arch == "aarch64":
        return arm64_override_features(value)
    if arch == "x86_64" and value in x86.LEVELS:
        return x86.step_for(x86.options_for_level(value), value).features
    return frozenset()


def strip_override(arch: str, value: str, refused: Mapping[str, str]) -> tuple[str, list[str]]:
    """The override without the refused features, and which ones it lost.

    AArch64: the refused `+tag`s go; a base that implies one (armv8.6-a implies i8mm) becomes
    armv8.2-a with the tags it implied that were not refused written out. x86: the highest
    level at or below the asked one that needs none of them."""
    lost = sorted(override_features(arch, value) & set(refused))
    if not lost:
        return value, []
    if arch == "x86_64":
        levels = list(x86.LEVELS)
        for name in reversed(levels[: levels.index(value) + 1]):
            if not (override_features(arch, name) & set(refused)):
                return name, lost
        return levels[0], lost
    base, *parts = value.split("+")
    implied = _ARM64_BASES[base].tags if base in _ARM64_BASES else frozenset()
    if implied & set(refused):
        base = _ARM64_BASES[base].also or "armv8.2-a"
        parts = parts + [tag for tag in arm64.TAG_ORDER if tag in implied and tag not in parts]
    kept = [part for part in parts if part not in refused]
    others = [part for part in kept if part not in arm64.TAG_ORDER]
    tags = [tag for tag in arm64.TAG_ORDER if tag in kept]
    return "+".join([base, *others, *tags]), lost


def next_drop(features: frozenset[str], steps: list[Step], override: bool, arch: str) -> frozenset[str]:
    """The features to give up after a rung using `features` died of SIGILL: those it uses
    beyond the next rung down (empty: there is no lower rung).

    Ladder: the next rung whose features are a strict subset (a rung that only spells the same
    features differently would die the same way). Override: on AArch64 the tag the ladder drops
    first (sme, sve2, ... dotprod), on x86 what the level below does not use.
    """
    if override:
        if arch == "x86_64":
            below = [name for name in x86.LEVELS if override_features(arch, name) < features]
            return features - override_features(arch, below[-1]) if below else frozenset()
        first = next((tag for tag in arm64.DROP_ORDER if tag in features), None)
        return frozenset({first}) if first else frozenset()
    lower = next((step for step in steps if step.features < features), None)
    return features - lower.features if lower is not None else frozenset()


__all__ = ["allowed_steps", "as_refusals", "next_drop", "override_features", "strip_override"]
