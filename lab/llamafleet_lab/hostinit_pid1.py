"""PID 1 of one lab host: its mounts, sshd, boot (runsvdir, Termux:Boot), reboot and reaping.

See hostinit.py for what the init stands for and how it is started. Standard library only:
hostinit.py, run as `python -I -S`, loads android_edge.py, hostinit_system.py and then this file
by path (`-I` keeps this directory off sys.path), registering each in sys.modules under the
names imported below, which is how this file finds them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import sys
import time

import llamafleet_android_edge as android_edge
from llamafleet_hostinit_system import (
    MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, WATCHED, SpawnError,
    executable, is_zombie_or_gone, log, mount, processes, spawn, umount, write_json_atomically,
)

SSHD_RESTART_DELAY = 1.0
KILL_GRACE = 1.5  # seconds between SIGTERM and SIGKILL at reboot


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
