"""The simulated Termux phone: paths, environment and the app's files under /data.

Stands for: an Android phone with the Termux app (version TERMUX_VERSION) and the user's
`pkg install openssh`. Android's app sandbox is reproduced where a deploy can notice it: an app
user (u0_a201) without root or sudo, who can write only below /data/data/com.termux/files,
finds no writable /tmp, and gets Termux's environment (PREFIX, HOME, TMPDIR, PATH with
$PREFIX/bin first) in every SSH session. Programs themselves are the machine's (/usr/bin comes
after $PREFIX/bin in PATH); `pkg` only records packages in the phone's dpkg database.
"""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from llamafleet.lab import sshd
from llamafleet.lab.termux_packages import BOOTSTRAP, render_packages_index
from llamafleet.lab.topology import LabHost

TERMUX_VERSION = "0.118.3"
TERMUX_APP_DIR = "/data/data/com.termux"
TERMUX_FILES = TERMUX_APP_DIR + "/files"
TERMUX_PREFIX = TERMUX_FILES + "/usr"
TERMUX_HOME = TERMUX_FILES + "/home"
TERMUX_TMPDIR = TERMUX_PREFIX + "/tmp"
TERMUX_BIN = TERMUX_PREFIX + "/bin"
TERMUX_SVDIR = TERMUX_PREFIX + "/var/service"
TERMUX_LOGDIR = TERMUX_PREFIX + "/var/log"
TERMUX_BOOT_DIR = TERMUX_HOME + "/.termux/boot"
TERMUX_SHELL = TERMUX_BIN + "/bash"

# Documented lab state file of termux-wake-lock / termux-wake-unlock ("held" / "released",
# absent after boot until a script takes the lock).
WAKE_LOCK_FILE = TERMUX_PREFIX + "/var/run/wake-lock"
# Where Termux's service-daemon keeps runsvdir's pid.
SERVICE_DAEMON_PIDFILE = TERMUX_PREFIX + "/var/run/service-daemon.pid"
# apt's list file name for termux-main, as `apt update` names it on a phone.
PACKAGES_INDEX = (
    TERMUX_PREFIX
    + "/var/lib/apt/lists/packages-cf.termux.dev_apt_termux-main_dists_stable_main_binary-aarch64_Packages"
)

# Files of llamafleet/lab/bin that do not go to $PREFIX/bin.
_SPECIAL_DESTINATIONS = {
    "start-services.sh": "etc/profile.d/start-services.sh",
    "svlogger": "share/termux-services/svlogger",
}
# $PREFIX/bin entries that are the machine's programs: the shells Termux's shebangs name
# (#!/data/data/com.termux/files/usr/bin/sh) and runit's tools (termux-services' dependency).
_MACHINE_PROGRAMS = {
    "sh": "/usr/bin/dash",
    "dash": "/usr/bin/dash",
    "bash": "/usr/bin/bash",
    "env": "/usr/bin/env",
    "runsv": "/usr/bin/runsv",
    "runsvdir": "/usr/bin/runsvdir",
    "svlogd": "/usr/bin/svlogd",
    "chpst": "/usr/bin/chpst",
    "apt": "pkg",  # Termux's apt and pkg share the lab's implementation
}

# Android puts every app user in these groups (id -G of Termux): inet may open sockets,
# everybody is shared storage; the per-app cache and "all" groups derive from the app id.
_ANDROID_GROUPS = (("inet", 3003), ("everybody", 9997))


def termux_env(host: LabHost) -> dict[str, str]:
    """Environment of every process of the phone user (SSH sessions, services, boot scripts)."""
    return {
        "HOME": TERMUX_HOME,
        "PREFIX": TERMUX_PREFIX,
        "TMPDIR": TERMUX_TMPDIR,
        # Termux's PATH is $PREFIX/bin alone; the lab appends the machine's directories because
        # the programs themselves come from the machine.
        "PATH": f"{TERMUX_BIN}:/usr/bin:/bin",
        "TERMUX_VERSION": TERMUX_VERSION,
        # Termux sets en_US.UTF-8, a locale this machine does not have (programs would warn).
        "LANG": "C.UTF-8",
        "SVDIR": TERMUX_SVDIR,
        "LOGDIR": TERMUX_LOGDIR,
        "ANDROID_DATA": "/data",
        "ANDROID_ROOT": "/system",
        "EXTERNAL_STORAGE": "/sdcard",
        "SHELL": TERMUX_SHELL,
        "USER": host.user,
        "LOGNAME": host.user,
    }


def android_groups(host: LabHost) -> list[tuple[str, int]]:
    """Supplementary groups of the phone's app user, as on Android (name, gid)."""
    app_id = host.uid - 10000
    return [
        *_ANDROID_GROUPS,
        (f"{host.user}_cache", 20000 + app_id),
        (f"all_a{app_id}", 50000 + app_id),
    ]


def machine_dpkg_architecture() -> str:
    """The machine's dpkg architecture (amd64 here); see render_packages_index."""
    result = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def write_identity_files(host: LabHost, etc_dir: Path) -> list[int]:
    """Per-phone /etc/passwd and /etc/group: the machine's plus the app user.
    Returns the user's group ids (its own first).

    Android has no /etc/passwd; tools in Termux still resolve the app user by uid. The lab
    bind-mounts these copies inside the phone's mount namespace only, so the machine's own
    files never get the user.
    """
    etc_dir.mkdir(parents=True, exist_ok=True)
    passwd = Path("/etc/passwd").read_text()
    group = Path("/etc/group").read_text()
    passwd += f"{host.user}:x:{host.uid}:{host.gid}::{TERMUX_HOME}:{TERMUX_SHELL}\n"
    group += f"{host.user}:x:{host.gid}:\n"
    used_gids = {entry.gr_gid for entry in grp.getgrall()} | {host.gid}
    used_names = {entry.gr_name for entry in grp.getgrall()}
    groups = [host.gid]
    for name, gid in android_groups(host):
        # A machine group with the same id or name wins: the phone's user then lacks that
        # group, which no deploy can tell apart from Android.
        if gid not in used_gids and name not in used_names:
            group += f"{name}:x:{gid}:{host.user}\n"
            used_gids.add(gid)
            groups.append(gid)
    (etc_dir / "passwd").write_text(passwd)
    (etc_dir / "group").write_text(group)
    # Login shells read the machine's /etc/profile, which would reset PATH; Termux's bash reads
    # $PREFIX/etc/profile instead. This stand-in sends them there.
    (etc_dir / "profile").write_text(
        "# Lab phone: Termux's bash reads $PREFIX/etc/profile, not /etc/profile.\n"
        f'[ -r {TERMUX_PREFIX}/etc/profile ] && . {TERMUX_PREFIX}/etc/profile\n'
    )
    for name in ("passwd", "group", "profile"):
        (etc_dir / name).chmod(0o644)
    return groups


_PREFIX_PROFILE = """\
# Termux's $PREFIX/etc/profile (lab copy): run the profile.d snippets of installed packages.
for script in "$PREFIX"/etc/profile.d/*.sh; do
    [ -r "$script" ] && . "$script"
done
unset script
PS1='\\$ '
"""


def in_data(data_root: Path, phone_path: str) -> Path:
    """Where the phone's `phone_path` (below /data) lives in the storage bound over /data."""
    if not phone_path.startswith("/data/"):
        raise ValueError(f"{phone_path} is not below /data")
    return data_root / phone_path.removeprefix("/data/")


def build_phone_data(host: LabHost, data_root: Path, authorized_key: str) -> None:
    """Create the phone's /data (to be bind-mounted over /data inside the phone).

    Layout and modes follow Android: /data and /data/data are not listable by apps, the app's
    directory belongs to its user with mode 0700.
    """
    termux_files = in_data(data_root, TERMUX_FILES)
    prefix = in_data(data_root, TERMUX_PREFIX)
    home = in_data(data_root, TERMUX_HOME)
    for directory in (
        "bin", "etc/profile.d", "etc/ssh", "include", "lib", "libexec", "share/termux-services",
        "tmp", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/apt/lists", "var/log",
        "var/run", "var/service",
    ):
        (prefix / directory).mkdir(parents=True, exist_ok=True)
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    (home / ".termux").mkdir(exist_ok=True)

    _install_lab_programs(prefix)
    (prefix / "etc/profile").write_text(_PREFIX_PROFILE)
    (home / ".ssh/authorized_keys").write_text(authorized_key.strip() + "\n")
    (prefix / "var/lib/dpkg/status").write_text("")
    in_data(data_root, PACKAGES_INDEX).write_text(render_packages_index(machine_dpkg_architecture()))
    _record_bootstrap_packages(prefix)
    sshd.write_phone_sshd_files(host, prefix / "etc/ssh", termux_env(host))

    _chown_tree(data_root / "data" / "com.termux", host.uid, host.gid)
    for path, mode in (
        (data_root, 0o771),
        (data_root / "data", 0o771),
        (data_root / "data/com.termux", 0o700),
        (termux_files, 0o700),
        (home, 0o700),
        (home / ".ssh", 0o700),
        (home / ".ssh/authorized_keys", 0o600),
        (prefix / "tmp", 0o700),
    ):
        path.chmod(mode)


def _install_lab_programs(prefix: Path) -> None:
    source = resources.files("llamafleet.lab") / "bin"
    for entry in source.iterdir():
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        destination = prefix / _SPECIAL_DESTINATIONS.get(entry.name, "bin/" + entry.name)
        destination.parent.mkdir(parents=True, exist_ok=True)
        with resources.as_file(entry) as path:
            shutil.copyfile(path, destination)
        destination.chmod(0o644 if entry.name.endswith(".sh") else 0o755)
    for name, target in _MACHINE_PROGRAMS.items():
        link = prefix / "bin" / name
        if not link.exists():
            link.symlink_to(target)


def _record_bootstrap_packages(prefix: Path) -> None:
    """A fresh Termux's packages go into the dpkg database the way the phone's pkg writes it."""
    pkg = prefix / "bin/pkg"
    result = subprocess.run(
        ["/usr/bin/python3", "-I", str(pkg), "install", "-y", *BOOTSTRAP],
        env={"PREFIX": str(prefix), "PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"recording Termux's bootstrap packages failed: {result.stderr.strip()}")


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for directory, subdirs, files in os.walk(root):
        os.chown(directory, uid, gid)
        for name in subdirs + files:
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)
