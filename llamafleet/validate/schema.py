"""The known data keys and the kind each one takes: the declared settings
(llamafleet.settings.tunables) plus pyinfra's own keys, its connectors' and its global
arguments (`_sudo`, `_temp_dir`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from llamafleet.settings import SETTINGS
from llamafleet.settings.kinds import BOOL, DICT, INT, NUMBER, STR, Kind

_PYTHON_KINDS = {str: STR, int: INT, float: NUMBER, bool: BOOL, dict: DICT}


def pyinfra_keys() -> dict[str, Kind | None]:
    """pyinfra's own data keys: every connector's data keys (typed from its TypedDict) and the
    global arguments (`_sudo`, `_temp_dir`, ...; pyinfra checks those itself)."""
    from typing import get_type_hints

    from pyinfra.api.arguments import all_argument_meta
    from pyinfra.api.connectors import get_all_connectors

    # Only the `_`-prefixed ones are data keys ("name" is an operation argument).
    keys: dict[str, Kind | None] = {name: None for name in all_argument_meta if name.startswith("_")}
    for connector in get_all_connectors().values():
        try:
            hints = get_type_hints(connector.data_cls)
        except Exception:  # a connector's annotations that do not resolve: keys stay untyped
            hints = {}
        for key in getattr(connector, "data_meta", {}):
            keys[key] = _PYTHON_KINDS.get(hints.get(key))
    return keys


@dataclass
class Schema:
    """Every known key and its kind (None: any type)."""

    kinds: dict[str, Kind | None]

    @classmethod
    def load(cls) -> "Schema":
        kinds: dict[str, Kind | None] = dict(pyinfra_keys())
        kinds.update({setting.name: setting.kind for setting in SETTINGS})
        return cls(kinds)
