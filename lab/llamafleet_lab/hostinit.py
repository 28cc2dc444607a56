"""PID 1 of one lab host, and the launcher that starts it inside the host's namespaces.

Stands for: the host's boot and init system. For a phone that is Android booting, the Termux
app's service daemon (runsvdir on $PREFIX/var/service) and the Termux:Boot app running
~/.termux/boot/*; for a Linux host it is a Debian box booted with runit (`runsvdir -P
/etc/service`) instead of systemd.

    python hostinit.py launch SPEC.json   # run by `lab up`: prints {"init_pid": N, ...}
    python hostinit.py init SPEC.json FD   # the init itself (started by launch)

`launch` enters the host's network namespace, unshares mount, UTS and PID namespaces and
forks the init, which becomes PID 1 of the new PID namespace: when it dies, the kernel kills
every process of the host, which is how `lab down` stops a host. The init mounts the host's
own /proc and /sys, bind-mounts the host's storage (SPEC "mounts"), sets the hostname, starts
sshd, then "boots" (see `boot`). It then reaps orphans and waits for signals: SIGUSR1 = reboot,
SIGUSR2 = the phone's first unlock, SIGTERM = power off.

A Linux host's sshd is a system service: restarted if it dies, spared by a reboot. A phone's sshd
is the one its user started by hand in Termux (`lab up`): nobody restarts it, and a reboot kills
every process of the phone; what comes back is what the Termux:Boot scripts start. A phone's
init also applies Android's policies to the app's processes (android_edge.py: no netlink, no
/proc/net, Doze, the phantom process killer).

Standard library only, and every module is imported up front: the init bind-mounts other
directories over /root, where the interpreter may live, so a later import could fail.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import signal
import socket
import stat
import sys
import time
import traceback
import importlib.util

# The Android edge of a phone (android_edge.py beside this file), loaded by path: `-I` keeps this
# script's directory off sys.path, and nothing may be imported after the mounts.
_spec = importlib.util.spec_from_file_location("llamafleet_android_edge", os.path.join(os.path.dirname(os.path.abspath(__file__)), "android_edge.py"))
android_edge = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = android_edge
_spec.loader.exec_module(android_edge)

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]

# Signals the init handles; they stay blocked and are collected with sigtimedwait.
WATCHED = {signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
SSHD_RESTART_DELAY = 1.0
KILL_GRACE = 1.5  # seconds between SIGTERM and SIGKILL at reboot


# --- syscalls -----------------------------------------------------------------------------


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def _b(value: str | None) -> bytes | None:
    return None if value is None else value.encode()


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


# --- small helpers ------------------------------------------------------------------------


def log(message: str) -> None:
    """The init's stdout is its log file (SPEC log_dir/init.log)."""
    print(time.strftime("%H:%M:%S"), message, flush=True)


def write_json_atomically(path: str, data: dict) -> None:
    temporary = path + ".new"
    with open(temporary, "w") as handle:
        json.dump(data, handle, indent=1)
    os.replace(temporary, path)


class SpawnError(OSError):
    """The child could not be started (exec failed, bad cwd or user)."""


def spawn(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: str,
    log_path: str,
    user: dict | None = None,
    fallback_shell: str | None = None,
    child_setup=None,
) -> int:
    """fork+exec a child in its own session, output appended to log_path; return its pid.

    `user` ({"uid", "gid", "groups"}) drops root first, after `child_setup()` ran. `fallback_shell` runs scripts that
    have no #! line, as Android's Termux does with $PREFIX/bin/sh. Raises SpawnError when the
    child cannot exec (reported through a close-on-exec pipe, as subprocess does).
    """
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    error_read, error_write = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid:
        os.close(log_fd)
        os.close(error_write)
        failure = b""
        while chunk := os.read(error_read, 4096):
            failure += chunk
        os.close(error_read)
        if failure:
            os.waitpid(pid, 0)
            raise SpawnError(f"cannot start {argv[0]}: {failure.decode(errors='replace')}")
        return pid
    try:  # child: nothing here may return into the init's code
        os.close(error_read)
        os.setsid()
        for number in WATCHED | {signal.SIGPIPE, signal.SIGXFSZ}:
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        if child_setup:  # while still root: the phone's cgroup and seccomp filter
            child_setup()
        os.closerange(3, error_write)
        os.closerange(error_write + 1, 1024)
        if user:
            os.setgroups(user["groups"])
            os.setgid(user["gid"])
            os.setuid(user["uid"])
        os.chdir(cwd)
        try:
            os.execve(argv[0], argv, env)
        except OSError as error:
            if error.errno != errno.ENOEXEC or not fallback_shell:
                raise
            os.execve(fallback_shell, [fallback_shell, *argv], env)
    except BaseException as error:
        try:
            os.write(error_write, str(error).encode() or type(error).__name__.encode())
        finally:
            os._exit(127)
    os._exit(127)


def processes() -> list[int]:
    """Pids of this PID namespace (our /proc is the namespace's own)."""
    return sorted(int(name) for name in os.listdir("/proc") if name.isdigit())


def executable(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def is_zombie_or_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# --- the init -----------------------------------------------------------------------------


class HostInit:
    """PID 1 of one lab host. All state lives here; see the module docstring."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.log_dir = spec["log_dir"]
        self.sshd_pid: int | None = None
        self.sshd_restart_at: float | None = None
        self.runsvdir_pid: int | None = None
        self.boot_scripts: dict[int, str] = {}  # pid -> script name, while they run
        self.boot_count = 0
        self.boot_log = os.path.join(self.log_dir, "boot.log")
        self.booted_at = 0.0
        self.boot_scripts_ran: list[str] = []
        self.boot_waits_for_unlock = False
        # A phone: Android's policies on the app's processes (android_edge.Phone).
        self.android = android_edge.Phone(spec["android"], log) if spec.get("android") else None

    # -- setup, once ---------------------------------------------------------------------

    def setup(self) -> None:
        # A /proc and /sys of our own: the PID namespace's processes, the netns's interfaces.
        if self.android:
            self.android.open_cgroup()  # the machine's cgroups are hidden once /sys is ours
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        umount("/sys", MNT_DETACH)
        mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        if self.android:
            self.android.mask(lambda source, target: mount(source, target, None, MS_BIND))
        for entry in self.spec["mounts"]:
            if entry["type"] == "bind":
                mount(entry["source"], entry["target"], None, MS_BIND)
            elif entry["type"] == "tmpfs":
                mount("tmpfs", entry["target"], "tmpfs", MS_NOSUID | MS_NODEV, entry.get("options"))
            else:
                raise ValueError(f"unknown mount type {entry['type']!r}")
        self.make_dirs()
        socket.sethostname(self.spec["hostname"])
        os.chdir("/")  # not the directory `lab up` ran in: processes inherit the init's

    def make_dirs(self) -> None:
        for entry in self.spec.get("dirs", []):
            os.makedirs(entry["path"], exist_ok=True)
            os.chmod(entry["path"], entry["mode"])

    # -- children ------------------------------------------------------------------------

    def start_sshd(self) -> None:
        sshd = self.spec["sshd"]
        self.sshd_pid = spawn(
            sshd["argv"],
            env=self.spec["env"],
            cwd="/",
            log_path=os.path.join(self.log_dir, "sshd.log"),
            user=self.spec["user"] if sshd["as_user"] else None,
            child_setup=self.android.child_setup if self.android else None,
        )
        self.sshd_restart_at = None
        log(f"sshd started (pid {self.sshd_pid})")

    def start_runsvdir(self) -> None:
        runsvdir = self.spec["runsvdir"]
        self.runsvdir_pid = spawn(
            runsvdir["argv"],
            env=self.spec["env"],
            cwd=runsvdir["cwd"],
            log_path=os.path.join(self.log_dir, "runsvdir.log"),
            user=self.spec["user"],
            child_setup=self.android.child_setup if self.android else None,
        )
        if runsvdir.get("pidfile"):
            with open(runsvdir["pidfile"], "w") as handle:
                handle.write(f"{self.runsvdir_pid}\n")
            if self.spec["user"]:
                os.chown(runsvdir["pidfile"], self.spec["user"]["uid"], self.spec["user"]["gid"])
        log(f"runsvdir started (pid {self.runsvdir_pid})")

    def note_boot(self, line: str) -> None:
        with open(self.boot_log, "a") as handle:
            handle.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} boot {self.boot_count}: {line}\n")

    def run_boot_scripts(self) -> list[str]:
        """Termux:Boot: every file of ~/.termux/boot, sorted by name, started in the background.

        Like the app (BootReceiver/BootJobService): files are sorted by name, made readable and
        executable if needed, and each is handed to Termux as a background task without waiting
        for the previous one; the first entry that is not a regular file ends the list.
        """
        boot_dir = self.spec.get("boot_dir")
        if not boot_dir or not os.path.isdir(boot_dir):
            self.note_boot("No files to execute at boot")
            return []
        started: list[str] = []
        user = self.spec["user"]
        for name in sorted(os.listdir(boot_dir)):
            path = os.path.join(boot_dir, name)
            if not os.path.isfile(path):
                break
            mode = os.stat(path).st_mode
            if mode & (stat.S_IRUSR | stat.S_IXUSR) != (stat.S_IRUSR | stat.S_IXUSR):
                os.chmod(path, mode | stat.S_IRUSR | stat.S_IXUSR)
            try:
                pid = spawn(
                    [path],
                    env=self.spec["env"],
                    cwd=self.spec["home"],
                    log_path=os.path.join(self.log_dir, f"boot-{name}.log"),
                    user=user,
                    fallback_shell=self.spec.get("boot_shell"),
                    child_setup=self.android.child_setup if self.android else None,
                )
            except SpawnError as error:  # Termux would log the failure and go on
                self.note_boot(f"{name} failed to start: {error}")
                continue
            self.boot_scripts[pid] = name
            self.note_boot(f"started {name} (pid {pid})")
            started.append(name)
        self.note_boot("Executed files at boot: " + ", ".join(started) if started else "No files to execute at boot")
        return started

    # -- boot, reboot ----------------------------------------------------------------------

    def boot(self) -> None:
        self.boot_count += 1
        self.booted_at = time.time()
        for path in self.spec.get("volatile_files", []):
            if os.path.lexists(path):
                os.unlink(path)
        for directory in self.spec.get("volatile_dirs", []):
            for name in os.listdir(directory):
                path = os.path.join(directory, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
        self.make_dirs()
        if self.android:
            self.android.new_boot()
        if self.spec.get("runsvdir"):
            try:
                self.start_runsvdir()
            except SpawnError as error:
                if self.boot_count == 1:  # `lab up` reports it
                    raise
                log(f"{error}")  # a broken service manager must not take the host down
        self.boot_scripts_ran = []
        # Termux:Boot acts on BOOT_COMPLETED, which a phone with a screen lock sends only after
        # the first unlock (`lab unlock HOST`). `lab up` stands for a phone already in use.
        self.boot_waits_for_unlock = self.boot_count > 1 and os.path.exists(self.spec.get("pin_file") or "/nonexistent")
        if self.boot_waits_for_unlock:
            self.note_boot("locked: Termux:Boot waits for the first unlock")
        elif self.spec.get("boot_dir"):
            self.boot_scripts_ran = self.run_boot_scripts()
        self.write_status()
        log(f"boot {self.boot_count} done")

    def unlock(self) -> None:
        if not self.boot_waits_for_unlock:
            return
        self.boot_waits_for_unlock = False
        self.note_boot("unlocked")
        self.boot_scripts_ran = self.run_boot_scripts()
        self.write_status()

    def write_status(self) -> None:
        status = {
            "boot_count": self.boot_count,
            "booted_at": self.booted_at,
            "sshd_pid": self.sshd_pid,
            "runsvdir_pid": self.runsvdir_pid,
            "boot_scripts": self.boot_scripts_ran,
            "locked": self.boot_waits_for_unlock,
        }
        if self.android:
            status.update(self.android.counters)
        write_json_atomically(self.spec["status_file"], status)

    def spared(self, pid: int) -> bool:
        """A Linux host's reboot keeps PID 1 and sshd (the listener and its sessions' privileged
        halves: sshd is a system service that comes back at boot). A phone's keeps only PID 1:
        nothing of the app survives (Termux starts no sshd by itself)."""
        if pid == 1:
            return True
        return self.spec["sshd"]["supervised"] and executable(pid) == self.spec["sshd"]["argv"][0]

    def victims(self) -> list[int]:
        return [pid for pid in processes() if not self.spared(pid) and not is_zombie_or_gone(pid)]

    def kill_all_but_sshd(self) -> None:
        """SIGTERM every process but PID 1 and sshd; SIGKILL whatever is left after KILL_GRACE
        (including processes started meanwhile, e.g. a service runsv restarted)."""
        for pid in self.victims():
            self.signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE
        while self.victims() and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.05)
        give_up = time.monotonic() + 5
        while (left := self.victims()) and time.monotonic() < give_up:
            for pid in left:
                self.signal(pid, signal.SIGKILL)
            time.sleep(0.02)
            self.reap()
        self.reap()
        if left:
            log(f"reboot: processes survived SIGKILL: {left}")

    @staticmethod
    def signal(pid: int, number: int) -> None:
        try:
            os.kill(pid, number)
        except ProcessLookupError:
            pass

    def reboot(self) -> None:
        log("reboot requested")
        if self.android:
            self.android.thaw()  # a frozen process takes its SIGKILL only once thawed
        self.kill_all_but_sshd()
        self.runsvdir_pid = None
        if not self.spec["sshd"]["supervised"]:
            self.sshd_pid = None
        self.boot_scripts.clear()
        self.boot()

    def power_off(self) -> None:
        log("power off")
        sys.exit(0)  # as PID 1, our exit makes the kernel kill the whole namespace

    # -- reaping ----------------------------------------------------------------------------

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            if pid == self.sshd_pid:
                self.sshd_pid = None
                if self.spec["sshd"]["supervised"]:
                    log(f"sshd exited ({code}); restarting in {SSHD_RESTART_DELAY}s")
                    self.sshd_restart_at = time.monotonic() + SSHD_RESTART_DELAY
                else:  # the phone's user started it by hand: nobody restarts it
                    log(f"sshd exited ({code})")
            elif pid == self.runsvdir_pid:
                log(f"runsvdir exited ({code})")
                self.runsvdir_pid = None
            elif pid in self.boot_scripts:
                self.note_boot(f"{self.boot_scripts.pop(pid)} exited with status {code}")

    def serve(self) -> None:
        while True:
            info = signal.sigtimedwait(WATCHED, 0.5)
            if info is None or info.si_signo == signal.SIGCHLD:
                self.reap()
            elif info.si_signo == signal.SIGUSR1:
                self.reboot()
            elif info.si_signo == signal.SIGUSR2:
                self.unlock()
            elif info.si_signo in (signal.SIGTERM, signal.SIGINT):
                self.power_off()
            if self.android and self.android.tick():
                self.write_status()
            if self.sshd_restart_at is not None and time.monotonic() >= self.sshd_restart_at:
                try:
                    self.start_sshd()
                except SpawnError as error:
                    log(f"{error}; retrying")
                    self.sshd_restart_at = time.monotonic() + SSHD_RESTART_DELAY


def run_init(spec_path: str, ready_fd: int) -> int:
    with open(spec_path) as handle:
        spec = json.load(handle)
    # Handlers make the kernel deliver these signals to a PID 1 at all; blocking them lets
    # sigtimedwait collect them one at a time, never in the middle of a reboot.
    for number in WATCHED:
        signal.signal(number, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
    init = HostInit(spec)
    try:
        init.setup()
        init.start_sshd()
        init.boot()
    except BaseException as error:
        traceback.print_exc()
        os.write(ready_fd, f"error: {error}\n".encode())
        return 1
    os.write(ready_fd, b"ready\n")
    os.close(ready_fd)
    init.serve()
    return 0


# --- the launcher -------------------------------------------------------------------------


def launch(spec_path: str) -> int:
    """Start the host's init in fresh namespaces; print its pid (as seen by the machine)."""
    with open(spec_path) as handle:
        spec = json.load(handle)
    netns_fd = os.open(f"/run/netns/{spec['netns']}", os.O_RDONLY)
    setns(netns_fd, CLONE_NEWNET)
    os.close(netns_fd)
    namespaces = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWPID
    if spec.get("android"):
        # The phone's cpuset cgroup becomes the root of its cgroup namespace: its processes read
        # Android-like paths in /proc/self/cpuset ("/top-app"), not the machine's.
        with open(os.path.join(spec["android"]["cpuset_cgroup"], "cgroup.procs"), "w") as handle:
            handle.write("0")
        namespaces |= CLONE_NEWCGROUP
    unshare(namespaces)
    # Nothing the host mounts may propagate back to the machine.
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setsid()
            log_fd = os.open(os.path.join(spec["log_dir"], "init.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            devnull = os.open("/dev/null", os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.execv(sys.executable, [sys.executable, "-I", "-S", os.path.abspath(__file__), "init", spec_path, str(write_end)])
        finally:
            os._exit(127)
    os.close(write_end)
    message = b""
    while chunk := os.read(read_end, 4096):
        message += chunk
    text = message.decode(errors="replace").strip()
    ready = text == "ready"
    print(json.dumps({"init_pid": pid, "ready": ready, "message": text or "init exited before it was ready"}))
    return 0 if ready else 1


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "launch":
        return launch(argv[1])
    if len(argv) == 3 and argv[0] == "init":
        return run_init(argv[1], int(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
