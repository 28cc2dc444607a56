"""The lab's host inits among the machine's processes, found by their command line.

A host's init is `python -I -S .../hostinit.py init SPEC FD` (see hostinit.py); checking the
command line, not only the pid, means a pid recycled after a machine reboot is never taken for one.
"""

from __future__ import annotations

from pathlib import Path


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.rstrip(b"\0").decode(errors="replace").split("\0")


def is_lab_init(pid: int | None, directory: Path | None = None) -> bool:
    """True for a running host init (checked by its command line, so a recycled pid after a
    machine reboot is never killed)."""
    if not pid:
        return False
    argv = _cmdline(pid)
    if len(argv) < 4 or not argv[-4].endswith("hostinit.py") or argv[-3] != "init":
        return False
    return directory is None or argv[-2].startswith(str(directory) + "/")


def init_alive(pid: int | None) -> bool:
    return is_lab_init(pid) and not _is_zombie(pid)


def running_inits(directory: Path) -> set[int]:
    """Host inits of this state dir, found by command line (covers a lost state file)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_lab_init(int(entry.name), directory):
            pids.add(int(entry.name))
    return pids


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def process_exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


CONTAINER_MARK = "LLAMAFLEET_LAB_HOST"  # set by nspawn in a systemd host's PID 1 (systemd_host.py)


def containers_below(directory: Path) -> set[int]:
    """The systemd of every systemd host of this state dir, found by the variable nspawn put in
    its environment (it outlives a killed systemd-nspawn; SIGKILL to it ends the container)."""
    pids = set()
    mark = f"{CONTAINER_MARK}={directory}/".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(item.startswith(mark) for item in environment.split(b"\0")):
            pids.add(int(entry.name))
    return pids
