"""The known data keys and the type (kind) each one takes.

The keys are group_data/all.py's (typed from their defaults, or from the tables below when the
default is None or an empty list) plus pyinfra's own: its connectors' keys and its global
arguments (`_sudo`, `_temp_dir`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from llamafleet.inventory_data import read_defaults


@dataclass(frozen=True)
class Kind:
    """An accepted type of a data value; None ("decided by llamafleet") is always accepted."""

    name: str
    accepts: Callable[[Any], bool]


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


STR = Kind("a string", lambda v: isinstance(v, str))
INT = Kind("an integer", is_int)
NUMBER = Kind("a number", is_number)
BOOL = Kind("True or False", lambda v: isinstance(v, bool))
DICT = Kind("a dict", lambda v: isinstance(v, dict))
LIST_STR = Kind("a list of strings", lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v))
LIST_NUMBER = Kind("a list of numbers", lambda v: isinstance(v, list) and all(is_number(i) for i in v))

# Keys whose default in group_data/all.py is None (or an empty list) say nothing about their type:
# this table does. tests/unit/test_check_rules.py fails when all.py gains a key missing here.
NONE_DEFAULT_KINDS: dict[str, Kind] = {
    "cluster_address": STR,
    "llama_cpp_ref": STR,
    "llama_cpp_archive": STR,
    "llamafleet_dir": STR,
    "llama_cpu_arch": STR,
    "llama_cpu_mcpu": STR,
    "llama_cpu_table": STR,
    "llama_build_jobs": INT,
    "llama_compiler": STR,
    "rpc_port": INT,
    "rpc_bind": STR,
    "rpc_transport": STR,
    "rpc_threads": INT,
    "ram_mb": NUMBER,
    "model_url": STR,
    "model_file": STR,
    "model_sha256": STR,
    "model_size_mb": NUMBER,
    "model_name": STR,
    "llama_tensor_split": LIST_NUMBER,
    "llama_load_mode": STR,
    "llama_server_host": STR,
    "llama_chat_template": STR,
    "firewall_backend": STR,
    "service_manager": STR,
}
EMPTY_LIST_KINDS: dict[str, Kind] = {
    "llama_cmake_args": LIST_STR,
    "extra_packages": LIST_STR,
    "api_allowed_sources": LIST_STR,
}


def kind_of_default(key: str, default: Any) -> Kind | None:
    """The kind a key must have, from its default in all.py or the tables above."""
    if default is None:
        return NONE_DEFAULT_KINDS.get(key)
    if isinstance(default, bool):
        return BOOL
    if isinstance(default, int):
        return INT
    if isinstance(default, float):
        return NUMBER
    if isinstance(default, str):
        return STR
    if isinstance(default, dict):
        return DICT
    if isinstance(default, list):
        if key in EMPTY_LIST_KINDS:
            return EMPTY_LIST_KINDS[key]
        if default and all(is_number(item) for item in default):
            return LIST_NUMBER
        return LIST_STR
    return None


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

    defaults: dict[str, Any]
    kinds: dict[str, Kind | None]

    @classmethod
    def load(cls, all_py: Path | None = None) -> "Schema":
        defaults = read_defaults(all_py)
        kinds: dict[str, Kind | None] = dict(pyinfra_keys())
        kinds.update({key: kind_of_default(key, value) for key, value in defaults.items()})
        return cls(defaults, kinds)
