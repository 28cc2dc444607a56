"""Which compiler is it, and which core names does it know for -mtune.

The version table comes from /work/shared/reference/cpuinfo/compiler-mcpu.md: measured on Debian
12 (GCC 12.2, clang 14/15/16/19, clang 17/18 front ends) and read from GCC 13-15's
aarch64-cores.def. Versions below the oldest measured ones (GCC 12, clang 14) get no tuning: a
wrong -mtune name is a hard compile error, and we only claim what was checked. Tuning never
changes the instruction set, so a missing tune costs a few percent, never correctness.
"""

from __future__ import annotations

import re

NEVER = None

# tune name → (first GCC major that accepts it, first clang major that accepts it).
TUNE_SUPPORT: dict[str, tuple[int | None, int | None]] = {
    # 32-bit cores (arm-linux-gnueabihf GCC 12, clang 14 --target=armv7a)
    "cortex-a7": (12, 14),
    "cortex-a9": (12, 14),
    "cortex-a15": (12, 14),
    "cortex-a17": (12, 14),
    "krait": (NEVER, 14),
    # ARMv8.0 - 8.2 cores
    "cortex-a35": (12, 14),
    "cortex-a53": (12, 14),
    "cortex-a55": (12, 14),
    "cortex-a57": (12, 14),
    "cortex-a72": (12, 14),
    "cortex-a73": (12, 14),
    "cortex-a75": (12, 14),
    "cortex-a76": (12, 14),
    "cortex-a76ae": (12, 14),
    "cortex-a77": (12, 14),
    "cortex-a78": (12, 14),
    "cortex-a78ae": (12, 19),
    "cortex-a78c": (12, 14),
    "cortex-x1": (12, 14),
    "cortex-x1c": (13, 14),
    "neoverse-n1": (12, 14),
    "neoverse-v1": (12, 14),
    # ARMv9 cores
    "cortex-a510": (12, 14),
    "cortex-a710": (12, 14),
    "cortex-x2": (12, 14),
    "neoverse-n2": (12, 14),
    "cortex-a715": (13, 16),
    "cortex-x3": (13, 16),
    "neoverse-v2": (13, 16),
    "cortex-a520": (14, 18),
    "cortex-a720": (14, 18),
    "cortex-x4": (14, 18),
    # GCC 14's branch has these as late backports that 14.1 may lack: claim 15.
    "cortex-a725": (15, 19),
    "cortex-x925": (15, 19),
    "neoverse-v3": (15, 19),
    "neoverse-n3": (15, 19),
    # Vendor cores
    "exynos-m1": (12, NEVER),
    "exynos-m3": (NEVER, 14),
    "exynos-m4": (NEVER, 14),
    "exynos-m5": (NEVER, 14),
    "kryo": (NEVER, 14),
    "falkor": (12, 14),
    "saphira": (12, 14),
    "carmel": (NEVER, 14),
    "tsv110": (12, 14),
    "a64fx": (12, 14),
    "thunderx2t99": (12, 14),
    "ampere1": (12, 14),
    "ampere1a": (13, 16),
    "apple-m1": (15, 14),
    "apple-m2": (15, 16),
    "apple-m3": (15, 18),
    "apple-m4": (15, 19),
    "oryon-1": (15, 19),
}

# A core a compiler does not know → the closest older core of the same line, for tuning only
# (compiler-mcpu.md: "cortex-x2 is the closest" for A715/X3 on GCC 12; "use cortex-a15" for
# Krait on GCC).
TUNE_SUBSTITUTES: dict[str, tuple[str, ...]] = {
    "krait": ("cortex-a15",),
    "cortex-x1c": ("cortex-x1",),
    "cortex-a715": ("cortex-a710",),
    "cortex-x3": ("cortex-x2",),
    "cortex-a720": ("cortex-a715", "cortex-a710"),
    "cortex-x4": ("cortex-x3", "cortex-x2"),
    "cortex-a725": ("cortex-a720", "cortex-a715", "cortex-a710"),
    "cortex-x925": ("cortex-x4", "cortex-x3", "cortex-x2"),
    "cortex-a520": ("cortex-a510",),
}

FAMILIES = ("gcc", "clang")


def parse_compiler_spec(spec: str) -> dict:
    """`gcc-12`, `clang-14`, `clang-18.1` or just `gcc` → {"family", "version"}.

    Raises ValueError naming the accepted forms on anything else."""
    match = re.fullmatch(r"(gcc|clang)(?:-(\d+(?:\.\d+)*))?", spec.strip().lower())
    if not match:
        raise ValueError(f"compiler {spec!r}: expected gcc-<version> or clang-<version>, e.g. gcc-12")
    return {"family": match.group(1), "version": match.group(2)}


def parse_version_output(text: str) -> dict | None:
    """`cc --version` output → {"family": "gcc"|"clang", "version": "12.2.0"}, or None.

    Handles `gcc (Debian 12.2.0-14) 12.2.0`, `cc (GCC) 13.2.1 20231011 (Red Hat ...)`,
    `Debian clang version 14.0.6`, `clang version 18.1.8` (Termux) and cross compilers such as
    `aarch64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0`."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    first = lines[0]
    clang = re.search(r"\bclang version (\d+(?:\.\d+)*)", first)
    if clang:
        return {"family": "clang", "version": clang.group(1)}
    looks_gcc = "Free Software Foundation" in text or re.match(
        r"^(?:\S*[-/])?(gcc|cc|g\+\+|c\+\+)(?:-\d+(?:\.\d+)*)?\s", first
    )
    if looks_gcc:
        # The version is the last free-standing dotted number of the first line; vendor strings
        # in parentheses ("Debian 12.2.0-14", "Red Hat 13.2.1-4") are glued to a suffix and
        # a trailing date (Red Hat, Alpine) has no dot.
        versions = re.findall(r"(?<![\w.-])(\d+\.\d+(?:\.\d+)?)(?![\w.-])", first)
        if versions:
            return {"family": "gcc", "version": versions[-1]}
    return None


def major(version: str | int | None) -> int | None:
    """Major version number of "12.2.0" / "12" / 12, or None."""
    if version is None:
        return None
    match = re.match(r"\d+", str(version))
    return int(match.group(0)) if match else None


def knows_tune(name: str, compiler: dict | None) -> bool:
    """True when this compiler family and version is known to accept -mtune=<name>.

    Unknown compilers, unknown versions and unknown names are False: no tuning rather than a
    build that fails on an unrecognised flag."""
    if not compiler or name not in TUNE_SUPPORT:
        return False
    family = compiler.get("family")
    version = major(compiler.get("version"))
    if family not in FAMILIES or version is None:
        return False
    first = TUNE_SUPPORT[name][FAMILIES.index(family)]
    return first is not None and version >= first


def tune_choices(candidates: list[str], compiler: dict | None) -> list[str]:
    """The tune names to try, best first: each candidate core, then its substitutes, keeping
    only those the compiler knows (`knows_tune`)."""
    ordered: list[str] = []
    for name in candidates:
        for choice in (name, *TUNE_SUBSTITUTES.get(name, ())):
            if choice not in ordered and knows_tune(choice, compiler):
                ordered.append(choice)
    return ordered


VERSION_MARKER = "---version---"


def parse_compiler_probe(lines: list[str]) -> dict | None:
    """Output of the CompilerInfo probe → {"family", "version", "path", "cxx"} or None.

    The probe prints `path=<compiler>`, optionally `cxx=<matching C++ compiler>`, the marker
    line, then the first lines of `<compiler> --version`. None when no compiler was found or its
    version text is not GCC's or clang's."""
    if VERSION_MARKER not in lines:
        return None
    split = lines.index(VERSION_MARKER)
    head = dict(line.split("=", 1) for line in lines[:split] if "=" in line)
    identity = parse_version_output("\n".join(lines[split + 1 :]))
    if not identity or not head.get("path"):
        return None
    return {**identity, "path": head["path"], "cxx": head.get("cxx") or None}
