"""AArch64: the -march ladder, from the Features line.

ggml takes the architecture through `GGML_CPU_ARM_ARCH` (used as `-march=<value>` only when
`GGML_NATIVE=OFF`; ggml/src/ggml-cpu/CMakeLists.txt). The rungs follow ggml's own Android
variant ladder (ggml/src/CMakeLists.txt, GGML_CPU_ALL_VARIANTS): armv8.0 → armv8.2+dotprod →
+fp16 → armv8.6+i8mm → armv9.0+sve2 → armv9.2+sve+sme. The tags and the bases with what each
implies are the `arm64:` section of the CPU table (table.yaml), with two safety rules learned
from real devices (compiler-mcpu.md):

- A base version is used only when the Features line reports everything it implies: armv8.6-a
  implies bf16 and i8mm, armv9-a implies sve2, armv9.2-a implies i8mm/bf16/sve2. ARMv9 phones
  such as the Snapdragon 8 Gen 2 run with SVE switched off, so they get armv8.6-a, never armv9.
- Every feature is spelled out (+dotprod+fp16...) even when the base implies it: clang 14's
  armv8.6-a lacks dotprod and no compiler's armv8.6-a has fp16.
"""

from __future__ import annotations

from .step import Step, dedupe
from .table import builtin_table

_BASES = builtin_table().arm64_bases
_BY_MARCH = {base.march: base for base in _BASES}

# Order in which tags are written, and (reversed) the order in which the fallback drops them.
TAG_ORDER = builtin_table().arm64_tags
DROP_ORDER = tuple(reversed(TAG_ORDER))


def base_arch(tags: frozenset[str], features: frozenset[str]) -> str:
    """The highest base architecture whose implied tags the device keeps and whose implied
    features it reports."""
    for base in _BASES:
        if base.tags <= tags and base.features <= features:
            return base.march
    return _BASES[-1].march


def march_string(base: str, tags: frozenset[str], features: frozenset[str]) -> str:
    """`base`, the base's optional features the device reports (crc on armv8-a), then the
    tags in ggml's order."""
    parts = [base]
    parts.extend(name for name in _BY_MARCH[base].optional if name in features)
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
    """Rungs from the best the Features line allows down to the plain last base (armv8-a).

    Each feature set is offered twice when a base says `also`: first with the ladder's base
    (armv9-a...), then as armv8.2-a+tags, which old compilers that do not know armv9 accept.
    """
    features = frozenset(features)
    tags = frozenset(tag for tag in TAG_ORDER if tag in features)
    steps = []
    for dropped in range(len(DROP_ORDER) + 1):
        kept = tags - set(DROP_ORDER[:dropped])
        base = base_arch(kept, features)
        steps.append(_step(march_string(base, kept, features), kept))
        if _BY_MARCH[base].also:
            steps.append(_step(march_string(_BY_MARCH[base].also, kept, features), kept))
    steps.append(_step(_BASES[-1].march, frozenset()))
    return dedupe(steps)
