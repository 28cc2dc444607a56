"""What Android's kernel policy does to every process of an app, applied to a lab phone's processes.

Standard library only: the phone's init (hostinit.py, run with `python -I -S`) loads this file by
path, and `lab exec` runs it as a wrapper on the machine side (`python -I -S android_edge.py
ENTER.json -- nsenter ...`), so every program on a phone, not only llamafleet's, meets the same
edge.

Stands for:
- **Netlink is refused to apps.** Android 10+ denies untrusted apps netlink sock_diag and route
  dumps through SELinux (termux-app issues #1450, #2993, #4138; Android 10 and 11 behaviour
  changes on netlink/MAC addresses): `ss` says "Cannot open netlink socket: Permission denied",
  `ip addr` fails the same way. The lab installs a seccomp filter that makes
  socket(AF_NETLINK, ...) fail with EACCES.
- **/proc/net is not readable by apps** (Android 10+, SELinux `proc_net` denial, same issues):
  the phone's init replaces the /proc/net link with one to a directory the app cannot enter
  (see `mask_proc_net`), so `cat /proc/net/tcp` and the fallbacks of ss and netstat get
  "Permission denied". /proc/<pid>/net stays readable in the lab (Android hides it too); tools
  read /proc/net.
- **Doze** (Android's Doze and App Standby docs; termux-tools `termux-wake-lock`; termux-app
  #377): without a wake lock, an idle phone with its screen off stops giving background apps CPU
  and network, with short maintenance windows between. Processes the phone's init starts (sshd,
  its sessions, boot scripts, services) are in the phone's freezer cgroup, which `Phone.tick`
  freezes while the phone dozes; a frozen sshd answers no one, as a dozing phone's Wi-Fi goes
  quiet. Lab timings are scaled down (DozeTimings). `lab exec` on a phone stands for a command
  typed in the Termux app: it joins the same cgroup.
- **Phantom process killer** (Android 12+; termux-app #2366, #4388): more than 32 processes
  forked by apps get the excess SIGKILLed ("[Process completed (signal 9)]"). `Phone.tick` counts
  the app user's processes and kills the youngest above the limit, unless the phone's property
  persist.sys.fflag.override.settings_enable_monitor_phantom_procs is "false" (how Android
  12L+ turns it off). Android checks on process events and picks victims by its own LRU order;
  the lab checks every half second.
- **cpusets** (Android's `/dev/cpuset/top-app`, `background`, ...; termux-app #5086): the
  app's processes are in a cpuset cgroup named like Android's, at the root of the phone's cgroup
  namespace, so /proc/self/cpuset reads "/top-app"; `lab cpuset PHONE background` holds them to
  the first half of the CPUs as Android does to a background app.
- **A new boot id per boot** (/proc/sys/kernel/random/boot_id), and **thermal zones that the app
  cannot read** (SELinux on many phones; /sys/class/thermal is replaced by a directory the app
  cannot enter).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import signal
import sys
import time
import uuid
from dataclasses import dataclass

PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
AF_NETLINK = 16
# BPF: ld word at k; jump if equal to k; return k
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_RET_K = 0x06
# seccomp_data: nr at 0, arch at 4, args[0] at 16 (low 32 bits on little-endian).
_NR_OFFSET, _ARCH_OFFSET, _ARG0_OFFSET = 0, 4, 16
# (audit arch, socket syscall number) of the machines the lab runs on.
_SOCKET_SYSCALL = {
    "x86_64": (0xC000003E, 41),
    "aarch64": (0xC00000B7, 198),
}

# The directory /proc/net points to on a phone: below /data/misc, which Android keeps root-only.
DENIED_PROC_NET = "/data/misc/net"
OPEN_TREE_CLONE = 1
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
MOVE_MOUNT_F_EMPTY_PATH = 0x4
_SYS_OPEN_TREE = 428  # the same number on x86_64 and aarch64 (new syscalls are unified)
_SYS_MOVE_MOUNT = 429

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def netlink_filter() -> list[tuple[int, int, int, int]]:
    """The seccomp program (code, jt, jf, k): socket(AF_NETLINK, ...) -> EACCES, else allow."""
    arch, socket_nr = _SOCKET_SYSCALL[platform.machine()]
    deny = SECCOMP_RET_ERRNO | errno.EACCES
    return [
        (BPF_LD_W_ABS, 0, 0, _ARCH_OFFSET),
        (BPF_JEQ_K, 0, 5, arch),  # another ABI (never used here): allow
        (BPF_LD_W_ABS, 0, 0, _NR_OFFSET),
        (BPF_JEQ_K, 0, 3, socket_nr),
        (BPF_LD_W_ABS, 0, 0, _ARG0_OFFSET),
        (BPF_JEQ_K, 0, 1, AF_NETLINK),
        (BPF_RET_K, 0, 0, deny),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]


def deny_netlink() -> None:
    """Install the filter in this process; every child inherits it and none can remove it.
    The phone's init calls it while still root (CAP_SYS_ADMIN), so no_new_privs is not set."""
    program = netlink_filter()
    filters = (_SockFilter * len(program))(*[_SockFilter(*instruction) for instruction in program])
    fprog = _SockFprog(len(program), filters)
    if os.geteuid() != 0:  # without CAP_SYS_ADMIN the kernel asks for no_new_privs first
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"seccomp filter: {os.strerror(error)}")


def mask_proc_net(link_source: str) -> None:
    """Mount the symlink `link_source` (-> DENIED_PROC_NET) over the /proc/net symlink itself.

    mount(2) would follow /proc/net to /proc/<our pid>/net; the new mount API's move_mount
    does not follow the target, so every process's /proc/net resolves to the denied place.
    """
    tree = _libc.syscall(_SYS_OPEN_TREE, AT_FDCWD, link_source.encode(), OPEN_TREE_CLONE | AT_SYMLINK_NOFOLLOW)
    if tree < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"open_tree {link_source}: {os.strerror(error)}")
    try:
        if _libc.syscall(_SYS_MOVE_MOUNT, int(tree), b"", AT_FDCWD, b"/proc/net", MOVE_MOUNT_F_EMPTY_PATH) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"move_mount onto /proc/net: {os.strerror(error)}")
    finally:
        os.close(int(tree))


def join_cgroup(procs_fd: int) -> None:
    """Move the calling process into the cgroup whose cgroup.procs is open on `procs_fd`."""
    os.write(procs_fd, b"0")


@dataclass(frozen=True)
class DozeTimings:
    """Seconds, scaled down from Android's (light Doze after minutes of screen-off idle, windows
    every few minutes; deep Doze after about an hour)."""

    after: float = 15.0  # idle without wake lock, screen off, before dozing
    frozen: float = 20.0  # one doze period
    window: float = 5.0  # maintenance window between periods


PHANTOM_LIMIT = 32
PHANTOM_PROPERTY = "persist.sys.fflag.override.settings_enable_monitor_phantom_procs"


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _property(properties_file: str, key: str) -> str:
    for line in _read(properties_file).splitlines():
        name, _, value = line.partition("=")
        if name == key:
            return value
    return ""


def _user_processes(uid: int) -> list[tuple[int, int, str]]:
    """(start time, pid, name) of `uid`'s live processes in this PID namespace."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as handle:
                status = handle.read()
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        owner = next((line.split()[1] for line in status.splitlines() if line.startswith("Uid:")), "")
        if owner == str(uid) and fields[0] != "Z":
            name = next((line.split(None, 1)[1] for line in status.splitlines() if line.startswith("Name:")), "?")
            found.append((int(fields[19]), int(entry), name.strip()))
    return found


class Phone:
    """The Android side of one lab phone's init: see the module docstring. `spec` is the
    "android" part of the host's init spec (hostsetup.build_phone_host)."""

    def __init__(self, spec: dict, log) -> None:
        self.spec = spec
        self.log = log
        self.timings = DozeTimings(**spec.get("doze", {}))
        self.procs_fds: list[int] = []
        self.freezer_fd: int | None = None
        self.frozen_since: float | None = None
        self.idle_since: float | None = None
        self.thawed_at = 0.0
        self.counters = {"peak_processes": 0, "phantom_kills": 0, "dozes": 0, "dozing": False}

    # -- at setup, before the host's own /sys hides the machine's cgroups ----------------------
    def open_cgroup(self) -> None:
        cgroup = self.spec["freezer_cgroup"]
        self.procs_fds = [
            os.open(os.path.join(directory, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
            for directory in (cgroup, self.spec["app_cpuset"])
        ]
        self.freezer_fd = os.open(os.path.join(cgroup, "freezer.state"), os.O_WRONLY | os.O_CLOEXEC)

    def mask(self, bind) -> None:
        """After the host's /proc and /sys are mounted: /proc/net, boot_id, thermal zones."""
        mask_proc_net(self.spec["proc_net_link"])
        bind(self.spec["boot_id_file"], "/proc/sys/kernel/random/boot_id")
        bind(self.spec["denied_dir"], "/sys/class/thermal")

    def child_setup(self) -> None:
        """In a child of the init, before it drops root and execs: the app's cgroup and filter."""
        for procs_fd in self.procs_fds:
            join_cgroup(procs_fd)
        deny_netlink()

    # -- at every boot -------------------------------------------------------------------------
    def new_boot(self) -> None:
        self.thaw()
        # Written in place: the file is bind-mounted over /proc/.../boot_id.
        with open(self.spec["boot_id_file"], "w") as handle:
            handle.write(f"{uuid.uuid4()}\n")
        wake_lock = self.spec["wake_lock_file"]
        with open(wake_lock, "w"):
            pass  # a reboot drops the wake lock
        os.chmod(wake_lock, 0o622)
        self.idle_since = None

    # -- every half second ---------------------------------------------------------------------
    def tick(self) -> bool:
        """Enforce the phantom limit and Doze; True when a counter changed (status to write)."""
        changed = self._phantom_killer()
        return self._doze() or changed

    def _phantom_killer(self) -> bool:
        processes = _user_processes(self.spec["uid"])
        changed = False
        if len(processes) > self.counters["peak_processes"]:
            self.counters["peak_processes"] = len(processes)
            changed = True
        if _property(self.spec["properties_file"], PHANTOM_PROPERTY) == "false":
            return changed
        excess = len(processes) - PHANTOM_LIMIT
        for _, pid, name in sorted(processes, reverse=True)[: max(excess, 0)]:
            self.log(f"phantom process killer: {len(processes)} processes > {PHANTOM_LIMIT}: killing {pid} ({name})")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            self.counters["phantom_kills"] += 1
            changed = True
        return changed

    def awake(self) -> bool:
        """A wake lock held, or the screen on (`lab screen HOST on|off`; on after `lab up`)."""
        return _read(self.spec["wake_lock_file"]) == "held" or _read(self.spec["screen_file"]) != "off"

    def _doze(self) -> bool:
        now = time.monotonic()
        if self.awake():
            self.idle_since = None
            return self.thaw()
        self.idle_since = self.idle_since or now
        if self.frozen_since is not None:
            if now - self.frozen_since >= self.timings.frozen:
                self.thaw()
                return True
            return False
        if now - self.idle_since >= self.timings.after and now - self.thawed_at >= self.timings.window:
            self._set_freezer(b"FROZEN")
            self.frozen_since = now
            self.counters["dozes"] += 1
            self.counters["dozing"] = True
            self.log("doze: no wake lock, screen off: background processes frozen")
            return True
        return False

    def thaw(self) -> bool:
        if self.frozen_since is None:
            return False
        self._set_freezer(b"THAWED")
        self.frozen_since = None
        self.thawed_at = time.monotonic()
        self.counters["dozing"] = False
        self.log("doze: maintenance window (thawed)")
        return True

    def _set_freezer(self, state: bytes) -> None:
        if self.freezer_fd is not None:
            os.write(self.freezer_fd, state)


def main(argv: list[str]) -> int:
    """`lab exec` on a phone (machine side, as root, before nsenter): into the phone's cgroups
    (a command typed in the Termux app is one of its processes: frozen in Doze, held to its
    cpuset), the netlink denial every phone process has, then exec the command."""
    cgroups = []
    while len(argv) >= 2 and argv[0] == "--cgroup":
        cgroups.append(argv[1])
        argv = argv[2:]
    if len(argv) < 2 or argv[0] != "--":
        print("usage: android_edge.py [--cgroup DIR]... -- COMMAND...", file=sys.stderr)
        return 2
    for directory in cgroups:
        procs = os.open(os.path.join(directory, "cgroup.procs"), os.O_WRONLY)
        join_cgroup(procs)
        os.close(procs)
    deny_netlink()
    os.execvp(argv[1], argv[1:])
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
