"""The init of a lab systemd host: it boots a Debian rootfs under systemd-nspawn and stays its
power button.

Stands for: a Linux machine whose PID 1 is real systemd (Debian, Raspberry Pi OS, Ubuntu), so
units, journald, `systemctl`, ufw's and firewalld's boot-time rule loading are the real ones.
`systemd-nspawn --boot` runs the rootfs' /sbin/init (systemd) as PID 1 of a new PID namespace in
the host's network namespace (--network-namespace-path; --capability=CAP_NET_ADMIN so the host
can run its own firewall there); --register=no --keep-unit because this machine has no systemd
to register with (systemd-nspawn(1)).

A reboot inside the host (`systemctl reboot`, or `lab reboot`, which sends the container's
systemd SIGINT: its ctrl-alt-del, i.e. reboot, per systemd(1)) ends nspawn with exit status 133,
as systemd-nspawn(1) documents; this init then boots it again, as firmware would. Any other
exit is a power-off. When this init is killed (`lab down`), the kernel kills nspawn
(PR_SET_PDEATHSIG), which takes the container with it, and the mount namespace holding the
host's overlay root goes away with its last process.

Standard library only; loaded by path from hostinit.py under `python -I -S`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time

from llamafleet_hostinit_system import WATCHED, log, spawn, write_json_atomically

REBOOT_EXIT_STATUS = 133  # systemd-nspawn(1): "the container requested a reboot"
SSH_WAIT_SECONDS = 60.0
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


CGROUP_ROOT = "/sys/fs/cgroup"
LAB_CGROUP = "llamafleet-lab"


def cgroup_dirs(name: str) -> list[str]:
    """The host's own cgroup in every hierarchy this machine mounts (cgroup v1 controllers,
    name=systemd, the unified v2 one): /sys/fs/cgroup/<hierarchy>/llamafleet-lab/nspawn-<name>."""
    dirs = []
    for hierarchy in sorted(os.listdir(CGROUP_ROOT)):
        path = os.path.join(CGROUP_ROOT, hierarchy)
        if not os.path.islink(path) and os.path.isfile(os.path.join(path, "cgroup.procs")):
            dirs.append(os.path.join(path, LAB_CGROUP, f"nspawn-{name}"))
    return dirs


def _enter_own_cgroups(name: str) -> None:
    """Each container's systemd must own its own cgroup subtree: nspawn started in the machine's
    root cgroup makes "payload" and "supervisor" there, so two containers would share them (and
    their units' cgroups: stopping a unit in one would kill the other's processes)."""
    for directory in cgroup_dirs(name):
        os.makedirs(directory, exist_ok=True)
        if os.path.exists(os.path.join(directory, "cpuset.cpus")):
            # A v1 cpuset takes no task before cpus and mems are set: the parent's, level by level.
            for level in (os.path.dirname(directory), directory):
                for key in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(os.path.dirname(level), key)) as parent, open(os.path.join(level, key), "w") as own:
                        own.write(parent.read())
        with open(os.path.join(directory, "cgroup.procs"), "w") as procs:
            procs.write("0")


def _die_with_parent() -> None:
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _ssh_answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5) as connection:
            connection.settimeout(0.5)
            return connection.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(parent, []).append(int(entry))
    return tree


def _namespace_pid(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("NSpid:"):
                    return line.split()[-1]
    except OSError:
        pass
    return ""


class NspawnHost:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.nspawn_pid = 0
        self.boot_count = 0
        self.booted_at = 0.0

    def start(self) -> None:
        self.nspawn_pid = spawn(
            self.spec["nspawn_argv"],
            # /proc/sys/net writable, as on a real box (nspawn does so only for a network
            # namespace it made itself; systemd's docs/ENVIRONMENT.md lists this switch).
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "SYSTEMD_LOG_COLOR": "0",
                 "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"},
            cwd="/",
            log_path=os.path.join(self.spec["log_dir"], "console.log"),
            child_setup=lambda: (_enter_own_cgroups(self.spec["name"]), _die_with_parent()),
        )
        log(f"systemd-nspawn started, pid {self.nspawn_pid}")

    def container_init(self) -> int | None:
        """The container's PID 1 (systemd) as this machine numbers it: the descendant of
        nspawn whose innermost PID is 1."""
        tree, waiting = _children(), [self.nspawn_pid]
        while waiting:
            pid = waiting.pop()
            if pid != self.nspawn_pid and _namespace_pid(pid) == "1":
                return pid
            waiting += tree.get(pid, [])
        return None

    def wait_until_up(self) -> None:
        """Booted means sshd answers: what a user waits for after powering a box on."""
        deadline = time.monotonic() + SSH_WAIT_SECONDS
        while not _ssh_answers(self.spec["address"], self.spec["ssh_port"]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not answer within {SSH_WAIT_SECONDS:.0f}s of booting (see console.log)")
            try:
                if os.waitpid(self.nspawn_pid, os.WNOHANG)[0]:
                    raise RuntimeError("systemd-nspawn exited while booting (see console.log)")
            except ChildProcessError:
                raise RuntimeError("systemd-nspawn is gone (see console.log)") from None
            time.sleep(0.2)
        # ...and the boot finished (the firewall loaded its rules): `is-system-running --wait`
        # returns when systemd leaves "starting" (systemctl(1)).
        container = self.container_init()
        if container:
            subprocess.run(["nsenter", "-t", str(container), "-a", "systemctl", "is-system-running", "--wait"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=SSH_WAIT_SECONDS)
        self.boot_count += 1
        self.booted_at = time.time()
        self.write_status()
        log(f"boot {self.boot_count}: sshd answers")

    def write_status(self) -> None:
        write_json_atomically(self.spec["status_file"], {
            "boot_count": self.boot_count,
            "booted_at": self.booted_at,
            "nspawn_pid": self.nspawn_pid,
            "container_pid": self.container_init(),
            "boot_scripts": [],
            "locked": False,
        })

    def boot(self) -> None:
        self.start()
        self.wait_until_up()

    def signal_container(self, number: int, what: str) -> None:
        pid = self.container_init()
        if pid:
            log(f"{what}: signal {number} to the container's systemd (pid {pid})")
            os.kill(pid, number)

    def serve(self) -> None:
        while True:
            info = signal.sigtimedwait(WATCHED, 1.0)
            if info is None:
                continue
            if info.si_signo == signal.SIGUSR1:
                self.signal_container(signal.SIGINT, "reboot")  # systemd: ctrl-alt-del.target
            elif info.si_signo in (signal.SIGTERM, signal.SIGINT):
                self.signal_container(signal.SIGRTMIN + 4, "power off")  # systemd: poweroff.target
            elif info.si_signo == signal.SIGCHLD:
                try:
                    pid, status = os.waitpid(self.nspawn_pid, os.WNOHANG)
                except ChildProcessError:
                    return
                if not pid:
                    continue
                code = os.waitstatus_to_exitcode(status)
                if code != REBOOT_EXIT_STATUS:
                    log(f"systemd-nspawn exited with {code}: powered off")
                    return
                log("the container rebooted: booting it again")
                try:
                    self.boot()
                except RuntimeError as error:
                    log(f"reboot failed: {error}")
                    return
