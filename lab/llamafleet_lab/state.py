"""The lab's state file: what `lab up` created, so that everything else can find it and
`lab down` can remove exactly that.

Layout of the state directory (mode 700, root only):

    state.json                 this module's LabState
    .llamafleet-lab            marker: `lab down` deletes only a directory that has it
    ssh/id_ed25519[.pub]       the lab's login key (for every host)
    ssh/known_hosts            every host's key, for strict host key checking
    hosts/<name>/init.json     the spec the host's init runs (see hostinit.py)
    hosts/<name>/status.json   written by the init after every boot
    hosts/<name>/log/          init.log, sshd.log, runsvdir.log, boot.log, boot-<script>.log
    hosts/<name>/fs/           the host's own storage, bind-mounted inside the host
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from llamafleet_lab.topology import LabHost, state_dir

STATE_FILE = "state.json"
MARKER_FILE = ".llamafleet-lab"
STATE_VERSION = 1


class LabError(Exception):
    """A lab command cannot do what was asked; the message says why and what to do."""


class LabNotUp(LabError):
    """There is no lab (no state file)."""


@dataclass
class LabState:
    """Everything `lab up` created. `phase` is "starting" until every host answers SSH."""

    directory: Path
    phones: int
    linux: int
    hosts: list[LabHost]
    phase: str = "starting"
    systemd: list[str] = field(default_factory=list)  # the firewall of each systemd host sysd<i>
    master: str = "linux1"
    socs: dict[str, str] = field(default_factory=dict)  # ARM phones: phone name → SoC
    profile: str = "none"  # the hosts' speeds (llamafleet_lab.profiles.PROFILES)
    init_pids: dict[str, int] = field(default_factory=dict)
    created_paths: list[str] = field(default_factory=list)
    network_created: bool = False
    started_at: float = 0.0

    # -- paths -------------------------------------------------------------------------------

    @property
    def ssh_key(self) -> Path:
        """The lab's private login key (mode 600)."""
        return self.directory / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "ssh" / "known_hosts"

    def host_dir(self, name: str) -> Path:
        return self.directory / "hosts" / name

    def log_dir(self, name: str) -> Path:
        return self.host_dir(name) / "log"

    # -- lookups -----------------------------------------------------------------------------

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(host.name for host in self.hosts)
        raise LabError(f"no lab host named {name!r} (hosts: {known})")

    def init_pid(self, name: str) -> int:
        self.host(name)
        try:
            return self.init_pids[name]
        except KeyError:
            raise LabError(f"lab host {name} has no running init (is the lab up? see `llamafleet lab status`)") from None

    def boot_status(self, name: str) -> dict:
        """What the host's init wrote after its last boot (boot_count, boot_scripts, pids)."""
        try:
            return json.loads((self.host_dir(name) / "status.json").read_text())
        except FileNotFoundError:
            return {"boot_count": 0}

    @property
    def inventory_hosts(self) -> list[LabHost]:
        """Hosts a deploy targets: every host but the outsider."""
        return [host for host in self.hosts if host.kind != "outsider"]

    # -- persistence -------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "version": STATE_VERSION,
            "phase": self.phase,
            "phones": self.phones,
            "linux": self.linux,
            "systemd": self.systemd,
            "master": self.master,
            "socs": self.socs,
            "profile": self.profile,
            "started_at": self.started_at,
            "hosts": [host.to_dict() for host in self.hosts],
            "init_pids": self.init_pids,
            "created_paths": self.created_paths,
            "network_created": self.network_created,
            "ssh_key": str(self.ssh_key),
            "known_hosts": str(self.known_hosts),
        }

    def save(self) -> None:
        """Write state.json atomically (readers never see half a file)."""
        path = self.directory / STATE_FILE
        temporary = path.with_suffix(".new")
        temporary.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)


def load_state(directory: Path | None = None) -> LabState:
    """The lab's state. Raises LabNotUp, with what to do, when there is no lab."""
    directory = directory or state_dir()
    path = directory / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabNotUp(f"the lab is not up (no {path}): run `llamafleet lab up` first") from None
    except PermissionError:
        raise LabError(f"cannot read {path}: the lab's state is readable by root only") from None
    if data.get("version") != STATE_VERSION:
        raise LabError(f"{path} has state version {data.get('version')}, expected {STATE_VERSION}: run `llamafleet lab down`")
    return LabState(
        directory=directory,
        phones=data["phones"],
        linux=data["linux"],
        systemd=list(data.get("systemd", [])),
        master=data.get("master", "linux1"),
        socs=dict(data.get("socs", {})),
        profile=data.get("profile", "none"),
        hosts=[LabHost.from_dict(host) for host in data["hosts"]],
        phase=data["phase"],
        init_pids={name: int(pid) for name, pid in data["init_pids"].items()},
        created_paths=list(data["created_paths"]),
        network_created=bool(data["network_created"]),
        started_at=float(data.get("started_at", 0.0)),
    )
