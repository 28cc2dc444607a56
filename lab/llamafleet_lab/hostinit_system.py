"""What a lab host's init (hostinit.py) needs of the kernel, and how it starts and finds processes.

Standard library only: hostinit.py, run as `python -I -S`, loads this file by path before it
mounts anything (see the note there), under the name `llamafleet_hostinit_system`.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import time

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
