"""Rules about one host's own data: known keys and their kinds, each value against its
declaration (llamafleet.settings: ranges, choices, the patterns of addresses and of values that
reach the device), the llama.cpp source, the model, and how a phone is logged into.

How a host is known to be a Termux phone offline: it is in the inventory group `termux` (see
inventory/example.py). Facts are not available here; the plan re-checks with them.
"""

from __future__ import annotations

import os
from pathlib import Path

from llamafleet.inventory_data import InventoryHost
from llamafleet.layout import model_file_name
from llamafleet.plan.memory import model_size_problem
from llamafleet.settings import BY_NAME, SETTINGS, suggest
from llamafleet.settings.patterns import file_name_problem
from llamafleet.validate.controller_files import check_controller_files
from llamafleet.validate.findings import Findings
from llamafleet.validate.schema import Schema

# Service managers a platform can have: Termux has no systemd and no root for Debian's runit.
PLATFORM_SERVICE_MANAGERS = {"termux": ("termux-services",), "linux": ("systemd", "runit")}

# An app cannot bind below this port without root: Termux's sshd, RPC and the API stay above.
TERMUX_LOWEST_PORT = 1024


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


def check_declared_values(findings: Findings, host: InventoryHost) -> None:
    """Each value against its declaration: range, choices, the pattern of a value that reaches
    the device (names, paths, refs, URLs, CPU names, packages, CMake arguments, addresses)."""
    for setting in SETTINGS:
        for problem in setting.value_problems(findings.value(host, setting.name)):
            findings.bad_value(host, setting.name, problem)
    manager = findings.value(host, "service_manager")
    platform = "termux" if host.is_termux else "linux"
    if manager in BY_NAME["service_manager"].choices and manager not in PLATFORM_SERVICE_MANAGERS[platform]:
        findings.bad_value(host, "service_manager", f"{manager!r} does not exist on a {platform} host; "
                           f"use {' or '.join(PLATFORM_SERVICE_MANAGERS[platform])}")


def check_service_user(findings: Findings, host: InventoryHost) -> None:
    """Who the services run as: root only with the explicit opt-in; on a phone nobody can be
    chosen (the one value set for every host in group_data/all.py is ignored there)."""
    user = findings.value(host, "service_user")
    if host.is_termux:
        if user not in (None, BY_NAME["service_user"].default) and host.where("service_user") != "all":
            findings.bad_value(host, "service_user", f"{user!r}: Termux runs every process as the app's own "
                               "user, the only user an app has: remove service_user for this phone")
        return
    if user == "root" and not findings.settings(host).service_user_allow_root:
        findings.bad_value(host, "service_user", "'root': llama.cpp's RPC has no authentication and has had "
                           "remote-code-execution bugs, so whoever reaches a worker (or exploits llama-server) "
                           "would hold the machine; keep the default 'llamafleet', or set "
                           "service_user_allow_root = True")


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
    elif url and not sha and not findings.is_bad(host, "model_sha256"):
        findings.report(host.name, "model_sha256",
                        "model_url without model_sha256: a download must be checked")
    size = findings.value(host, "model_size_mb")
    if size is not None and not findings.is_bad(host, "model_size_mb") and (problem := model_size_problem(size)):
        findings.bad_value(host, "model_size_mb", f"{size!r} {problem}")
    if host.data.get("model_name") is None:
        # Without model_name the device file is named after the source's last part.
        name = model_file_name(findings.settings(host))
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


def check_privileges(findings: Findings, host: InventoryHost) -> None:
    """A phone has no root and no sudo: with `_sudo` pyinfra would prefix every command with it."""
    if host.is_termux and host.data.get("_sudo") and not findings.is_bad(host, "_sudo"):
        findings.bad_value(host, "_sudo", "a Termux phone has no root and no sudo, so every command "
                           "would fail; remove it (Termux runs everything llamafleet does as the app's user)")


def privilege_warning(host: InventoryHost) -> str | None:
    """What `check` says about a Linux host logged into as an ordinary user without `_sudo`: it
    deploys only as far as the first step that needs root. Only a `ssh_user` set in the data is
    known offline (else SSH's own default user decides, which `check` cannot see)."""
    user = host.data.get("ssh_user")
    if host.is_termux or host.name.startswith("@") or not user or user == "root" or host.data.get("_sudo"):
        return None
    return (f"{host.name}: _sudo: ssh_user {user!r} is not root and _sudo is not set: the deploy cannot "
            "install packages, write /etc (services, sysctl) or set firewall rules there; set "
            "_sudo = True (sudo without a password), as the Pi in inventory/example.py does")


def check_host(findings: Findings, host: InventoryHost, schema: Schema) -> None:
    """Every rule about one host, in the order its lines are printed."""
    check_keys_and_types(findings, host, schema)
    check_declared_values(findings, host)
    check_service_user(findings, host)
    check_sources(findings, host)
    check_model(findings, host)
    check_controller_files(findings, host)
    check_termux_login(findings, host)
    check_privileges(findings, host)
