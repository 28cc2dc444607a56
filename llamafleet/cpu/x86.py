"""x86-64: the ggml option ladder, from the `flags` line.

With `GGML_NATIVE=OFF` on a native (not cross) build, ggml's CMake turns SSE42, AVX, AVX2,
BMI2, FMA and F16C ON by default (ggml/CMakeLists.txt: INS_ENB). A CPU without AVX2 would get
a binary that dies with SIGILL, so every option is set explicitly, ON or OFF. The option names
and the `-m` flags they add are ggml's (ggml/src/ggml-cpu/CMakeLists.txt); they and the levels
are the `x86:` section of the CPU table (table.yaml).
"""

from __future__ import annotations

from .step import Step, dedupe
from .table import builtin_table

_TABLE = builtin_table()

# ggml option → (features it needs, compiler flags ggml then adds). Order = ggml's order.
OPTIONS: dict[str, tuple[frozenset[str], tuple[str, ...]]] = dict(_TABLE.x86_options)

# The x86-64 psABI micro-architecture levels, as features the kernel reports, lowest first.
LEVELS: dict[str, frozenset[str]] = {row.name: row.needs for row in _TABLE.x86_levels}

# Options each level may use (extensions beyond the level, like VNNI, come on top if present).
_LEVEL_OPTIONS = {row.name: row.options for row in _TABLE.x86_levels}
_EXTENSIONS = {row.name: row.extensions for row in _TABLE.x86_levels}


def level(features: frozenset[str]) -> str:
    """The highest psABI level the features cover (the lowest when none)."""
    best = next(iter(LEVELS))
    for name, needed in LEVELS.items():
        if needed <= features:
            best = name
    return best


def step_for(options: tuple[str, ...], level_name: str) -> Step:
    """The rung that turns exactly `options` on (and every other ggml option off)."""
    flags: list[str] = []
    for name in options:
        flags.extend(OPTIONS[name][1])
    cmake = tuple(f"-DGGML_{name}={'ON' if name in options else 'OFF'}" for name in OPTIONS)
    feats = frozenset().union(*(OPTIONS[name][0] for name in options)) if options else frozenset()
    return Step(march=level_name, compile_flags=tuple(flags), cmake_args=cmake, features=feats)


def options_for_level(level_name: str, features: frozenset[str] | None = None) -> tuple[str, ...]:
    """Options of a level, plus the extensions `features` report (none when features is None)."""
    chosen = list(_LEVEL_OPTIONS[level_name])
    if features is not None:
        for name in _EXTENSIONS.get(level_name, ()):
            if OPTIONS[name][0] <= features:
                chosen.append(name)
    return tuple(chosen)


def ladder(features: set[str] | frozenset[str]) -> list[Step]:
    """Rungs from every option the CPU allows down to the x86-64 baseline.

    Order: full level with its extensions → AMX dropped → AVX-512 extensions dropped → the
    next level down, and so on (a compiler that lacks -mavx512bf16 still builds AVX-512)."""
    features = frozenset(features)
    top = level(features)
    names = list(LEVELS)
    steps = []
    for level_name in reversed(names[: names.index(top) + 1]):
        full = options_for_level(level_name, features)
        steps.append(step_for(full, level_name))
        without_amx = tuple(o for o in full if not o.startswith("AMX"))
        steps.append(step_for(without_amx, level_name))
        base_only = options_for_level(level_name)
        steps.append(step_for(base_only, level_name))
    return dedupe(steps)
