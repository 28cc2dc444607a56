"""Inventory hosts built in code for the check tests: a Linux host, a Termux phone and the
cluster-wide keys every valid host needs, merged over group_data/all.py's defaults."""

from __future__ import annotations

import hashlib

from llamafleet.inventory_data import InventoryHost, read_defaults
from llamafleet.validate import validate_hosts

DEFAULTS = read_defaults()
# Stand-ins of the right shape (check refuses one repeated digit as a placeholder).
SHA = hashlib.sha256(b"m.gguf").hexdigest()
TERMUX_TMP = "/data/data/com.termux/files/usr/tmp"
CLUSTER = {"llama_cpp_ref": "b6500", "model_url": "https://example.invalid/m.gguf", "model_sha256": SHA}


def linux(name: str, address: str, **data) -> InventoryHost:
    return InventoryHost(name, ("linux",), {**DEFAULTS, **CLUSTER, "ssh_hostname": address, **data})


def phone(name: str, address: str, **data) -> InventoryHost:
    return InventoryHost(name, ("termux",), {**DEFAULTS, **CLUSTER, "ssh_hostname": address, "ssh_port": 8022,
                                             "_temp_dir": TERMUX_TMP, **data})


def check(*hosts: InventoryHost) -> list[str]:
    return [str(problem) for problem in validate_hosts(list(hosts))]


MASTER = linux("box", "198.18.0.10", llama_role="master")
