"""The lab as a pyinfra inventory (used by inventory/lab.py).

Groups `termux` (phones) and `linux` (Linux hosts); the outsider is not in it. Each host gets
its SSH connection data, strict host key checking against the lab's known_hosts, and the
llamafleet data keys that depend on the lab (documented in group_data/all.py).
"""

from __future__ import annotations

from llamafleet_lab.state import LabState, load_state
from llamafleet_lab.termux import TERMUX_TMPDIR
from llamafleet_lab.topology import CONTROLLER_ADDRESS, LabHost


def asset_data() -> dict:
    """llama_cpp_archive, model_file, model_sha256 and llama_chat_template from the lab's assets
    (llamafleet_lab.assets); keys it cannot provide are left out."""
    from llamafleet_lab import assets

    data = {}
    for key, getter in (("llama_cpp_archive", "llama_cpp_archive_path"), ("model_file", "model_path")):
        function = getattr(assets, getter, None)
        if function is None:
            continue
        try:
            value = function()
        except FileNotFoundError:
            continue
        if value:
            data[key] = str(value)
    sha256 = getattr(assets, "MODEL_SHA256", None)
    if sha256:
        data["model_sha256"] = sha256
    template = getattr(assets, "MODEL_CHAT_TEMPLATE", None)
    if template:
        data["llama_chat_template"] = template
    return data


def host_data(state: LabState, host: LabHost, assets: dict) -> dict:
    data = {
        "ssh_hostname": host.address,
        "ssh_port": host.ssh_port,
        "ssh_user": host.user,
        "ssh_key": str(state.ssh_key),
        "ssh_known_hosts_file": str(state.known_hosts),
        "ssh_strict_host_key_checking": "yes",
        "cluster_address": host.address,
        "api_allowed_sources": [CONTROLLER_ADDRESS],
        **assets,
    }
    if not host.is_phone and host.user != "root":
        # An ordinary user with password-less sudo (a systemd host's "FW@USER"): as a Pi's owner.
        data["_sudo"] = True
    if host.is_phone:
        # pyinfra's default temp dir is /tmp, which a Termux app cannot write.
        data["_temp_dir"] = TERMUX_TMPDIR
    if host.name == state.master:
        data["llama_role"] = "master"
    return data


def inventory_groups(state: LabState | None = None) -> dict[str, list[tuple[str, dict]]]:
    """{"termux": [(name, data), ...], "linux": [...]}. Raises LabNotUp when the lab is not up."""
    state = state or load_state()
    assets = asset_data()
    groups: dict[str, list[tuple[str, dict]]] = {"termux": [], "linux": []}
    for host in state.inventory_hosts:
        group = "termux" if host.is_phone else "linux"
        groups[group].append((host.name, host_data(state, host, assets)))
    return groups
