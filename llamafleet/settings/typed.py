"""A host's settings as one typed object: every declared key, its value or its default.

`settings_for(name, data)` is how the plan, the tasks and the checks read a host's data: an
attribute per key (`settings.rpc_ram_fraction`), the declared default where data has none, and
a SettingError naming host and key for a value of the wrong kind, so an attribute always holds
its declared type. Ranges, choices and patterns are `llamafleet check`'s, which deploy.py runs
first (llamafleet.validate): nothing downstream checks a value again.
"""

from __future__ import annotations

import copy
from dataclasses import make_dataclass
from typing import Any, Mapping

from llamafleet.operations.hostdata import HostDataError
from llamafleet.settings.tunables import SETTINGS

# Attributes: every declared key but pyinfra's `_` global arguments (not names to read).
_TYPED = tuple(setting for setting in SETTINGS if not setting.name.startswith("_"))

HostSettings = make_dataclass(
    "HostSettings",
    [(setting.name, Any) for setting in _TYPED],
    frozen=True,
    namespace={"__doc__": "One host's settings: an attribute per key of llamafleet.settings.tunables."},
)


class SettingError(HostDataError):
    """A data key of one host has a value of another kind than declared ("host: key: message";
    pyinfra's CLI prints it as one line and stops before running anything)."""


def _value(setting, data: Mapping[str, Any]) -> Any:
    value = data.get(setting.name)
    if value is None:
        # None means "decided by llamafleet": the declared default (a copy: lists are mutable).
        return copy.deepcopy(setting.default)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        # Surrounding blanks were never part of a package name or CMake argument.
        return [item.strip() for item in value]
    return value


def settings_for(host_name: str, data: Mapping[str, Any]) -> Any:
    """The typed settings of one host from its data (pyinfra's host.data or a dict)."""
    values = {}
    for setting in _TYPED:
        value = _value(setting, data)
        if value is not None and not setting.kind.accepts(value):
            raise SettingError(host_name, setting.name, setting.kind_problem(value))
        values[setting.name] = value
    return HostSettings(**values)


def default_settings() -> Any:
    """Every key at its declared default (what a host with no data of its own gets)."""
    return settings_for("defaults", {})
