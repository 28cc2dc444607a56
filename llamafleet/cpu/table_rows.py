"""Reading a CPU table file: YAML rows that know their line, each checked for shape.

A row is one mapping in a list (`cores:`, `tune:`, ...). Its values come from PyYAML's safe
loader, its line from the node PyYAML composed it from, so every complaint can say
"<file>: line 42 (cores row 7): ...". The MIDR fields are read from the text as written: YAML
would take `0100` for octal and `100` for decimal, and /proc/cpuinfo always prints `0x...`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

# The C loader when PyYAML was built with libyaml: the built-in table is read on every import.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Core and tune names as compilers spell them: lower case, no spaces ("cortex-a76", "apple-m1").
_NAME = re.compile(r"[a-z0-9][a-z0-9.+-]*")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")


class CpuTableError(ValueError):
    """A CPU table file that cannot be used; the message names the file and, for a bad row,
    its line and place in its list."""


@dataclass
class Row:
    """One mapping of a table list."""

    path: str
    section: str
    index: int  # 1-based place in its list
    line: int  # 1-based line in the file
    values: dict[str, Any]
    written: dict[str, str]  # each scalar as the file spells it

    def error(self, message: str) -> CpuTableError:
        return CpuTableError(f"{self.path}: line {self.line} ({self.section} row {self.index}): {message}")

    def check_keys(self, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        """Refuse missing and unknown keys (a misspelt `litle: true` must not pass silently)."""
        missing = [key for key in required if key not in self.values]
        if missing:
            raise self.error(f"missing {', '.join(missing)} (a row has {_listing(required, optional)})")
        unknown = [key for key in self.values if key not in required + optional]
        if unknown:
            raise self.error(f"unknown key {', '.join(map(str, unknown))} (a row has {_listing(required, optional)})")

    def name(self, key: str, optional: bool = False) -> str | None:
        """A lower-case name such as 'cortex-a76' (None when optional and absent or null)."""
        value = self.values.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise self.error(f"{key} must be a lower-case name such as 'cortex-a76', not {value!r}")
        return value

    def names(self, key: str) -> tuple[str, ...]:
        """A list of names; an absent key is an empty list."""
        value = self.values.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) and _NAME.fullmatch(item) for item in value):
            raise self.error(f"{key} must be a list of lower-case names such as [cortex-a76], not {value!r}")
        return tuple(value)

    def words(self, key: str) -> tuple[str, ...]:
        """A list of non-empty strings without spaces (ggml option names, compiler flags)."""
        value = self.values.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) and item and " " not in item for item in value):
            raise self.error(f"{key} must be a list of single words, not {value!r}")
        return tuple(value)

    def hex(self, key: str) -> int:
        """A MIDR field written in hex as /proc/cpuinfo prints it ('0x41', '0xd0b')."""
        written = self.written.get(key, "")
        if not _HEX.fullmatch(written):
            raise self.error(f"{key} must be hex as /proc/cpuinfo prints it (e.g. 0x41, 0xd0b), not {written!r}")
        return int(written, 16)

    def version(self, key: str) -> int | None:
        """A compiler major version (12), or null for 'no version accepts it'."""
        value = self.values.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(f"{key} must be a major version such as 12, or null for none, not {value!r}")
        return value

    def flag(self, key: str) -> bool:
        """true/false; absent is false."""
        value = self.values.get(key, False)
        if not isinstance(value, bool):
            raise self.error(f"{key} must be true or false, not {value!r}")
        return value


def _listing(required: tuple[str, ...], optional: tuple[str, ...]) -> str:
    return ", ".join(required) + (f" and optionally {', '.join(optional)}" if optional else "")


class Document:
    """One YAML file of the table: its top-level mapping, navigable with line numbers."""

    def __init__(self, path: str, text: str):
        self.path = path
        loader = _LOADER(text)
        try:
            self.node = loader.get_single_node()
            self.data = loader.construct_document(self.node) if self.node is not None else None
        except yaml.YAMLError as error:
            raise CpuTableError(f"{path}: not valid YAML: {error}") from error
        finally:
            loader.dispose()
        if not isinstance(self.data, dict):
            raise CpuTableError(f"{path}: expected a mapping of sections (cores:, tune:, ...), not {self.data!r}")

    def keys(self) -> list[str]:
        return list(self.data)

    def _find(self, keys: tuple[str, ...]) -> tuple[Any, Any]:
        """The value and node at a path of mapping keys ('x86', 'levels')."""
        value, node = self.data, self.node
        for depth, key in enumerate(keys):
            if not isinstance(value, dict) or key not in value:
                raise CpuTableError(f"{self.path}: no '{'.'.join(keys[: depth + 1])}' section")
            value = value[key]
            node = next(v for k, v in node.value if k.value == key)
        return value, node

    def words(self, *keys: str) -> tuple[str, ...]:
        """A list of lower-case names directly under `keys` (arm64 tags)."""
        value, node = self._find(keys)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and _NAME.fullmatch(v) for v in value):
            raise CpuTableError(f"{self.path}: line {node.start_mark.line + 1}: '{'.'.join(keys)}' must be a "
                                f"non-empty list of lower-case names, not {value!r}")
        return tuple(value)

    def rows(self, *keys: str) -> list[Row]:
        """The mappings of the list under `keys`, each with its line."""
        value, node = self._find(keys)
        label = ".".join(keys)
        if not isinstance(value, list):
            raise CpuTableError(f"{self.path}: line {node.start_mark.line + 1}: '{label}' must be a list of rows, "
                                f"not {type(value).__name__}")
        rows = []
        for index, (item, item_node) in enumerate(zip(value, node.value), start=1):
            row = Row(self.path, label, index, item_node.start_mark.line + 1, item, {})
            if not isinstance(item, dict):
                raise row.error(f"expected a mapping such as {{name: ..., ...}}, not {item!r}")
            row.written = {
                str(k.value): v.value for k, v in item_node.value if isinstance(v, yaml.ScalarNode)
            }
            rows.append(row)
        return rows
