"""Rules about one host's own data: known keys and their types, ranges and choices, addresses,
values that reach the device, the llama.cpp source, the model, and how a phone is logged into.

How a host is known to be a Termux phone offline: it is in the inventory group `termux` (see
inventory/example.py). Facts are not available here; the plan re-checks with them.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from pathlib import Path
from typing import Iterable

from llamafleet.inventory_data import InventoryHost
from llamafleet.layout import model_file_name
from llamafleet.validate.controller_files import check_controller_files
from llamafleet.validate.findings import Findings
from llamafleet.validate.patterns import (
    DEVICE_LIST_RULES,
    DEVICE_VALUE_RULES,
    file_name_problem,
    is_ip_or_hostname,
    sha256_problem,
)
from llamafleet.validate.schema import Schema, is_number

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

# An app cannot bind below this port without root: Termux's sshd, RPC and the API stay above.
TERMUX_LOWEST_PORT = 1024


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


def suggest(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _local_path(path: str) -> Path:
    """A controller-side path from data: `~` expanded, relative to the current directory."""
    return Path(os.path.expanduser(path))


def check_keys_and_types(findings: Findings, host: InventoryHost, schema: Schema) -> None:
    known = schema.kinds
    for key, value in host.data.items():
        if key not in known:
            findings.bad_value(host, key, f"unknown key{suggest(key, known)}")
            continue
        kind = known[key]
        if value is not None and kind is not None and not kind.accepts(value):
            findings.bad_value(host, key, f"must be {kind.name}, not {type(value).__name__} {value!r}")


def check_ranges_and_choices(findings: Findings, host: InventoryHost) -> None:
    for key, rule in RANGES.items():
        value = findings.value(host, key)
        if is_number(value) and not _in_range(value, rule):
            findings.bad_value(host, key, f"{value!r} is out of range: must be {_describe_range(rule)}")
    for key, choices in CHOICES.items():
        value = findings.value(host, key)
        if value is not None and value not in choices:
            findings.bad_value(
                host, key, f"{value!r} is not one of {', '.join(choices)}{suggest(value, choices)}"
            )
    manager = findings.value(host, "service_manager")
    platform = "termux" if host.is_termux else "linux"
    if manager in CHOICES["service_manager"] and manager not in PLATFORM_SERVICE_MANAGERS[platform]:
        findings.bad_value(host, "service_manager", f"{manager!r} does not exist on a {platform} host; "
                           f"use {' or '.join(PLATFORM_SERVICE_MANAGERS[platform])}")


def check_addresses(findings: Findings, host: InventoryHost) -> None:
    for key in ("cluster_address", "llama_server_host", "rpc_bind"):
        value = findings.value(host, key)
        if value is not None and not is_ip_or_hostname(value):
            findings.bad_value(host, key, f"{value!r} is not an IP address or host name")
    for source in findings.value(host, "api_allowed_sources") or []:
        try:
            ipaddress.ip_network(source, strict=False)
        except ValueError:
            findings.bad_value(host, "api_allowed_sources", f"{source!r} is not an address or CIDR")


def check_device_values(findings: Findings, host: InventoryHost) -> None:
    """Names, paths, refs, URLs, CPU names, packages and CMake arguments that reach the device."""
    for key, problem_of in DEVICE_VALUE_RULES.items():
        value = findings.value(host, key)
        if isinstance(value, str) and (problem := problem_of(value)):
            findings.bad_value(host, key, f"{value!r} {problem}")
    for key, problem_of in DEVICE_LIST_RULES.items():
        for item in findings.value(host, key) or []:
            if isinstance(item, str) and (problem := problem_of(item)):
                findings.bad_value(host, key, f"{item!r} {problem}")


def check_sources(findings: Findings, host: InventoryHost) -> None:
    """llama.cpp source: a git ref or an archive on the controller, not both, not neither."""
    if findings.is_bad(host, "llama_cpp_ref", "llama_cpp_archive"):
        return  # already reported as malformed
    ref = findings.value(host, "llama_cpp_ref")
    archive = findings.value(host, "llama_cpp_archive")
    if not ref and not archive:
        findings.report(host.name, "llama_cpp_ref",
                        "no llama.cpp source: set llama_cpp_ref (a tag or commit) or llama_cpp_archive")
    elif ref and archive:
        findings.report(host.name, "llama_cpp_archive",
                        f"both llama_cpp_ref ({ref!r}) and llama_cpp_archive are set: keep one")
    elif archive and not _local_path(archive).is_file():
        findings.report(host.name, "llama_cpp_archive", f"{archive}: no such file on the controller")


def check_model(findings: Findings, host: InventoryHost) -> None:
    if findings.is_bad(host, "model_url", "model_file"):
        return  # already reported as malformed
    url = findings.value(host, "model_url")
    model_file = findings.value(host, "model_file")
    sha = findings.value(host, "model_sha256")
    if not url and not model_file:
        findings.report(host.name, "model_url", "no model: set model_url (+ model_sha256) or model_file")
    elif url and model_file:
        findings.report(host.name, "model_file", "both model_url and model_file are set: keep one")
    elif model_file and not _local_path(model_file).is_file():
        findings.report(host.name, "model_file", f"{model_file}: no such file on the controller")
    elif url and not sha:
        findings.report(host.name, "model_sha256",
                        "model_url without model_sha256: a download must be checked")
    if sha and (problem := sha256_problem(sha)):
        findings.bad_value(host, "model_sha256", f"{sha!r} {problem}")
    if host.data.get("model_name") is None:
        # Without model_name the device file is named after the source's last part.
        name = model_file_name(findings.clean(host))
        if name and (problem := file_name_problem(name)):
            key = "model_file" if model_file else "model_url"
            findings.bad_value(host, key, f"its file name {name!r} {problem}; set model_name")


def check_termux_login(findings: Findings, host: InventoryHost) -> None:
    """pyinfra's defaults (port 22, /tmp) cannot work on a phone: the inventory must say."""
    if not host.is_termux:
        return
    port = findings.value(host, "ssh_port")
    # "@local"-style hosts are not reached over SSH.
    if not host.name.startswith("@") and not findings.is_bad(host, "ssh_port"):
        if port is None:
            findings.report(host.name, "ssh_port", "not set: pyinfra would log in on port 22, where "
                            "Termux's sshd cannot listen (no root); set the port it listens on "
                            "(8022 unless started with -p)")
        elif port < TERMUX_LOWEST_PORT:
            findings.bad_value(host, "ssh_port", f"port {port} is below 1024: Termux's sshd cannot "
                               "listen there (no root); it listens on 8022 unless started with -p")
    if host.data.get("_temp_dir") is None and not findings.is_bad(host, "_temp_dir"):
        findings.report(host.name, "_temp_dir", "not set: pyinfra would put its temporary files in "
                        "/tmp, which Android does not let an app write; set it to Termux's "
                        "$PREFIX/tmp, as inventory/example.py does")


def check_host(findings: Findings, host: InventoryHost, schema: Schema) -> None:
    """Every rule about one host, in the order its lines are printed."""
    check_keys_and_types(findings, host, schema)
    check_ranges_and_choices(findings, host)
    check_addresses(findings, host)
    check_device_values(findings, host)
    check_sources(findings, host)
    check_model(findings, host)
    check_controller_files(findings, host)
    check_termux_login(findings, host)
