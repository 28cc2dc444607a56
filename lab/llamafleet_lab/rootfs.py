"""The Debian root filesystem the lab's systemd hosts boot, made once with debootstrap and cached.

Stands for: a fresh Debian 12 server or board as a user gets it (Raspberry Pi OS and Ubuntu
boot the same way): systemd as PID 1, journald, dbus, OpenSSH, and the two firewalls users run,
ufw and firewalld, installed from Debian's packages. Everything a deploy would install with apt
is installed here already: the lab's hosts reach no package mirror.

Made in two steps because debootstrap's own resolver does not follow alternatives
(firewalld needs "polkitd | policykit-1", polkitd "default-logind | logind"): debootstrap lays the
base, then apt inside the new root adds the firewalls. Built under a temporary name and renamed
when complete, so an interrupted build is never booted. Every systemd host boots its own
overlay of this directory (llamafleet_lab.systemd_host); the directory itself is never changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = (
    # booting and logging in
    "systemd", "systemd-sysv", "dbus", "libpam-systemd", "openssh-server", "sudo",
    # what llamafleet's apt_packages and probes use, installed up front (no mirror in the lab)
    "iproute2", "iptables", "nftables", "procps", "psmisc", "curl", "ca-certificates", "netcat-openbsd",
    "iputils-ping", "build-essential", "cmake", "ninja-build", "git", "ccache",
)
FIREWALL_PACKAGES = ("ufw", "firewalld")
# Timers that would reach for a mirror, or only load a small machine: off in every lab host.
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer")
COMPLETE_MARKER = ".llamafleet-rootfs-complete"


def rootfs_dir(cache: Path) -> Path:
    """The rootfs for the current package lists: a new list gets a new directory."""
    recipe = "\n".join([SUITE, MIRROR, *BASE_PACKAGES, "--", *FIREWALL_PACKAGES, "--", *MASKED_UNITS])
    return cache / "rootfs" / f"debian-{SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def is_complete(root: Path) -> bool:
    return (root / COMPLETE_MARKER).is_file()


def ensure_rootfs(cache: Path, say=print) -> Path:
    """The cached rootfs, built first when missing (about 2 minutes and 600 MB)."""
    root = rootfs_dir(cache)
    if is_complete(root):
        return root
    for program in ("debootstrap", "chroot"):
        if not shutil.which(program):
            raise RuntimeError(f"building the systemd hosts' rootfs needs {program} (scripts/setup installs it)")
    partial = root.with_name(root.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    say(f"building the systemd hosts' Debian {SUITE} rootfs in {root} (debootstrap, once)")
    _run(["debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES), SUITE, str(partial), MIRROR])
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    _run(["chroot", str(partial), "apt-get", "install", "-y", "-q", "--no-install-recommends", *FIREWALL_PACKAGES], env=env)
    _run(["chroot", str(partial), "apt-get", "clean"], env=env)
    _finish(partial)
    partial.rename(root)
    return root


def _finish(root: Path) -> None:
    """What every host built from this root shares: no host keys (each host gets its own), an
    uninitialised machine-id (systemd makes one at first boot), no mirror timers."""
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to("/dev/null")
    (root / COMPLETE_MARKER).write_text(f"debootstrap {SUITE} from {MIRROR}; firewalls: {' '.join(FIREWALL_PACKAGES)}\n")


def _run(argv: list[str], env: dict | None = None) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, env=env or dict(os.environ))
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed (exit {result.returncode}):\n{tail}")
