"""x86-64: the ggml option ladder, from the `flags` line.

With `GGML_NATIVE=OFF` on a native (not cross) build, ggml's CMake turns SSE42, AVX, AVX2,
BMI2, FMA and F16C ON by default (ggml/CMakeLists.txt: INS_ENB). A CPU without AVX2 would get
a binary that dies with SIGILL, so every option is set explicitly, ON or OFF. The option names
and the `-m` flags they add are ggml's (ggml/src/ggml-cpu/CMakeLists.txt).
"""

from __future__ import annotations

from .step import Step, dedupe

# ggml option → (features it needs, compiler flags ggml then adds). Order = ggml's order.
OPTIONS: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "SSE42": (frozenset({"sse4_2"}), ("-msse4.2",)),
    "F16C": (frozenset({"f16c"}), ("-mf16c",)),
    "FMA": (frozenset({"fma"}), ("-mfma",)),
    "BMI2": (frozenset({"bmi2"}), ("-mbmi2",)),
    "AVX": (frozenset({"avx"}), ("-mavx",)),
    "AVX2": (frozenset({"avx2"}), ("-mavx2",)),
    "AVX_VNNI": (frozenset({"avx_vnni"}), ("-mavxvnni",)),
    "AVX512": (
        frozenset({"avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"}),
        ("-mavx512f", "-mavx512cd", "-mavx512vl", "-mavx512dq", "-mavx512bw"),
    ),
    "AVX512_VBMI": (frozenset({"avx512vbmi"}), ("-mavx512vbmi",)),
    "AVX512_VNNI": (frozenset({"avx512_vnni"}), ("-mavx512vnni",)),
    "AVX512_BF16": (frozenset({"avx512_bf16"}), ("-mavx512bf16",)),
    "AMX_TILE": (frozenset({"amx_tile"}), ("-mamx-tile",)),
    "AMX_INT8": (frozenset({"amx_int8"}), ("-mamx-int8",)),
    "AMX_BF16": (frozenset({"amx_bf16"}), ("-mamx-bf16",)),
}

# The x86-64 psABI micro-architecture levels, as features the kernel reports.
LEVELS: dict[str, frozenset[str]] = {
    "x86-64": frozenset(),
    "x86-64-v2": frozenset({"cx16", "lahf_lm", "popcnt", "sse3", "sse4_1", "sse4_2", "ssse3"}),
}
LEVELS["x86-64-v3"] = LEVELS["x86-64-v2"] | {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "lzcnt", "movbe"}
LEVELS["x86-64-v4"] = LEVELS["x86-64-v3"] | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}

# Options each level may use (extensions beyond the level, like VNNI, come on top if present).
_LEVEL_OPTIONS = {
    "x86-64": (),
    "x86-64-v2": ("SSE42",),
    "x86-64-v3": ("SSE42", "F16C", "FMA", "BMI2", "AVX", "AVX2"),
    "x86-64-v4": ("SSE42", "F16C", "FMA", "BMI2", "AVX", "AVX2", "AVX512"),
}
_EXTENSIONS = {
    "x86-64-v3": ("AVX_VNNI",),
    "x86-64-v4": ("AVX_VNNI", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AMX_TILE", "AMX_INT8", "AMX_BF16"),
}


def level(features: frozenset[str]) -> str:
    """The highest psABI level the features cover."""
    best = "x86-64"
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
