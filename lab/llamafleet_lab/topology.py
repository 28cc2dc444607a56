"""Who is in the lab: names, kinds, addresses, ports and users of the simulated hosts.

Pure data, no side effects: `plan_hosts(phones, linux)` decides the whole layout, and every
other lab module (network, storage, inventory) reads it from there.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

# The lab lives on the RFC 2544 benchmarking range: it never collides with a real LAN and no
# packet for it should ever leave this machine.
SUBNET = ipaddress.ip_network("198.18.0.0/24")
CONTROLLER_ADDRESS = "198.18.0.1"

# Names of the pieces the lab adds to the machine. One prefix, so `lab down` (and a human) can
# find leftovers of a crashed lab by name.
BRIDGE = "lflab0"
NETNS_PREFIX = "lflab-"
VETH_PREFIX = "lfl-"
NFT_TABLE = "llamafleet_lab"

PHONE_SSH_PORT = 8022  # Termux's sshd: an app cannot bind ports below 1024
LINUX_SSH_PORT = 22

# Address plan inside SUBNET: linux<i> = .10+i, phone<i> = .100+i, sysd<i> = .230+i, outsider = .250.
_LINUX_BASE = 10
_PHONE_BASE = 100
_SYSTEMD_BASE = 230
_OUTSIDER_HOST = 250
MAX_LINUX = 80
MAX_PHONES = 99
MAX_SYSTEMD = 19

# What a systemd host (a Debian box booting systemd, sysd<i>) runs as its firewall: nothing,
# ufw enabled (default deny incoming, SSH allowed), or firewalld in its default zone.
SYSTEMD_FIREWALLS = ("none", "ufw", "firewalld")
# "FW@USER": the host's owner logs in as USER, an ordinary user with sudo (as on a Raspberry Pi),
# instead of root. Ordinary users of a Debian box get uids from 1000.
SUDO_USER_UID = 1000


def parse_systemd_host(spec: str) -> tuple[str, str | None]:
    """("ufw", "alice") from "ufw@alice"; ("none", None) from "none". ValueError when unknown."""
    firewall, _, user = spec.partition("@")
    if firewall not in SYSTEMD_FIREWALLS:
        raise ValueError(f"--systemd: unknown firewall {firewall!r} (one of {', '.join(SYSTEMD_FIREWALLS)})")
    if user and not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user) or user == "root":
        raise ValueError(f"--systemd: {user!r} is not an ordinary user name (FW@USER, e.g. ufw@alice)")
    return firewall, user or None

# Android gives app <N> the uid 10000+N and the name u0_a<N>; the lab's phones are apps 201, 202...
_ANDROID_APP_UID_BASE = 10000
_FIRST_PHONE_APP_ID = 201

KINDS = ("phone", "linux", "outsider")

DEFAULT_STATE_DIR = Path("/var/lib/llamafleet-lab")
STATE_DIR_ENV = "LLAMAFLEET_LAB_DIR"


def state_dir() -> Path:
    """The lab's state directory: $LLAMAFLEET_LAB_DIR, else /var/lib/llamafleet-lab."""
    override = os.environ.get(STATE_DIR_ENV)
    return Path(override) if override else DEFAULT_STATE_DIR


@dataclass(frozen=True)
class LabHost:
    """One simulated host. `uid`/`gid` are the SSH user's (0 for root)."""

    name: str
    kind: str  # "phone", "linux" or "outsider"
    address: str
    ssh_port: int
    user: str
    uid: int
    gid: int
    home: str
    # How a Linux host boots: "runit" (the machine's userland, runsvdir as init) or "systemd"
    # (a Debian rootfs booting real systemd in systemd-nspawn, llamafleet_lab.systemd_host).
    boot: str = "runit"
    firewall: str = "none"  # a systemd host's firewall, one of SYSTEMD_FIREWALLS
    # A phone that is an ARM device of this real SoC (llamafleet_lab.arm_phone.SOCS); "" is a
    # phone of the machine's own architecture.
    soc: str = ""
    # Its speed profile (llamafleet_lab.profiles): percent of one CPU for all its processes, and
    # its link's rate each way in Mbit/s; None is as fast as the machine allows.
    cpu_percent: int | None = None
    link_mbit: float | None = None

    @property
    def netns(self) -> str:
        """Name of the host's network namespace (as listed by `ip netns`)."""
        return NETNS_PREFIX + self.name

    @property
    def veth(self) -> str:
        """Root-namespace end of the host's veth pair (plugged into the bridge)."""
        return VETH_PREFIX + self.name

    @property
    def is_phone(self) -> bool:
        return self.kind == "phone"

    @property
    def boots_systemd(self) -> bool:
        return self.boot == "systemd"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LabHost":
        # States written before systemd hosts existed have no boot/firewall: runit, none.
        return cls(**{field: data[field] for field in cls.__dataclass_fields__ if field in data})


def _address(host_number: int) -> str:
    return str(SUBNET.network_address + host_number)


def phone_user(index: int) -> tuple[str, int]:
    """The Android app user of phone <index> (1-based): ("u0_a201", 10201) for phone1."""
    app_id = _FIRST_PHONE_APP_ID + index - 1
    return f"u0_a{app_id}", _ANDROID_APP_UID_BASE + app_id


def plan_hosts(phones: int, linux: int, systemd: tuple[str, ...] | list[str] = (),
               socs: dict[str, str] | None = None, profile: str = "none") -> list[LabHost]:
    """All lab hosts for the given sizes: linux1..M (linux1 is the master), phone1..N, one
    systemd host sysd<i> per entry of `systemd` ("FW" or "FW@USER": its firewall, and the
    ordinary user with sudo its owner logs in as), outsider. `socs` makes phones ARM devices:
    {"phone2": "google-tensor-g2"}. `profile` names the hosts' speeds (llamafleet_lab.profiles).

    Raises ValueError for sizes the address plan cannot hold. At least one Linux host is
    needed: linux1 is the cluster's master.
    """
    if len(systemd) > MAX_SYSTEMD:
        raise ValueError(f"--systemd takes at most {MAX_SYSTEMD} hosts, got {len(systemd)}")
    parsed = [parse_systemd_host(spec) for spec in systemd]
    socs = dict(socs or {})
    from llamafleet_lab.arm_phone import soc as known_soc

    for name, chosen in socs.items():
        if name not in {f"phone{index}" for index in range(1, phones + 1)}:
            raise ValueError(f"--soc {name}={chosen}: the lab has no phone {name}")
        known_soc(chosen)  # SocError (a ValueError) for an unknown SoC
    if not 0 <= phones <= MAX_PHONES:
        raise ValueError(f"--phones must be between 0 and {MAX_PHONES}, got {phones}")
    if not 1 <= linux <= MAX_LINUX:
        raise ValueError(f"--linux must be between 1 and {MAX_LINUX} (linux1 is the master), got {linux}")

    # Imported here to keep this module free of lab-internal dependencies at import time.
    from llamafleet_lab.termux import TERMUX_HOME

    hosts: list[LabHost] = []
    for index in range(1, linux + 1):
        hosts.append(
            LabHost(
                name=f"linux{index}",
                kind="linux",
                address=_address(_LINUX_BASE + index),
                ssh_port=LINUX_SSH_PORT,
                user="root",
                uid=0,
                gid=0,
                home="/root",
            )
        )
    for index in range(1, phones + 1):
        user, uid = phone_user(index)
        hosts.append(
            LabHost(
                name=f"phone{index}",
                kind="phone",
                address=_address(_PHONE_BASE + index),
                ssh_port=PHONE_SSH_PORT,
                user=user,
                uid=uid,
                gid=uid,
                home=TERMUX_HOME,
                soc=socs.get(f"phone{index}", ""),
            )
        )
    for index, (firewall, sudo_user) in enumerate(parsed, start=1):
        hosts.append(
            LabHost(
                name=f"sysd{index}",
                kind="linux",
                address=_address(_SYSTEMD_BASE + index),
                ssh_port=LINUX_SSH_PORT,
                user=sudo_user or "root",
                uid=SUDO_USER_UID if sudo_user else 0,
                gid=SUDO_USER_UID if sudo_user else 0,
                home=f"/home/{sudo_user}" if sudo_user else "/root",
                boot="systemd",
                firewall=firewall,
            )
        )
    hosts.append(
        LabHost(
            name="outsider",
            kind="outsider",
            address=_address(_OUTSIDER_HOST),
            ssh_port=LINUX_SSH_PORT,
            user="root",
            uid=0,
            gid=0,
            home="/root",
        )
    )
    from llamafleet_lab.profiles import profile_hosts

    return profile_hosts(profile, hosts)
