"""Read and check the group/host data llamafleet's build pipeline uses.

Every error names the host and the data key, and is raised while pyinfra prepares the deploy:
before any command runs on any host.
"""

from __future__ import annotations

import re
from typing import Any

from pyinfra.api.exceptions import OperationValueError

# Debian/Termux package names: lowercase letters, digits, + - . (policy §5.6.1); we also accept
# upper case for apt's sake and an `=version` pin. `llamafleet check` uses it too.
PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.\-]*(=[A-Za-z0-9:~.+\-]+)?")


class HostDataError(OperationValueError):
    """A data key of one host has a value llamafleet cannot use.

    An OperationValueError (a ValueError and a pyinfra error): pyinfra's CLI prints it as one
    line, "Operation error: <host>: <key>: <message>", and stops before running anything."""

    def __init__(self, host_name: str, key: str, message: str):
        self.host_name = host_name
        self.key = key
        super().__init__(f"{host_name}: {key}: {message}")


def string_list(host_name: str, key: str, value: Any) -> list[str]:
    """A list of non-empty strings (None counts as empty)."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise HostDataError(host_name, key, f"expected a list of strings, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise HostDataError(host_name, key, f"expected a list of strings, found {item!r}")
    return [item.strip() for item in value]


def package_list(host_name: str, key: str, value: Any) -> list[str]:
    """A list of package names, each checked so nothing odd reaches the package manager."""
    names = string_list(host_name, key, value)
    for name in names:
        if not PACKAGE_NAME.fullmatch(name):
            raise HostDataError(host_name, key, f"{name!r} is not a package name")
    return names


def merge_unique(*lists: list[str]) -> list[str]:
    """Concatenate lists, keeping the first occurrence of each item (order matters for output)."""
    seen: set[str] = set()
    merged = []
    for items in lists:
        for item in items:
            if item not in seen:
                seen.add(item)
                merged.append(item)
    return merged


def optional_positive_int(host_name: str, key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HostDataError(host_name, key, f"expected a whole number >= 1, got {value!r}")
    return value


def boolean(host_name: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise HostDataError(host_name, key, f"expected True or False, got {value!r}")
    return value


def optional_string(host_name: str, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise HostDataError(host_name, key, f"expected a string, got {value!r}")
    return value


def choice(host_name: str, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise HostDataError(host_name, key, f"expected one of {', '.join(allowed)}, got {value!r}")
    return value
