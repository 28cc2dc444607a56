"""What `llamafleet check` found: problems ("host: key: message") and the values already refused.

Every rule module writes into one Findings; a value a rule refused is hidden from the later
rules, so one mistake gives one line, not a cascade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llamafleet.inventory_data import InventoryHost
from llamafleet.settings import HostSettings, settings_for

CLUSTER = "cluster"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the inventory. `host` is a host name or "cluster"."""

    host: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.host}: {self.key}: {self.message}"


class Findings:
    """The problems found so far, in the order found."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        # (host, key) whose value failed a rule about the value itself (type, range, pattern):
        # later rules read None for it.
        self.bad: set[tuple[str, str]] = set()
        self._settings: dict[str, HostSettings] = {}

    def report(self, host: str, key: str, message: str) -> None:
        self.problems.append(Problem(host, key, message))

    def bad_value(self, host: InventoryHost, key: str, message: str) -> None:
        """Refuse the host's value for key, saying which group set it when not the host."""
        self.bad.add((host.name, key))
        self._settings.pop(host.name, None)
        where = host.where(key)
        origin = f" (set in {where})" if where not in ("host data", "unknown") else ""
        self.report(host.name, key, f"{message}{origin}")

    def is_bad(self, host: InventoryHost, *keys: str) -> bool:
        """True when any of these keys of the host was refused already."""
        return any((host.name, key) in self.bad for key in keys)

    def value(self, host: InventoryHost, key: str) -> Any:
        """The host's value for key, or None when it was refused."""
        if (host.name, key) in self.bad:
            return None
        return host.data.get(key)

    def clean(self, host: InventoryHost) -> dict[str, Any]:
        """The host's data without the values already refused."""
        return {key: value for key, value in host.data.items() if (host.name, key) not in self.bad}

    def settings(self, host: InventoryHost) -> HostSettings:
        """The host's typed settings from its clean data: a refused value reads as its default."""
        if host.name not in self._settings:
            self._settings[host.name] = settings_for(host.name, self.clean(host))
        return self._settings[host.name]
