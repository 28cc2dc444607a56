"""The CPU table as data: llamafleet/cpu/table.yaml, plus a user's extra rows.

table.yaml (shipped inside the package) holds every fact the flag choice rests on: MIDR pair →
core, which compilers know which -mtune name, the AArch64 -march bases and the x86-64 levels
and ggml options. The code in midr.py, compilers.py, arm64.py and x86.py is the logic that reads
it, so a new core or a compiler's new tuning name is a row, not a change of Python.

- builtin_table(): the packaged file, read once.
- table_for(extra): the built-in table with the `cores:` and `tune:` rows of a user's file
  merged over it (a row replaces the built-in row with the same key, others are added). This is
  group data `llama_cpu_table` and `llamafleet cpu-profile --cpu-table`.

Both check the shape while reading and raise CpuTableError naming the file and the row.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field, replace
from importlib import resources
from types import MappingProxyType
from typing import Mapping

from .table_rows import CpuTableError, Document, Row

# What a user's file may contain. The ladders follow ggml's CMake and the psABI, not a device:
# a device class that needs another -march says so with llama_cpu_arch.
EXTRA_SECTIONS = ("cores", "tune")
SECTIONS = (*EXTRA_SECTIONS, "arm64", "x86")


@dataclass(frozen=True)
class CoreType:
    """One kind of core (a `cores:` row).

    name:   GCC-style core name, or a vendor name for semi-custom cores.
    tune:   the -mtune/-mcpu name a compiler should use for it (the ARM core a Kryo or
            HiSilicon part is built from); None when no compiler has a name for it.
    little: an in-order efficiency core (Cortex-A53/A55/A510/A520 class). Little cores are left
            out of the thread count: llama.cpp waits for its slowest thread.
    """

    name: str
    tune: str | None = None
    little: bool = False

    @property
    def arm_equivalent(self) -> str | None:
        """The ARM core this vendor part derives from, when it is not an ARM part itself."""
        if self.tune and self.tune != self.name:
            return self.tune
        return None


@dataclass(frozen=True)
class TuneSupport:
    """A `tune:` row: first GCC and clang majors that accept the name (None: none), and the
    older names to tune for when the compiler lacks it."""

    gcc: int | None
    clang: int | None
    substitutes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArmBase:
    """An `arm64.bases` row: the base -march, the tags and kernel features it implies, the
    features written after it when present, and the base its tags are offered again on."""

    march: str
    tags: frozenset[str] = frozenset()
    features: frozenset[str] = frozenset()
    optional: tuple[str, ...] = ()
    also: str | None = None


@dataclass(frozen=True)
class X86Level:
    """An `x86.levels` row, with `needs` accumulated over the levels below."""

    name: str
    needs: frozenset[str]
    options: tuple[str, ...]
    extensions: tuple[str, ...]


@dataclass(frozen=True)
class CpuTable:
    """Every section of a table, read and checked; `files`: where its rows came from."""

    cores: Mapping[tuple[int, int], CoreType]
    tune: Mapping[str, TuneSupport]
    arm64_tags: tuple[str, ...]
    arm64_bases: tuple[ArmBase, ...]
    x86_options: Mapping[str, tuple[frozenset[str], tuple[str, ...]]]
    x86_levels: tuple[X86Level, ...]
    files: tuple[str, ...] = field(default=())


# --- rows ------------------------------------------------------------------------------------


def _keyed(rows: list[Row], key_of, label) -> dict:
    """Rows by key, refusing a key a file repeats (two rows for one core: which one is meant?)."""
    found: dict = {}
    first_row: dict = {}
    for row in rows:
        key, value = key_of(row)
        if key in found:
            raise row.error(f"{label(key)} is already in row {first_row[key].index} (line {first_row[key].line})")
        found[key], first_row[key] = value, row
    return found


def _core(row: Row) -> tuple[tuple[int, int], CoreType]:
    row.check_keys(("implementer", "part", "name"), ("tune", "little"))
    key = (row.hex("implementer"), row.hex("part"))
    return key, CoreType(row.name("name"), row.name("tune", optional=True), row.flag("little"))


def _tune(row: Row) -> tuple[str, TuneSupport]:
    row.check_keys(("name", "gcc", "clang"), ("substitutes",))
    return row.name("name"), TuneSupport(row.version("gcc"), row.version("clang"), row.names("substitutes"))


def _cores(document: Document) -> dict[tuple[int, int], CoreType]:
    return _keyed(document.rows("cores"), _core, lambda key: f"implementer {key[0]:#04x} part {key[1]:#05x}")


def _tunes(document: Document) -> dict[str, TuneSupport]:
    return _keyed(document.rows("tune"), _tune, lambda name: f"tune name {name!r}")


def _arm_bases(document: Document, tags: tuple[str, ...]) -> tuple[ArmBase, ...]:
    rows = document.rows("arm64", "bases")
    bases = []
    for row in rows:
        row.check_keys(("march",), ("tags", "features", "optional", "also"))
        base = ArmBase(row.name("march"), frozenset(row.names("tags")), frozenset(row.names("features")),
                       row.names("optional"), row.name("also", optional=True))
        if not base.tags <= set(tags):
            raise row.error(f"tags {sorted(base.tags - set(tags))} are not in arm64.tags")
        bases.append(base)
    if not bases or bases[-1].tags or bases[-1].features:
        raise CpuTableError(f"{document.path}: arm64.bases must end with a base that needs nothing (armv8-a)")
    known = {base.march for base in bases}
    for row, base in zip(rows, bases):
        if base.also is not None and base.also not in known:
            raise row.error(f"also: {base.also!r} is not one of the bases")
    return tuple(bases)


def _x86_option(row: Row) -> tuple[str, tuple[frozenset[str], tuple[str, ...]]]:
    row.check_keys(("option", "needs", "flags"))
    name = row.values["option"]
    if not isinstance(name, str) or not name.isidentifier():
        raise row.error(f"option must be a ggml option name such as AVX2, not {name!r}")
    return name, (frozenset(row.words("needs")), row.words("flags"))


def _x86(document: Document) -> tuple[dict, tuple[X86Level, ...]]:
    options = _keyed(document.rows("x86", "options"), _x86_option, lambda name: f"option {name}")
    levels: list[X86Level] = []
    needs: frozenset[str] = frozenset()
    for row in document.rows("x86", "levels"):
        row.check_keys(("level",), ("adds", "options", "extensions"))
        needs = needs | set(row.words("adds"))
        level = X86Level(row.name("level"), needs, row.words("options"), row.words("extensions"))
        unknown = [name for name in level.options + level.extensions if name not in options]
        if unknown:
            raise row.error(f"{', '.join(unknown)} not in x86.options")
        levels.append(level)
    if not levels:
        raise CpuTableError(f"{document.path}: x86.levels has no rows")
    return options, tuple(levels)


# --- files -----------------------------------------------------------------------------------


def _document(path: str) -> Document:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise CpuTableError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CpuTableError(f"{path}: cannot read it: {error}") from None
    return Document(path, text)


def _check_sections(document: Document, allowed: tuple[str, ...]) -> None:
    unknown = [key for key in document.keys() if key not in allowed]
    if unknown:
        hint = " (the arm64/x86 ladders cannot be changed per device: use llama_cpu_arch)" if (
            set(unknown) & set(SECTIONS)) else ""
        raise CpuTableError(f"{document.path}: unknown section {', '.join(map(str, unknown))}; "
                            f"this file may have {', '.join(allowed)}{hint}")


def read_table(path: str) -> CpuTable:
    """A complete table file (the packaged one, or a copy of it)."""
    document = _document(path)
    _check_sections(document, SECTIONS)
    tags = document.words("arm64", "tags")
    options, levels = _x86(document)
    return CpuTable(
        cores=MappingProxyType(_cores(document)),
        tune=MappingProxyType(_tunes(document)),
        arm64_tags=tags,
        arm64_bases=_arm_bases(document, tags),
        x86_options=MappingProxyType(options),
        x86_levels=levels,
        files=(path,),
    )


BUILTIN_PATH = str(resources.files(__package__).joinpath("table.yaml"))


@functools.lru_cache(maxsize=1)
def builtin_table() -> CpuTable:
    """table.yaml from the installed package."""
    return read_table(BUILTIN_PATH)


def merge_extra(table: CpuTable, path: str) -> CpuTable:
    """`table` with the rows of a user's file over it: `cores:` and/or `tune:` lists."""
    document = _document(path)
    _check_sections(document, EXTRA_SECTIONS)
    if not document.keys():
        raise CpuTableError(f"{path}: no rows: expected a cores: and/or a tune: list")
    cores = _cores(document) if "cores" in document.keys() else {}
    tunes = _tunes(document) if "tune" in document.keys() else {}
    return replace(
        table,
        cores=MappingProxyType({**table.cores, **cores}),
        tune=MappingProxyType({**table.tune, **tunes}),
        files=(*table.files, path),
    )


def table_for(extra: str | os.PathLike | None) -> CpuTable:
    """The table a host uses: the built-in one, with `extra` (a controller path, `~` expanded,
    relative to the current directory like every path in group data) merged over it."""
    if not extra:
        return builtin_table()
    return merge_extra(builtin_table(), os.path.expanduser(os.fspath(extra)))
