"""The simulated Termux phone: paths, environment and the app's files under /data.

Stands for: an Android 12-15 phone with the Termux app (version TERMUX_VERSION) and the user's
`pkg install openssh`. Android's app sandbox is reproduced where a deploy can notice it: an app
user (u0_a201) without root or sudo, who can write only below /data/data/com.termux/files,
finds no writable /tmp, and gets Termux's environment in every SSH session: PATH is $PREFIX/bin
alone and SVDIR/LOGDIR are unset (termux-packages `packages/openssh` session patch, termux-app
`TermuxShellEnvironment`). $PREFIX/bin holds only what Termux's packages installed (see
termux_programs.py): a fresh phone has the bootstrap's tools, nothing of iproute2 or python.
Android's own pieces an app can read are there too: /system/bin/getprop with the phone's
properties (Android version, the phantom process killer's setting).
"""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from llamafleet_lab import sshd
from llamafleet_lab.termux_packages import BOOTSTRAP, render_packages_index
from llamafleet_lab.termux_programs import LAB_PAYLOAD
from llamafleet_lab.topology import LabHost

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

# The lab's record of the Termux app's wake lock ("held" / "released", empty after a boot):
# written by termux-wake-lock/-unlock, readable by the phone's init only (see termux-wake-lock).
WAKE_LOCK_FILE = "/data/system/lab-wake-lock"
# apt's list file name for termux-main, as `apt update` names it on a phone.
PACKAGES_INDEX = (
    TERMUX_PREFIX
    + "/var/lib/apt/lists/packages-cf.termux.dev_apt_termux-main_dists_stable_main_binary-aarch64_Packages"
)

# Android's properties of a lab phone, by phone number (1-based, cycling): release and SDK of
# the versions the phantom process killer exists on. /system/bin/getprop reads them.
ANDROID_VERSIONS = (("14", "34"), ("12", "31"), ("13", "33"), ("15", "35"))
PHANTOM_PROPERTY = "persist.sys.fflag.override.settings_enable_monitor_phantom_procs"
# Where the lab keeps a phone's properties (inside the phone: read-only, under /system).
PROPERTIES_FILE = "/system/etc/lab.prop"
GETPROP = "/system/bin/getprop"

# Android puts every app user in these groups (id -G of Termux): inet may open sockets,
# everybody is shared storage; the per-app cache and "all" groups derive from the app id.
_ANDROID_GROUPS = (("inet", 3003), ("everybody", 9997))


def termux_env(host: LabHost) -> dict[str, str]:
    """Environment of every process of the phone user (SSH sessions, services, boot scripts)."""
    return {
        "HOME": TERMUX_HOME,
        "PREFIX": TERMUX_PREFIX,
        "TMPDIR": TERMUX_TMPDIR,
        # Termux's PATH is $PREFIX/bin alone: a program exists once its package is installed.
        "PATH": TERMUX_BIN,
        "TERMUX_VERSION": TERMUX_VERSION,
        # Termux sets en_US.UTF-8, a locale this machine does not have (programs would warn).
        "LANG": "C.UTF-8",
        "ANDROID_DATA": "/data",
        "ANDROID_ROOT": "/system",
        "EXTERNAL_STORAGE": "/sdcard",
        "SHELL": TERMUX_SHELL,
        "USER": host.user,
        "LOGNAME": host.user,
    }


def android_properties(host: LabHost) -> dict[str, str]:
    """The phone's getprop values at `lab up` (the phantom killer setting unset: enabled)."""
    index = int(host.name.removeprefix("phone") or 1) - 1
    release, sdk = ANDROID_VERSIONS[index % len(ANDROID_VERSIONS)]
    return {
        "ro.build.version.release": release,
        "ro.build.version.sdk": sdk,
        "ro.product.manufacturer": "llamafleet-lab",
        "ro.product.model": f"Lab Phone {index + 1}",
        "ro.product.cpu.abi": "x86_64",
    }


_GETPROP = r"""#!/bin/sh
# Stands for: Android's /system/bin/getprop (toybox), which apps may run. It is not on Termux's
# PATH: call it by its path. The lab keeps the phone's properties in /system/etc/lab.prop.
PATH=/usr/bin:/bin  # Android's own tools (/system/bin), not the app's
file=/system/etc/lab.prop
if [ $# -eq 0 ]; then
    while IFS='=' read -r key value; do printf '[%s]: [%s]
' "$key" "$value"; done < "$file"
    exit 0
fi
value=$(grep -m1 "^$1=" "$file" | cut -d= -f2-)
printf '%s
' "${value:-$2}"
"""


def write_system_files(host: LabHost, system_root: Path) -> None:
    """The phone's /system (bound read-only-by-mode over /system): getprop and its properties."""
    (system_root / "bin").mkdir(parents=True, exist_ok=True)
    (system_root / "etc").mkdir(parents=True, exist_ok=True)
    write_properties(system_root / "etc/lab.prop", android_properties(host))
    getprop = system_root / "bin/getprop"
    getprop.write_text(_GETPROP)
    getprop.chmod(0o755)


def write_properties(path: Path, properties: dict[str, str]) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in sorted(properties.items())))
    path.chmod(0o644)


def read_properties(path: Path) -> dict[str, str]:
    properties = {}
    for line in path.read_text().splitlines():
        key, separator, value = line.partition("=")
        if separator:
            properties[key] = value
    return properties


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
        "bin", "etc/profile.d", "etc/ssh", "etc/ssh/sshd_config.d", "include", "lib", "libexec", "share/termux-services",
        "tmp", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/apt/lists", "var/log",
        "var/run", "var/service",
    ):
        (prefix / directory).mkdir(parents=True, exist_ok=True)
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    (home / ".termux").mkdir(exist_ok=True)

    _install_payload(prefix)
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


def _install_payload(prefix: Path) -> None:
    """The lab's stand-in scripts (lab/llamafleet_lab/bin) go where `pkg` copies them from."""
    payload = prefix / LAB_PAYLOAD
    payload.mkdir(parents=True, exist_ok=True)
    for entry in (resources.files("llamafleet_lab") / "bin").iterdir():
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        with resources.as_file(entry) as path:
            shutil.copyfile(path, payload / entry.name)
        (payload / entry.name).chmod(0o644)


def _record_bootstrap_packages(prefix: Path) -> None:
    """A fresh Termux's packages, installed the way the phone's pkg installs any package (their
    programs appear in $PREFIX/bin, their names in the dpkg database)."""
    result = subprocess.run(
        ["/usr/bin/python3", "-I", str(prefix / LAB_PAYLOAD / "pkg"), "install", "-y", *BOOTSTRAP],
        env={"PREFIX": str(prefix), "PATH": "/usr/bin:/bin", "LLAMAFLEET_LAB_BOOTSTRAP": "1"},
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
