"""Load a pyinfra inventory and its group data offline, the way `pyinfra INVENTORY deploy.py` would.

Nothing here connects to a host: pyinfra's own inventory loader runs inside a fresh `State()`
context, so the data each host sees (host data > later group > earlier group > `all`) is exactly
pyinfra's, including its surprises (dicts replaced, not merged). That loader is the one use of
pyinfra CLI internals (see make_pyinfra_inventory); it is why pyinfra is pinned to 3.10.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The group that marks a host as a Termux phone when no facts are at hand (offline `check`,
# planning from data). One rule, documented in inventory/example.py: put phones in `termux`.
TERMUX_GROUP = "termux"

# The llamafleet source tree's own group data: the contract every module reads (group_data/all.py).
REPO_GROUP_DATA = Path(__file__).resolve().parent.parent / "group_data"


class InventoryError(Exception):
    """The inventory or its group data cannot be loaded (missing file, Python error in it)."""


@dataclass(frozen=True)
class InventoryHost:
    """One host as the deploy would see it.

    + name: the inventory name (pyinfra's `host.name`)
    + groups: the groups it belongs to, in inventory order (later groups win)
    + data: the merged data (`host.data.dict()`), including the defaults from group_data/all.py
    + origins: for each key, where its winning value was set ("host data", "group 'termux'", "all")
    """

    name: str
    groups: tuple[str, ...]
    data: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)

    @property
    def is_termux(self) -> bool:
        """A host is a Termux phone when it belongs to the `termux` group (see TERMUX_GROUP)."""
        return TERMUX_GROUP in self.groups

    def where(self, key: str) -> str:
        """Where the key's value came from, for error messages."""
        return self.origins.get(key, "unknown")


def default_group_data_dir() -> Path:
    """The deploy's group data: the source tree's group_data/, else ./group_data."""
    if REPO_GROUP_DATA.is_dir():
        return REPO_GROUP_DATA
    return Path.cwd() / "group_data"


def read_defaults(all_py: Path | None = None) -> dict[str, Any]:
    """Return the module-level names of group_data/all.py with their default values.

    The file is parsed, not executed: every default there is a literal, and parsing keeps the
    key list the single source of truth without running user code.
    """
    path = Path(all_py) if all_py else REPO_GROUP_DATA / "all.py"
    if not path.is_file():
        raise InventoryError(f"{path}: the defaults file (group_data/all.py) is missing")
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    defaults: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and not target.id.startswith("_"):
                try:
                    defaults[target.id] = ast.literal_eval(value)
                except ValueError:
                    # A computed default: the key is known, its type is not checked.
                    defaults[target.id] = None
    return defaults


def _layers(inventory: Any, pyinfra_host: Any) -> list[tuple[str, dict[str, Any]]]:
    """The data layers of one host, highest precedence first (pyinfra's HostData order)."""
    layers = [
        ("--data override", inventory.get_override_data()),
        ("host data", inventory.get_host_data(pyinfra_host.name)),
    ]
    for group in reversed(pyinfra_host.groups):
        layers.append((f"group '{group}'", inventory.get_group_data(group)))
    layers.append(("all", inventory.get_data()))
    return layers


def hosts_from_inventory(inventory: Any) -> list[InventoryHost]:
    """Turn a pyinfra `Inventory` into InventoryHosts, in inventory order.

    deploy.py can call this on the inventory pyinfra already loaded, so the validation it runs
    first sees the same data as `llamafleet check`.
    """
    hosts = []
    for pyinfra_host in inventory:
        origins: dict[str, str] = {}
        for label, layer in reversed(_layers(inventory, pyinfra_host)):
            for key in layer:
                origins[key] = label
        hosts.append(
            InventoryHost(
                name=pyinfra_host.name,
                groups=tuple(pyinfra_host.groups),
                data=pyinfra_host.data.dict(),
                origins=origins,
            )
        )
    return hosts


def make_pyinfra_inventory(path: str | os.PathLike, group_data_dir: str | os.PathLike | None = None):
    """Build pyinfra's `Inventory` from an inventory file plus group data, without connecting.

    Group data is read from the inventory's own folder (`<dir>/group_data`, as pyinfra does) and
    from `group_data_dir` (default: the deploy's group_data/, as if pyinfra ran from the source
    tree). Must be called inside a State context (see `load_inventory`).
    """
    # pyinfra's public API (pyinfra.api.Inventory) takes hosts and data already in Python; only
    # its CLI reads an inventory file and the group_data folders, merged the way a deploy sees
    # them. No public function does that, so this is llamafleet's one import of pyinfra_cli.
    from pyinfra_cli.inventory import make_inventory_from_files

    inventory_path = Path(path)
    if not inventory_path.is_file():
        raise InventoryError(f"{inventory_path}: no such inventory file")
    if group_data_dir is None:
        gd_dir = default_group_data_dir()
        # Loaded like pyinfra's `cwd/group_data`: before the inventory folder's group data.
        kwargs = {"cwd": str(gd_dir.parent), "group_data_directories": None}
    else:
        gd_dir = Path(group_data_dir)
        if not gd_dir.is_dir():
            raise InventoryError(f"{gd_dir}: no such group data directory")
        # Like `pyinfra --group-data DIR`: loaded last, so it wins over other group data.
        kwargs = {"cwd": None, "group_data_directories": [str(gd_dir)]}
    try:
        return make_inventory_from_files(str(inventory_path), **kwargs)
    except Exception as error:  # user code in the inventory or group data failed
        raise InventoryError(f"{inventory_path}: cannot load: {_describe(error)}") from error


def deployed_inventory_path(argv: list[str] | None = None, inventory: Any = None) -> Path | None:
    """The inventory file of the `pyinfra INVENTORY deploy.py` run this code runs in, or None:
    not a pyinfra CLI run, or hosts named on the command line instead of a file.

    pyinfra keeps no record of the file it loaded (its State and Inventory hold hosts and data
    only), so pyinfra's own command-line parser reads this process's arguments (`argv`, default
    sys.argv) again. The answer is trusted only when the loaded `inventory` (default: the one
    in pyinfra's context) has the group pyinfra names after that file with every host in it:
    the hosts of `inventory/mine.py` are all in group `mine`.
    """
    import sys

    import pyinfra

    if argv is None:
        if not pyinfra.is_cli:
            return None
        argv = sys.argv[1:]
    if inventory is None:
        from pyinfra.context import ctx_inventory

        inventory = ctx_inventory.get()
        if inventory is None:
            return None
    from pyinfra_cli.cli import cli

    try:
        # resilient_parsing: no callback runs and nothing is printed, as for shell completion.
        name = cli.make_context("pyinfra", list(argv), resilient_parsing=True).params.get("inventory")
    except Exception:  # arguments pyinfra's parser refuses: not a pyinfra command line
        return None
    path = Path(name) if name else None
    if path is None or not path.is_file():
        return None
    named_after = {host.name for host in inventory.get_group(path.name.rsplit(".", 1)[0], [])}
    if not named_after or named_after != {host.name for host in inventory}:
        return None
    return path.resolve()


def _describe(error: BaseException) -> str:
    """A one-line description of an error raised while executing inventory/group data code."""
    cause = error.__cause__ or error.__context__
    inner = getattr(error, "e", None) or cause
    text = f"{type(inner).__name__}: {inner}" if inner else f"{type(error).__name__}: {error}"
    return " ".join(text.split())


@dataclass(frozen=True)
class ShadowedKey:
    """A value set in the inventory's group data that a group_data/<group>.py file replaces.

    pyinfra loads group data files *over* the data of the inventory's `(hosts, data)` tuples,
    even for `all` (group_data/all.py wins over `all = (hosts, {...})`): the inventory's value
    is silently ignored.
    """

    group: str
    key: str
    inventory_value: Any
    effective_value: Any


@dataclass(frozen=True)
class LoadedInventory:
    """The hosts (inventory order), the inventory values group data files replaced, and every
    group's data (as pyinfra merged it), including groups no host belongs to: pyinfra keeps the
    data of a group_data/<name>.py whose group the inventory does not have, and applies it to no
    host."""

    hosts: list[InventoryHost]
    shadowed: list[ShadowedKey]
    group_data: dict[str, dict[str, Any]] = field(default_factory=dict)


def group_data_of(inventory: Any) -> dict[str, dict[str, Any]]:
    """Every group's data in a pyinfra `Inventory`, by group name."""
    return {name: dict(data) for name, data in inventory.group_data.items()}


def inventory_file_groups(path: Path) -> dict[str, tuple[Any, dict[str, Any]]]:
    """The `(hosts, data)` groups an inventory file defines, their data as written.

    The file is executed again, as pyinfra executes it (a fresh namespace with `__file__`):
    pyinfra's loader merges group data files into these very dicts, and keeps no copy.
    Names starting with `_` are not groups, for pyinfra either.
    """
    namespace: dict[str, Any] = {"__file__": str(path)}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return {
        name: value for name, value in namespace.items()
        if not name.startswith("_") and isinstance(value, tuple) and len(value) == 2
        and isinstance(value[0], (list, tuple)) and isinstance(value[1], dict)
    }


def _shadowed_keys(path: Path, inventory: Any) -> list[ShadowedKey]:
    shadowed = []
    for group, (_, written) in inventory_file_groups(path).items():
        effective = inventory.get_data() if group == "all" else inventory.get_group_data(group)
        for key, value in written.items():
            if key in effective and effective[key] != value:
                shadowed.append(ShadowedKey(group, key, value, effective[key]))
    return shadowed


def load_inventory_full(
    path: str | os.PathLike, group_data_dir: str | os.PathLike | None = None
) -> LoadedInventory:
    """Load an inventory file offline: its hosts with merged data, and the shadowed keys."""
    from pyinfra.api import State
    from pyinfra.context import ctx_state

    # pyinfra executes inventory and group data files through its global state object; a fresh
    # State keeps this load from touching any other pyinfra run in the same process.
    with ctx_state.use(State()):
        inventory = make_pyinfra_inventory(path, group_data_dir)
        try:
            shadowed = _shadowed_keys(Path(path), inventory)
        except Exception as error:  # the file loaded once already; a second run should not fail
            raise InventoryError(f"{path}: cannot load: {_describe(error)}") from error
        return LoadedInventory(hosts_from_inventory(inventory), shadowed, group_data_of(inventory))


def load_inventory(
    path: str | os.PathLike, group_data_dir: str | os.PathLike | None = None
) -> list[InventoryHost]:
    """Load an inventory file offline and return its hosts with merged data, in inventory order."""
    return load_inventory_full(path, group_data_dir).hosts
