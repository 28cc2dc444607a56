"""One rung of a flag ladder: a set of ISA features and the flags that state it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """A candidate ISA level for one device.

    march:         the architecture string (`GGML_CPU_ARM_ARCH` on ARM, the x86-64 level name
                   on x86) shown to users and stored in facts.
    compile_flags: what the compiler sees at this level; probing a compiler with exactly these
                   flags tells whether it can build ggml this way.
    cmake_args:    the `-D` options that make ggml's CMake pass `compile_flags` (without
                   `GGML_NATIVE`, which the caller adds).
    c_flags:       flags ggml's CMake has no option for; they go into CMAKE_C_FLAGS and
                   CMAKE_CXX_FLAGS (e.g. `-mfpu` on 32-bit ARM).
    features:      the normalised features this level relies on.
    """

    march: str
    compile_flags: tuple[str, ...]
    cmake_args: tuple[str, ...] = ()
    c_flags: tuple[str, ...] = ()
    features: frozenset[str] = frozenset()

    def label(self) -> str:
        """The flags as one readable string, for messages."""
        return " ".join(self.compile_flags) or "(no ISA flags)"


def dedupe(steps: list[Step]) -> list[Step]:
    """Drop repeated rungs (dropping a feature the device never had yields the same rung)."""
    seen: set[tuple[str, ...]] = set()
    unique = []
    for step in steps:
        key = step.compile_flags + step.c_flags
        if key not in seen:
            seen.add(key)
            unique.append(step)
    return unique
