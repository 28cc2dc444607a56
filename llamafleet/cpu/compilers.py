"""Which compiler is it, and which core names does it know for -mtune.

Which GCC and clang versions accept which -mtune name is data: the `tune:` rows of the CPU
table (table.yaml, with where the versions come from). Versions below the oldest measured ones
get no tuning: a wrong -mtune name is a hard compile error, and only what was checked is
claimed. Tuning never changes the instruction set, so a missing tune costs a few percent, never
correctness.
"""

from __future__ import annotations

import re

from .table import CpuTable, builtin_table

# tune name → (first GCC major that accepts it, first clang major that accepts it), None for
# never: the built-in table's `tune:` rows, as plain tuples.
TUNE_SUPPORT: dict[str, tuple[int | None, int | None]] = {
    name: (row.gcc, row.clang) for name, row in builtin_table().tune.items()
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


def knows_tune(name: str, compiler: dict | None, table: CpuTable | None = None) -> bool:
    """True when this compiler family and version is known to accept -mtune=<name>, by the
    `tune:` rows of `table` (default: the built-in table).

    Unknown compilers, unknown versions and unknown names are False: no tuning rather than a
    build that fails on an unrecognised flag."""
    support = (table or builtin_table()).tune.get(name)
    if not compiler or support is None:
        return False
    family = compiler.get("family")
    version = major(compiler.get("version"))
    if family not in FAMILIES or version is None:
        return False
    first = support.gcc if family == "gcc" else support.clang
    return first is not None and version >= first


def tune_choices(candidates: list[str], compiler: dict | None, table: CpuTable | None = None) -> list[str]:
    """The tune names to try, best first: each candidate core, then its substitutes, keeping
    only those the compiler knows (`knows_tune`)."""
    table = table or builtin_table()
    ordered: list[str] = []
    for name in candidates:
        support = table.tune.get(name)
        for choice in (name, *(support.substitutes if support else ())):
            if choice not in ordered and knows_tune(choice, compiler, table):
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
