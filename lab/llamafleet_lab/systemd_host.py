"""A lab host that boots real systemd: a Debian rootfs (llamafleet_lab.rootfs) under systemd-nspawn.

Stands for: a Debian/Ubuntu/Raspberry Pi OS machine as its owner set it up: systemd as PID 1,
OpenSSH with the owner's key for root, and the firewall the topology gives it:
- "ufw": enabled as its documentation tells a new user (`ufw allow 22/tcp`, `ufw enable`, with
  Debian's default `DEFAULT_INPUT_POLICY="DROP"`), done once by a first-boot unit, so from then on
  ufw's own boot unit loads the rules, as on a real box;
- "firewalld": running in its default zone ("public": SSH allowed, everything else rejected);
- "none": neither runs (both boot units masked).

Each host boots its own overlay of the shared rootfs: its changes live in
hosts/<name>/fs/upper, so `lab down` removes them with the state dir. The host's files that differ
from the rootfs (identity, SSH keys, firewall set-up) are written into that upper layer before
the first boot.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from llamafleet_lab import find_inits, sshd
from llamafleet_lab.topology import LabHost

NSPAWN = "/usr/bin/systemd-nspawn"
_UFW_SETUP_UNIT = """\
# Written by `llamafleet lab up`: the owner's first ufw set-up, as ufw(8) tells a new user.
[Unit]
Description=lab: enable ufw with SSH allowed (first boot only)
After=ufw.service
ConditionPathExists=!/etc/ufw/.lab-enabled

[Service]
Type=oneshot
ExecStart=/usr/sbin/ufw allow 22/tcp
ExecStart=/usr/sbin/ufw --force enable
ExecStart=/usr/bin/touch /etc/ufw/.lab-enabled

[Install]
WantedBy=multi-user.target
"""
_SSHD_DROP_IN = """\
# Written by `llamafleet lab up`: this host's own key only (the rootfs ships none).
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
UseDNS no
"""


def nspawn_argv(host: LabHost, host_dir: Path, root: Path) -> list[str]:
    """How the host is booted (systemd-nspawn(1)); see hostinit_nspawn.py for why each flag."""
    return [
        NSPAWN, "--boot", "--quiet", "--register=no", "--keep-unit",
        f"--directory={root}", f"--machine={host.name}", f"--hostname={host.name}",
        f"--network-namespace-path=/run/netns/{host.netns}",
        # nspawn keeps CAP_NET_ADMIN only with a network namespace it made itself; this one is
        # the lab's, and the host's own: its firewall (iptables, nft, ufw, firewalld) needs it.
        "--capability=CAP_NET_ADMIN",
        # Marks the container's systemd as this lab host's, for `lab down` (find_inits).
        f"--setenv={find_inits.CONTAINER_MARK}={host_dir}",
        "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=pipe",
    ]


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _enable(upper: Path, unit: str, target: str = "multi-user.target") -> None:
    link = upper / "etc/systemd/system" / f"{target}.wants" / unit
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(f"/etc/systemd/system/{unit}")


def _mask(upper: Path, unit: str) -> None:
    link = upper / "etc/systemd/system" / unit
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to("/dev/null")


def _add_sudo_user(host: LabHost, upper: Path, rootfs: Path) -> None:
    """The owner's ordinary account, in the sudo group with password-less sudo, as Raspberry Pi
    OS sets up its first user (/etc/sudoers.d/010_pi-nopasswd there); no password at all, so SSH
    keys are the only way in."""
    passwd = (rootfs / "etc/passwd").read_text() + f"{host.user}:x:{host.uid}:{host.gid}::{host.home}:/bin/bash\n"
    shadow = (rootfs / "etc/shadow").read_text() + f"{host.user}:*:20000:0:99999:7:::\n"
    groups = []
    for line in (rootfs / "etc/group").read_text().splitlines():
        name, _, gid, members = line.split(":", 3)
        if name == "sudo":
            line = f"{name}:x:{gid}:{','.join(filter(None, [members, host.user]))}"
        groups.append(line)
    groups.append(f"{host.user}:x:{host.gid}:")
    _write(upper / "etc/passwd", passwd)
    _write(upper / "etc/shadow", shadow, 0o640)
    os.chown(upper / "etc/shadow", 0, (rootfs / "etc/shadow").stat().st_gid)  # group shadow, as Debian keeps it
    _write(upper / "etc/group", "\n".join(groups) + "\n")
    _write(upper / f"etc/sudoers.d/010_{host.user}-nopasswd", f"{host.user} ALL=(ALL) NOPASSWD: ALL\n", 0o440)


def build_systemd_host(host: LabHost, host_dir: Path, authorized_key: str, rootfs: Path) -> dict:
    """The host's overlay layers and the spec its init (hostinit_nspawn.py) runs."""
    upper, work, merged = host_dir / "fs" / "upper", host_dir / "fs" / "work", host_dir / "fs" / "root"
    for directory in (upper, work, merged):
        directory.mkdir(parents=True, exist_ok=True)

    _write(upper / "etc/hostname", f"{host.name}\n")
    _write(upper / "etc/hosts", f"127.0.0.1\tlocalhost\n{host.address}\t{host.name}\n")
    # The same key pair the lab's known_hosts is made from (hostsetup.host_public_key).
    sshd.generate_keypair(host_dir / "ssh" / sshd.HOST_KEY_NAME, f"root@{host.name}")
    for suffix, mode in (("", 0o600), (".pub", 0o644)):
        source = host_dir / "ssh" / (sshd.HOST_KEY_NAME + suffix)
        _write(upper / "etc/ssh" / (sshd.HOST_KEY_NAME + suffix), source.read_text(), mode)
    _write(upper / "etc/ssh/sshd_config.d/lab.conf", _SSHD_DROP_IN)
    if host.user != "root":
        _add_sudo_user(host, upper, rootfs)
    home = upper / host.home.lstrip("/")
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    home.chmod(0o700 if host.user == "root" else 0o750)
    _write(home / ".ssh/authorized_keys", authorized_key.strip() + "\n", 0o600)
    for dotfile in (".bashrc", ".profile"):
        if (rootfs / "etc/skel" / dotfile).is_file():
            shutil.copyfile(rootfs / "etc/skel" / dotfile, home / dotfile)
    for path in (home, home / ".ssh", home / ".ssh/authorized_keys", *(home / name for name in (".bashrc", ".profile"))):
        if path.exists():
            os.lchown(path, host.uid, host.gid)

    if host.firewall != "firewalld":
        _mask(upper, "firewalld.service")
    if host.firewall != "ufw":
        # A box with firewalld (or neither) has no ufw set up; its boot unit fails next to firewalld.
        _mask(upper, "ufw.service")
    if host.firewall == "ufw":
        _write(upper / "etc/systemd/system/lab-ufw-setup.service", _UFW_SETUP_UNIT)
        _enable(upper, "lab-ufw-setup.service")

    return {
        "boot": "systemd",
        "address": host.address,
        "ssh_port": host.ssh_port,
        "overlay": {"lower": str(rootfs), "upper": str(upper), "work": str(work), "merged": str(merged)},
        "nspawn_argv": nspawn_argv(host, host_dir, merged),
        "firewall": host.firewall,
    }


def container_pid(status: dict) -> int | None:
    """The host's systemd as this machine numbers it (written by its init after each boot)."""
    pid = status.get("container_pid")
    return int(pid) if pid and os.path.exists(f"/proc/{pid}") else None


CGROUP_ROOT = Path("/sys/fs/cgroup")
LAB_CGROUP = "llamafleet-lab"  # as hostinit_nspawn.py names each container's own cgroups


def container_cgroups() -> list[Path]:
    """Every systemd host's own cgroups (hostinit_nspawn.cgroup_dirs), in every hierarchy."""
    found = []
    for hierarchy in sorted(CGROUP_ROOT.iterdir()) if CGROUP_ROOT.is_dir() else []:
        lab = hierarchy / LAB_CGROUP
        if not hierarchy.is_symlink() and lab.is_dir():
            found += sorted(lab.glob("nspawn-*"))
    return found


def remove_container_cgroups() -> list[str]:
    """rmdir each container's cgroup subtree, children first, once its processes are gone; then
    the lab's parent cgroup where nothing else (a phone's) is left in it."""
    problems = []
    parents = set()
    for top in container_cgroups():
        parents.add(top.parent)
        for cgroup in sorted((path for path in top.rglob("*") if path.is_dir()), key=lambda path: -len(path.parts)) + [top]:
            try:
                cgroup.rmdir()
            except OSError as error:
                problems.append(f"cgroup {cgroup}: {error.strerror}")
    for parent in parents:
        try:
            parent.rmdir()
        except OSError:
            pass  # a phone's cgroups are still there: phone.remove_cgroups takes them
    return problems
