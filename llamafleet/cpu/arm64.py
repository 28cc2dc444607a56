"""AArch64: the -march ladder, from the Features line.

ggml takes the architecture through `GGML_CPU_ARM_ARCH` (used as `-march=<value>` only when
`GGML_NATIVE=OFF`; ggml/src/ggml-cpu/CMakeLists.txt). The rungs follow ggml's own Android
variant ladder (ggml/src/CMakeLists.txt, GGML_CPU_ALL_VARIANTS): armv8.0 → armv8.2+dotprod →
+fp16 → armv8.6+i8mm → armv9.0+sve2 → armv9.2+sve+sme, with two safety rules learned from real
devices (compiler-mcpu.md):

- A base version is used only when the Features line reports everything it implies: armv8.6-a
  implies bf16 and i8mm, armv9-a implies sve2, armv9.2-a implies i8mm/bf16/sve2. ARMv9 phones
  such as the Snapdragon 8 Gen 2 run with SVE switched off, so they get armv8.6-a, never armv9.
- Every feature is spelled out (+dotprod+fp16...) even when the base implies it: clang 14's
  armv8.6-a lacks dotprod and no compiler's armv8.6-a has fp16.
"""

from __future__ import annotations

from .step import Step, dedupe

# Order in which tags are written, and (reversed) the order in which the fallback drops them.
TAG_ORDER = ("dotprod", "fp16", "i8mm", "bf16", "sve", "sve2", "sme")
DROP_ORDER = tuple(reversed(TAG_ORDER))

# The ARMv8.1/8.2 baseline features a core must report before we say armv8.2-a (Raspberry
# Pi 3/4 and old kernels report none of them and get armv8-a).
_V82_EVIDENCE = frozenset({"atomics", "rdm", "dcpop"})


def base_arch(tags: frozenset[str], features: frozenset[str]) -> str:
    """The highest base architecture whose implied features the device reports."""
    if {"dotprod", "fp16", "i8mm", "bf16", "sve", "sve2", "sme"} <= tags:
        return "armv9.2-a"
    if {"dotprod", "fp16", "sve", "sve2"} <= tags:
        return "armv9-a"
    if {"dotprod", "i8mm", "bf16"} <= tags:
        return "armv8.6-a"
    if _V82_EVIDENCE <= features:
        return "armv8.2-a"
    return "armv8-a"


def march_string(base: str, tags: frozenset[str], features: frozenset[str]) -> str:
    """`base` plus the tags in ggml's order; armv8-a also states crc (optional before 8.1)."""
    parts = [base]
    if base == "armv8-a" and "crc" in features:
        parts.append("crc")
    parts.extend(tag for tag in TAG_ORDER if tag in tags)
    return "+".join(parts)


def _step(march: str, tags: frozenset[str]) -> Step:
    return Step(
        march=march,
        compile_flags=(f"-march={march}",),
        cmake_args=(f"-DGGML_CPU_ARM_ARCH={march}",),
        features=tags,
    )


def ladder(features: set[str] | frozenset[str]) -> list[Step]:
    """Rungs from the best the Features line allows down to plain armv8-a.

    Each feature set is offered twice when the spellings differ: first with the ladder's base
    (armv9-a...), then as armv8.2-a+tags, which old compilers that do not know armv9 accept.
    """
    features = frozenset(features)
    tags = frozenset(tag for tag in TAG_ORDER if tag in features)
    steps = []
    for dropped in range(len(DROP_ORDER) + 1):
        kept = tags - set(DROP_ORDER[:dropped])
        base = base_arch(kept, features)
        steps.append(_step(march_string(base, kept, features), kept))
        if base in ("armv9.2-a", "armv9-a", "armv8.6-a"):
            steps.append(_step(march_string("armv8.2-a", kept, features), kept))
    steps.append(_step("armv8-a", frozenset()))
    return dedupe(steps)
