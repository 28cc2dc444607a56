"""Each lab host's own storage and the spec its init runs (see hostinit.py).

A host sees the machine's filesystem, except for the paths a deploy writes: those are
bind-mounted from the host's directory under the lab state dir, inside the host's private
mount namespace. So two hosts never see each other's files, the machine's files stay as they
were, and `lab down` only has to delete the state dir.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from llamafleet_lab import android_edge, arm_phone, profiles, sshd, systemd_host, termux
from llamafleet_lab.topology import LabHost

# Paths a deploy writes on a Linux host (llamafleet_dir /opt/llamafleet, runit services,
# sysctl drop-ins, firewall rules, accounts in /etc/passwd, logs) plus the temporary
# directories. Each gets its own per-host directory; /run becomes a fresh tmpfs.
LINUX_PRIVATE_PATHS = (
    "/etc",
    "/root",
    "/opt",
    "/var/log/llamafleet",
    "/tmp",
    "/var/tmp",
)
# Per-host copies start with the machine's content here (a fresh Debian has these files; a
# deploy's `useradd` must change the host's /etc/passwd, not the machine's); other paths start
# empty. Below /etc, these start empty on purpose: the machine's runit services (its own sshd)
# must not start inside the lab hosts, and no firewall rules file is there before a deploy.
_COPY_MACHINE_CONTENT = ("/etc",)
_EMPTY_IN_COPY = ("/etc/sv", "/etc/service", "/etc/iptables", "/etc/nftables.d")
_WORLD_WRITABLE = ("/tmp", "/var/tmp")

# On Android, apps find no writable /tmp, /var/tmp or /dev/shm: the lab binds an empty
# root-owned 0755 directory over them.
PHONE_HIDDEN_PATHS = ("/tmp", "/var/tmp", "/dev/shm")

LINUX_ENV = {
    "HOME": "/root",
    "USER": "root",
    "LOGNAME": "root",
    "SHELL": "/bin/bash",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}

RUNSVDIR = "/usr/bin/runsvdir"
# Where phones' freezer and cpuset cgroups live (cgroup v1 hierarchies of the machine).
FREEZER_ROOT = Path("/sys/fs/cgroup/freezer/llamafleet-lab")
CPUSET_ROOT = Path("/sys/fs/cgroup/cpuset/llamafleet-lab")
# Android's cpuset for the app in front (all CPUs); `lab cpuset PHONE background` renames it.
APP_CPUSET = "top-app"


def mount_points(hosts: list[LabHost]) -> list[str]:
    """Every path some host mounts over: it has to exist on the machine."""
    points: list[str] = []
    if any(host.is_phone for host in hosts):
        points += ["/data", "/system", "/etc/passwd", "/etc/group", "/etc/profile", *PHONE_HIDDEN_PATHS, "/run"]
    if any(host.soc for host in hosts):
        points.append(arm_phone.PRELOAD_FILE)
    if any(not host.is_phone and not host.boots_systemd for host in hosts):
        points += [*LINUX_PRIVATE_PATHS, "/run"]
    return list(dict.fromkeys(points))


# Mount points that are files: an empty /etc/ld.so.preload preloads nothing on the machine.
_FILE_POINTS = (arm_phone.PRELOAD_FILE,)


def create_missing_dirs(paths: list[str]) -> list[str]:
    """mkdir each missing path (and missing parents), or create an empty file for the file
    mount points; return what was created, parents first."""
    created: list[str] = []
    for path in paths:
        missing = []
        current = Path(path)
        while not current.exists():
            missing.append(current)
            current = current.parent
        for directory in reversed(missing):
            if str(directory) in _FILE_POINTS:
                directory.touch(mode=0o644)
            else:
                directory.mkdir(mode=0o755)
            created.append(str(directory))
    return created


def remove_created_dirs(created: list[str]) -> list[str]:
    """rmdir what create_missing_dirs made, children first. A directory that something else
    filled meanwhile is kept (and returned): it is no longer only ours."""
    kept = []
    for path in reversed(created):
        try:
            if path in _FILE_POINTS and os.path.isfile(path):
                if os.path.getsize(path):
                    raise OSError("not empty any more")
                os.unlink(path)
                continue
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            kept.append(path)
    return kept


def storage_path(host_dir: Path, path: str) -> Path:
    """Per-host directory that stands in for `path` inside the host."""
    return host_dir / "fs" / path.lstrip("/")


def _emptied(root: str):
    """copytree's ignore: the content of the _EMPTY_IN_COPY directories below `root`."""
    def ignore(directory: str, names: list[str]) -> list[str]:
        return list(names) if directory in _EMPTY_IN_COPY else []
    return ignore


def build_linux_host(host: LabHost, host_dir: Path, authorized_key: str) -> dict:
    """Storage and init spec of a Linux host (or the outsider): root, sshd on 22, runit."""
    mounts = []
    for path in LINUX_PRIVATE_PATHS:
        storage = storage_path(host_dir, path)
        if path in _COPY_MACHINE_CONTENT and Path(path).is_dir():
            shutil.copytree(path, storage, symlinks=True, ignore=_emptied(path))
            for empty in _EMPTY_IN_COPY:
                storage_path(host_dir, empty).mkdir(mode=0o755, exist_ok=True)
        else:
            storage.mkdir(parents=True, exist_ok=True)
        storage.chmod(0o1777 if path in _WORLD_WRITABLE else 0o700 if path == "/root" else 0o755)
        mounts.append({"type": "bind", "source": str(storage), "target": path})
    mounts.append({"type": "tmpfs", "target": "/run", "options": "mode=0755"})

    root_home = storage_path(host_dir, "/root")
    for dotfile, source in ((".bashrc", "/etc/skel/.bashrc"), (".profile", "/etc/skel/.profile")):
        if Path(source).is_file():
            shutil.copyfile(source, root_home / dotfile)
    (root_home / ".ssh").mkdir(mode=0o700)
    (root_home / ".ssh/authorized_keys").write_text(authorized_key.strip() + "\n")
    (root_home / ".ssh/authorized_keys").chmod(0o600)

    sshd_config = sshd.write_linux_sshd_files(host, host_dir / "ssh")
    return {
        "mounts": mounts,
        # sshd chroots its pre-auth child into /run/sshd; /run/lock is Debian's lock dir.
        "dirs": [{"path": "/run/sshd", "mode": 0o755}, {"path": "/run/lock", "mode": 0o1777}],
        "user": None,
        "env": LINUX_ENV,
        "home": "/root",
        "sshd": {"argv": [sshd.SSHD, "-D", "-e", "-f", str(sshd_config)], "as_user": False, "supervised": True},
        # Debian's runit layout (/etc/runit/2 runs the same), instead of systemd.
        "runsvdir": {"argv": [RUNSVDIR, "-P", "/etc/service"], "cwd": "/", "pidfile": None},
        "boot_dir": None,
        # A reboot empties /tmp and /run, as Debian's boot does.
        "volatile_dirs": ["/tmp", "/run"],
        "volatile_files": [],
    }


def build_phone_host(host: LabHost, host_dir: Path, authorized_key: str) -> dict:
    """Storage and init spec of a phone: the Termux app user, sshd on 8022, Termux:Boot."""
    data_root = storage_path(host_dir, "/data")
    data_root.mkdir(parents=True)
    termux.build_phone_data(host, data_root, authorized_key)
    etc = host_dir / "etc"
    groups = termux.write_identity_files(host, etc)
    empty = host_dir / "fs" / "android-empty"
    empty.mkdir(mode=0o755)
    empty.chmod(0o755)

    system_root = storage_path(host_dir, "/system")
    termux.write_system_files(host, system_root)
    android = _android_spec(host, host_dir, data_root)
    arm_mounts = arm_phone.phone_files(host.soc, host_dir, system_root) if host.soc else []

    mounts = [{"type": "bind", "source": str(data_root), "target": "/data"}]
    mounts.append({"type": "bind", "source": str(system_root), "target": "/system"})
    mounts += arm_mounts
    mounts += [{"type": "bind", "source": str(etc / name), "target": f"/etc/{name}"} for name in ("passwd", "group", "profile")]
    mounts += [{"type": "bind", "source": str(empty), "target": path} for path in PHONE_HIDDEN_PATHS]
    mounts.append({"type": "tmpfs", "target": "/run", "options": "mode=0755"})
    return {
        "mounts": mounts,
        "dirs": [],
        "user": {"uid": host.uid, "gid": host.gid, "groups": groups},
        "env": termux.termux_env(host),
        "home": termux.TERMUX_HOME,
        # The sshd the user started by hand in Termux before llamafleet saw the phone: only at
        # `lab up`, never restarted, killed by a reboot like every process of the app.
        "sshd": {"argv": [f"{termux.TERMUX_BIN}/sshd", "-D", "-e"], "as_user": True, "supervised": False},
        # No runsvdir at boot: termux-services' start-services.sh starts it (service-daemon).
        "runsvdir": None,
        "boot_dir": termux.TERMUX_BOOT_DIR,
        "boot_shell": f"{termux.TERMUX_BIN}/sh",
        "pin_file": str(host_dir / "pin"),
        "android": android,
        "volatile_dirs": [],
        "volatile_files": [],
    }


def freezer_cgroup(host: LabHost) -> Path:
    """The phone's freezer cgroup (v1) on the machine, named like the lab's other pieces."""
    return FREEZER_ROOT / host.netns


def cpuset_cgroup(host: LabHost) -> Path:
    """The phone's cpuset cgroup: the root of its cgroup namespace; the app's processes are in
    a child named like Android's (APP_CPUSET), so /proc/self/cpuset reads "/top-app"."""
    return CPUSET_ROOT / host.netns


def app_cpuset(host: LabHost) -> Path:
    """Where the app's processes are now (`lab cpuset` renames the cgroup)."""
    root = cpuset_cgroup(host)
    children = sorted(path for path in root.iterdir() if path.is_dir()) if root.is_dir() else []
    return children[0] if children else root / APP_CPUSET


def _make_cpuset(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for name in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset takes no task before both are set
        (path / name).write_text((path.parent / name).read_text())


def _android_spec(host: LabHost, host_dir: Path, data_root: Path) -> dict:
    """What the phone's init needs for Android's policies (android_edge.Phone)."""
    for directory, mode in (("system", 0o711), ("misc", 0o711), ("misc/net", 0o700)):
        (data_root / directory).mkdir(parents=True, exist_ok=True)
        (data_root / directory).chmod(mode)
    wake_lock = termux.in_data(data_root, termux.WAKE_LOCK_FILE)
    wake_lock.touch()
    wake_lock.chmod(0o622)
    proc_net_link = host_dir / "fs" / "proc-net-link"
    proc_net_link.symlink_to(android_edge.DENIED_PROC_NET)
    denied = host_dir / "fs" / "android-denied"
    denied.mkdir(mode=0o700)
    boot_id = host_dir / "fs" / "boot_id"
    boot_id.write_text("\n")
    boot_id.chmod(0o444)
    cgroup = freezer_cgroup(host)
    cgroup.mkdir(parents=True, exist_ok=True)
    for path in (CPUSET_ROOT, cpuset_cgroup(host), cpuset_cgroup(host) / APP_CPUSET):
        _make_cpuset(path)
    (host_dir / "screen").write_text("on\n")
    return {
        "uid": host.uid,
        "freezer_cgroup": str(cgroup),
        "cpuset_cgroup": str(cpuset_cgroup(host)),
        "app_cpuset": str(cpuset_cgroup(host) / APP_CPUSET),
        "proc_net_link": str(proc_net_link),
        "denied_dir": str(denied),
        "boot_id_file": str(boot_id),
        "wake_lock_file": termux.WAKE_LOCK_FILE,
        "screen_file": str(host_dir / "screen"),
        "properties_file": str(storage_path(host_dir, termux.PROPERTIES_FILE)),
    }


def prepare_host(host: LabHost, host_dir: Path, authorized_key: str, rootfs: Path | None = None) -> Path:
    """Build the host's storage and write its init spec; return the spec's path. A systemd
    host boots an overlay of `rootfs` (llamafleet_lab.rootfs)."""
    (host_dir / "log").mkdir(parents=True)
    if host.boots_systemd:
        spec = systemd_host.build_systemd_host(host, host_dir, authorized_key, rootfs)
    elif host.is_phone:
        spec = build_phone_host(host, host_dir, authorized_key)
    else:
        spec = build_linux_host(host, host_dir, authorized_key)
    spec.update(
        name=host.name,
        kind=host.kind,
        hostname=host.name,
        netns=host.netns,
        log_dir=str(host_dir / "log"),
        status_file=str(host_dir / "status.json"),
    )
    spec.update(profiles.make_cpu_cgroup(host))  # its CPU share: the init's launcher joins it
    spec_path = host_dir / "init.json"
    spec_path.write_text(json.dumps(spec, indent=1) + "\n")
    return spec_path


def host_public_key(host: LabHost, host_dir: Path) -> str:
    """The host's sshd public key (for known_hosts)."""
    if host.is_phone:
        etc_ssh = termux.in_data(storage_path(host_dir, "/data"), termux.TERMUX_PREFIX + "/etc/ssh")
        return sshd.read_public_key(etc_ssh / sshd.HOST_KEY_NAME)
    return sshd.read_public_key(host_dir / "ssh" / sshd.HOST_KEY_NAME)
