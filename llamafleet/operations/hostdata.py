"""The error a task raises for a host's data, and how the package lists are merged.

A value's kind, range, choices and pattern are checked once, against its declaration
(llamafleet.settings): tasks read typed settings and check nothing again. What is left here is
what a task learns only while preparing (a CPU override that does not fit the CPU, an archive
without a llama.cpp tree), raised before any command runs on any host.
"""

from __future__ import annotations

from pyinfra.api.exceptions import OperationValueError


class HostDataError(OperationValueError):
    """A data key of one host has a value llamafleet cannot use.

    An OperationValueError (a ValueError and a pyinfra error): pyinfra's CLI prints it as one
    line, "Operation error: <host>: <key>: <message>", and stops before running anything."""

    def __init__(self, host_name: str, key: str, message: str):
        self.host_name = host_name
        self.key = key
        super().__init__(f"{host_name}: {key}: {message}")


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
