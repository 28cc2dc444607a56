"""`llamafleet check`: every rule an inventory must pass before any host is touched.

Offline: reads the inventory and group data (llamafleet.inventory_data), never connects.
Each rule returns Problems ("host: key: message"); deploy.py runs `validate_inventory` (or
`validate_hosts` on the inventory pyinfra loaded) as its first step and stops on any problem.

How a host is known to be a Termux phone offline: it is in the inventory group `termux`
(see inventory/example.py). Facts are not available here; the plan re-checks with them.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from llamafleet.inventory_data import (
    InventoryError,
    InventoryHost,
    ShadowedKey,
    load_inventory_full,
    read_defaults,
)
from llamafleet.plan import (
    cluster_address_of,
    effective_bind,
    effective_transport,
    host_port,
    is_loopback,
    is_wildcard,
    worker_port,
)

CLUSTER = "cluster"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the inventory. `host` is a host name or "cluster"."""

    host: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.host}: {self.key}: {self.message}"


# --- Types ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """An accepted type of a data value; None ("decided by llamafleet") is always accepted."""

    name: str
    accepts: Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


STR = Kind("a string", lambda v: isinstance(v, str))
INT = Kind("an integer", _is_int)
NUMBER = Kind("a number", _is_number)
BOOL = Kind("True or False", lambda v: isinstance(v, bool))
DICT = Kind("a dict", lambda v: isinstance(v, dict))
LIST_STR = Kind("a list of strings", lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v))
LIST_NUMBER = Kind("a list of numbers", lambda v: isinstance(v, list) and all(_is_number(i) for i in v))

# Keys whose default in group_data/all.py is None (or an empty list) say nothing about their type:
# this table does. tests/unit/test_check_rules.py fails when all.py gains a key missing here.
NONE_DEFAULT_KINDS: dict[str, Kind] = {
    "cluster_address": STR,
    "llama_cpp_ref": STR,
    "llama_cpp_archive": STR,
    "llamafleet_dir": STR,
    "llama_cpu_arch": STR,
    "llama_cpu_mcpu": STR,
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
        if default and all(_is_number(item) for item in default):
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


# --- Value rules ---------------------------------------------------------------------------------

PORT_KEYS = ("rpc_port", "rpc_port_base", "llama_server_port", "ssh_port")

# key: (low, high, low inclusive, high inclusive); None = unbounded.
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "rpc_ram_fraction": (0, 0.95, False, True),
    "rpc_overhead_mb": (0, None, True, True),
    "rpc_threads": (1, None, True, True),
    "llama_build_jobs": (1, None, True, True),
    "ram_mb": (0, None, False, True),
    "model_size_mb": (0, None, False, True),
    "llama_server_ctx": (1, None, True, True),
    "termux_boot_network_wait": (0, None, True, True),
    **{key: (1, 65535, True, True) for key in PORT_KEYS},
}

CHOICES: dict[str, tuple[str, ...]] = {
    "llama_role": ("master", "worker"),
    "rpc_transport": ("direct", "tunnel"),
    "llama_load_mode": ("auto", "none", "mmap", "mlock", "mmap+mlock", "dio"),
    "firewall_backend": ("iptables", "nftables", "ufw", "firewalld"),
    "service_manager": ("termux-services", "systemd", "runit"),
}

# Service managers a platform can have: Termux has no systemd and no root for Debian's runit.
PLATFORM_SERVICE_MANAGERS = {"termux": ("termux-services",), "linux": ("systemd", "runit")}

# Values that must be one for the whole cluster (RPC needs one protocol version; one model).
CLUSTER_WIDE_KEYS = ("llama_cpp_ref", "llama_cpp_archive", "model_url", "model_file", "model_sha256")

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def is_ip_or_hostname(value: str) -> bool:
    """An IPv4/IPv6 address (IPv6 optionally in brackets, both of them) or an RFC 1123 host name."""
    bracketed = value.startswith("[") and value.endswith("]")
    try:
        ipaddress.ip_address(value[1:-1] if bracketed else value)
        return True
    except ValueError:
        pass
    if not value or len(value) > 253 or value.replace(".", "").isdigit():
        return False
    return all(_HOSTNAME_LABEL.fullmatch(label) for label in value.rstrip(".").split("."))


def _in_range(value: float, rule: tuple[float | None, float | None, bool, bool]) -> bool:
    low, high, low_inclusive, high_inclusive = rule
    if low is not None and (value < low or (value == low and not low_inclusive)):
        return False
    if high is not None and (value > high or (value == high and not high_inclusive)):
        return False
    return True


def _describe_range(rule: tuple[float | None, float | None, bool, bool]) -> str:
    low, high, low_inclusive, high_inclusive = rule
    if high is None:
        return f"{'at least' if low_inclusive else 'more than'} {low:g}"
    left, right = ("[" if low_inclusive else "("), ("]" if high_inclusive else ")")
    return f"in {left}{low:g}, {high:g}{right}"


def _suggest(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _local_path(path: str) -> Path:
    """A controller-side path from data: `~` expanded, relative to the current directory."""
    return Path(os.path.expanduser(path))


class _Checker:
    """Runs the rules over the hosts and collects Problems."""

    def __init__(self, hosts: list[InventoryHost], schema: Schema) -> None:
        self.hosts = hosts
        self.schema = schema
        self.problems: list[Problem] = []
        # (host, key) whose value failed a type/range/choice rule: later rules ignore it so one
        # mistake gives one line, not a cascade.
        self.bad: set[tuple[str, str]] = set()

    def report(self, host: str, key: str, message: str) -> None:
        self.problems.append(Problem(host, key, message))

    def bad_value(self, host: InventoryHost, key: str, message: str) -> None:
        self.bad.add((host.name, key))
        where = host.where(key)
        origin = f" (set in {where})" if where not in ("host data", "unknown") else ""
        self.report(host.name, key, f"{message}{origin}")

    def value(self, host: InventoryHost, key: str) -> Any:
        """The host's value for key, or None when it was reported as bad."""
        if (host.name, key) in self.bad:
            return None
        return host.data.get(key)

    def clean(self, host: InventoryHost) -> dict[str, Any]:
        """The host's data without the values already reported as bad."""
        return {key: value for key, value in host.data.items() if (host.name, key) not in self.bad}

    # -- per host ----------------------------------------------------------------------------

    def check_keys_and_types(self, host: InventoryHost) -> None:
        known = self.schema.kinds
        for key, value in host.data.items():
            if key not in known:
                self.bad_value(host, key, f"unknown key{_suggest(key, known)}")
                continue
            kind = known[key]
            if value is not None and kind is not None and not kind.accepts(value):
                self.bad_value(host, key, f"must be {kind.name}, not {type(value).__name__} {value!r}")

    def check_ranges_and_choices(self, host: InventoryHost) -> None:
        for key, rule in RANGES.items():
            value = self.value(host, key)
            if _is_number(value) and not _in_range(value, rule):
                self.bad_value(host, key, f"{value!r} is out of range: must be {_describe_range(rule)}")
        for key, choices in CHOICES.items():
            value = self.value(host, key)
            if value is not None and value not in choices:
                self.bad_value(
                    host, key, f"{value!r} is not one of {', '.join(choices)}{_suggest(value, choices)}"
                )
        manager = self.value(host, "service_manager")
        platform = "termux" if host.is_termux else "linux"
        if manager in CHOICES["service_manager"] and manager not in PLATFORM_SERVICE_MANAGERS[platform]:
            self.bad_value(host, "service_manager", f"{manager!r} does not exist on a {platform} host; "
                           f"use {' or '.join(PLATFORM_SERVICE_MANAGERS[platform])}")

    def check_addresses(self, host: InventoryHost) -> None:
        for key in ("cluster_address", "llama_server_host", "rpc_bind"):
            value = self.value(host, key)
            if value is not None and not is_ip_or_hostname(value):
                self.bad_value(host, key, f"{value!r} is not an IP address or host name")
        for source in self.value(host, "api_allowed_sources") or []:
            try:
                ipaddress.ip_network(source, strict=False)
            except ValueError:
                self.bad_value(host, "api_allowed_sources", f"{source!r} is not an address or CIDR")

    def check_sources(self, host: InventoryHost) -> None:
        """llama.cpp source: a git ref or an archive on the controller, not both, not neither."""
        if {(host.name, "llama_cpp_ref"), (host.name, "llama_cpp_archive")} & self.bad:
            return  # already reported as malformed
        ref = self.value(host, "llama_cpp_ref")
        archive = self.value(host, "llama_cpp_archive")
        if not ref and not archive:
            self.report(host.name, "llama_cpp_ref",
                        "no llama.cpp source: set llama_cpp_ref (a tag or commit) or llama_cpp_archive")
        elif ref and archive:
            self.report(host.name, "llama_cpp_archive",
                        f"both llama_cpp_ref ({ref!r}) and llama_cpp_archive are set: keep one")
        elif archive and not _local_path(archive).is_file():
            self.report(host.name, "llama_cpp_archive", f"{archive}: no such file on the controller")

    def check_model(self, host: InventoryHost) -> None:
        if {(host.name, "model_url"), (host.name, "model_file")} & self.bad:
            return  # already reported as malformed
        url = self.value(host, "model_url")
        model_file = self.value(host, "model_file")
        sha = self.value(host, "model_sha256")
        if not url and not model_file:
            self.report(host.name, "model_url", "no model: set model_url (+ model_sha256) or model_file")
        elif url and model_file:
            self.report(host.name, "model_file", "both model_url and model_file are set: keep one")
        elif model_file and not _local_path(model_file).is_file():
            self.report(host.name, "model_file", f"{model_file}: no such file on the controller")
        elif url and not sha:
            self.report(host.name, "model_sha256",
                        "model_url without model_sha256: a download must be checked")
        if sha and not _SHA256.fullmatch(sha):
            self.bad_value(host, "model_sha256", f"{sha!r} is not a sha256 (64 hex digits)")

    # -- cluster -------------------------------------------------------------------------------

    def check_roles(self) -> tuple[InventoryHost | None, list[InventoryHost]]:
        """Exactly one master, at least one worker. Returns (master, workers in rank order)."""
        masters = [h for h in self.hosts if self.value(h, "llama_role") == "master"]
        workers = [h for h in self.hosts if h not in masters]
        if not masters:
            self.report(CLUSTER, "llama_role", 'no master: set llama_role = "master" on one host')
        for extra in masters[1:]:
            self.report(extra.name, "llama_role",
                        f"second master ({masters[0].name} is master already): exactly one allowed")
        if not workers:
            self.report(CLUSTER, "llama_role", "no workers: the master needs at least one RPC worker")
        return (masters[0] if masters else None), workers

    def check_cluster_wide(self, master: InventoryHost | None) -> None:
        reference = master or (self.hosts[0] if self.hosts else None)
        if reference is None:
            return
        for key in CLUSTER_WIDE_KEYS:
            expected = self.value(reference, key)
            for host in self.hosts:
                if host is reference or (host.name, key) in self.bad or (reference.name, key) in self.bad:
                    continue  # a value already reported as malformed is not compared again
                value = self.value(host, key)
                if value != expected:
                    self.report(host.name, key, f"{value!r} differs from {expected!r} on {reference.name}: "
                                "one cluster needs one llama.cpp source and one model")

    def check_tensor_split(self, master: InventoryHost, worker_count: int) -> None:
        split = self.value(master, "llama_tensor_split")
        if split is None:
            return
        if len(split) != worker_count:
            self.report(master.name, "llama_tensor_split",
                        f"{len(split)} proportions for {worker_count} workers: one per worker, in rank order")
        if any(share < 0 for share in split):
            self.report(master.name, "llama_tensor_split", "proportions cannot be negative")
        if abs(sum(split) - 1) > 0.001:
            self.report(master.name, "llama_tensor_split", f"proportions sum to {sum(split):g}, must be 1")

    def check_workers(self, master: InventoryHost | None, workers: list[InventoryHost]) -> None:
        """Bind/transport security, Termux ports, and port clashes across the cluster."""
        listeners = _Listeners(self)
        sshd_seen: set[tuple[str, int]] = set()
        for host in self.hosts:
            port = self.value(host, "ssh_port") or 22
            machine = cluster_address_of(host.name, self.clean(host))
            # "@local", "@docker/..." hosts have no sshd; two inventory names for one machine
            # share its sshd.
            if not host.name.startswith("@") and (machine, port) not in sshd_seen:
                sshd_seen.add((machine, port))
                listeners.add(host, "ssh_port", "*", port, f"{host.name}'s sshd")
        if master is not None:
            data = self.clean(master)
            api_port = data.get("llama_server_port")
            api_host = data.get("llama_server_host") or cluster_address_of(master.name, data)
            if api_port:
                listeners.add(master, "llama_server_port", api_host, api_port,
                              f"{master.name}'s llama-server")
                self.check_termux_port(master, "llama_server_port", api_port)
        for rank, host in enumerate(workers, start=1):
            data = self.clean(host)
            platform = "termux" if host.is_termux else "linux"
            transport = effective_transport(data, platform)
            address = cluster_address_of(host.name, data)
            bind = effective_bind(data, transport, address)
            port = worker_port(data, rank)
            port_key = "rpc_port" if data.get("rpc_port") is not None else "rpc_port_base"
            self.check_bind(host, master, transport, bind)
            if port is None or {(host.name, "rpc_port"), (host.name, "rpc_port_base")} & self.bad:
                continue  # no port, or one already reported as malformed
            if not 1 <= port <= 65535:
                self.report(host.name, port_key, f"rank {rank} gets port {port}, outside 1..65535")
                continue
            self.check_termux_port(host, port_key, port)
            listeners.add(host, port_key, bind, port, f"{host.name}'s RPC server")
            if transport == "tunnel" and master is not None:
                listeners.add(host, port_key, "127.0.0.1", port,
                              f"{master.name}'s tunnel to {host.name}", machine_of=master)

    def check_termux_port(self, host: InventoryHost, key: str, port: int) -> None:
        if host.is_termux and port < 1024:
            self.report(host.name, key, f"port {port} is below 1024: Termux has no root to bind it")

    def check_bind(
        self, host: InventoryHost, master: InventoryHost | None, transport: str, bind: str
    ) -> None:
        data = self.clean(host)
        insecure_ok = bool(data.get("rpc_allow_insecure"))
        bind_key = "rpc_bind" if data.get("rpc_bind") else "rpc_transport"
        advice = ("keep the default: rpc_transport 'tunnel' with RPC bound to 127.0.0.1, "
                  "or set rpc_allow_insecure = True")
        if host.is_termux and not is_loopback(bind) and not insecure_ok:
            what = "every network" if is_wildcard(bind) else bind
            self.report(host.name, bind_key, f"RPC (no authentication) would listen on {what} of a phone "
                        f"that cannot firewall; {advice}")
        elif is_wildcard(bind) and data.get("firewall_enabled") is False and not insecure_ok:
            self.report(host.name, "rpc_bind", "0.0.0.0 with firewall_enabled = False exposes RPC "
                        "(no authentication) to every network; enable the firewall, bind the cluster "
                        "address or set rpc_allow_insecure = True")
        if transport == "direct" and is_loopback(bind) and master is not None:
            master_machine = cluster_address_of(master.name, self.clean(master))
            if master_machine != cluster_address_of(host.name, data):
                self.report(host.name, bind_key, f"direct transport with loopback bind {bind}: "
                            f"{master.name} cannot reach it; bind the cluster address or use 'tunnel'")

    def run(self) -> list[Problem]:
        for host in self.hosts:
            self.check_keys_and_types(host)
            self.check_ranges_and_choices(host)
            self.check_addresses(host)
            self.check_sources(host)
            self.check_model(host)
        if not self.hosts:
            self.report(CLUSTER, "inventory", "no hosts in the inventory")
            return self.problems
        master, workers = self.check_roles()
        self.check_cluster_wide(master)
        if master is not None:
            self.check_tensor_split(master, len(workers))
        self.check_workers(master, workers)
        return self.problems


class _Listeners:
    """Ports that will be listened on, per machine (a machine = a cluster address), to find
    two listeners on one address:port. A wildcard address collides with every address."""

    def __init__(self, checker: _Checker) -> None:
        self.checker = checker
        self.taken: dict[tuple[str, int], list[tuple[str, str]]] = {}

    def add(self, host: InventoryHost, key: str, address: str, port: int, label: str,
            machine_of: InventoryHost | None = None) -> None:
        owner = machine_of or host
        machine = cluster_address_of(owner.name, self.checker.clean(owner))
        address = "*" if is_wildcard(address) else address
        for other_address, other_label in self.taken.get((machine, port), []):
            if "*" in (address, other_address) or address == other_address:
                shown = host_port(other_address if address == "*" else address, port)
                self.checker.report(host.name, key, f"{label} on {shown} clashes with {other_label} "
                                    f"(same machine {machine})")
                return
        self.taken.setdefault((machine, port), []).append((address, label))


def validate_hosts(hosts: list[InventoryHost], all_py: Path | None = None) -> list[Problem]:
    """Run every rule over already-loaded hosts (e.g. from the inventory pyinfra loaded)."""
    return _Checker(hosts, Schema.load(all_py)).run()


def validate_pyinfra_inventory(inventory: Any) -> list[Problem]:
    """Validate the `Inventory` pyinfra has loaded (deploy.py's first step: `from pyinfra import
    inventory`). Same rules as `llamafleet check`, except the shadowed-key rule, which needs the
    inventory file."""
    from llamafleet.inventory_data import hosts_from_inventory

    return validate_hosts(hosts_from_inventory(inventory))


def shadowed_problems(shadowed: list[ShadowedKey]) -> list[Problem]:
    """An inventory value that a group data file silently replaces is a mistake to point out."""
    return [
        Problem(CLUSTER, item.key, f"{item.inventory_value!r} in the inventory's group '{item.group}' "
                f"is replaced by {item.effective_value!r} from group_data/{item.group}.py (pyinfra "
                "loads group data files over inventory group data); set it in one place")
        for item in shadowed
    ]


def validate_inventory(
    path: str | os.PathLike, group_data_dir: str | os.PathLike | None = None
) -> list[Problem]:
    """Load an inventory offline and return its problems (empty: the inventory is fine)."""
    try:
        loaded = load_inventory_full(path, group_data_dir)
    except InventoryError as error:
        return [Problem(CLUSTER, "inventory", str(error))]
    return shadowed_problems(loaded.shadowed) + validate_hosts(loaded.hosts)


def summary(hosts: list[InventoryHost]) -> str:
    """One line for a clean inventory: hosts, master, workers, model, llama.cpp source."""
    master = next((h for h in hosts if h.data.get("llama_role") == "master"), None)
    workers = [h.name for h in hosts if h is not master]
    data: Mapping[str, Any] = master.data if master else {}
    model = os.path.basename(data.get("model_file") or data.get("model_url") or "?")
    source = data.get("llama_cpp_ref") or os.path.basename(data.get("llama_cpp_archive") or "?")
    return (f"ok: {len(hosts)} hosts, master {master.name if master else '?'}, "
            f"workers {', '.join(workers)}, model {model}, ref {source}")
