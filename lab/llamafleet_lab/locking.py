"""One lab command at a time on this machine: `lab_lock`, a flock on the lab state dir's parent."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

from llamafleet_lab.topology import state_dir

_HELD = {"depth": 0}  # lab_lock's nesting in this process


def _flock_holders(directory_fd: int) -> set[int]:
    """Pids /proc/locks names as holding a flock on the file behind `directory_fd`."""
    stat = os.fstat(directory_fd)
    inode = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    holders = set()
    with open("/proc/locks") as locks:
        for line in locks:
            fields = line.split()
            if "->" not in fields and "FLOCK" in fields and inode in fields:
                holders.add(int(fields[fields.index("FLOCK") + 3]))
    return holders


@contextlib.contextmanager
def lab_lock():
    """One lab command at a time. The lock is on the state dir's parent (which always exists
    and is not ours to create), so it leaves no file behind. Re-entrant within one process: a
    flock on a new descriptor waits even for its own process's lock, and a test session once
    kept such a lock on a descriptor it no longer knew of, so `up` waited for itself forever;
    a lock this process holds counts as held."""
    if _HELD["depth"]:
        _HELD["depth"] += 1
        try:
            yield
        finally:
            _HELD["depth"] -= 1
        return
    parent = state_dir().parent
    parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if os.getpid() in _flock_holders(descriptor):
                    break
                time.sleep(0.1)
        _HELD["depth"] = 1
        yield
    finally:
        _HELD["depth"] = 0
        os.close(descriptor)
