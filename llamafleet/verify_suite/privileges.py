"""Independent oracles for who runs llamafleet's processes and who may read its secrets, written
from the documented policy (README "Security by default", group_data/all.py `service_user`):

- on Linux every process llamafleet starts (the worker's rpc-server, the master's llama-server,
  its SSH tunnels, and under runit the svlogd logging each of them) runs as the service user,
  not root; on Termux as the app's own user;
- the API key (and the tunnel key, the chat template) can be read by root and that user only.

Parsers of what `ps`, /proc, `stat` and `getent` print; nothing here calls the product's code.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass
from typing import Iterable

# Every process with its user and whole command line. Termux has no `ps` until procps is
# installed: then /proc, where Android shows an app its own processes (the owner of
# /proc/PID is the process's user). A command line may hold any bytes: only printable ones
# are kept, so the listing always decodes, and it is printed by printf, not echo: dash's echo
# turns a `\0200` in an argument into a raw byte and stops at `\c` (CI met such a process).
PS_COMMAND = (
    "ps -ww -eo user:32,pid,args 2>/dev/null || for d in /proc/[0-9]*; do "
    "a=$(tr -c '[:print:]' ' ' < \"$d/cmdline\" 2>/dev/null); "
    "[ -n \"$a\" ] && printf '%s %s %s\\n' \"$(stat -c %U \"$d\" 2>/dev/null)\" \"${d#/proc/}\" \"$a\"; "
    "done; true"
)


@dataclass(frozen=True)
class Process:
    user: str
    pid: int
    argv: tuple[str, ...]  # the command line split on blanks, as ps prints it


def parse_ps(text: str) -> list[Process]:
    """`ps -eo user:32,pid,args` lines (the header skipped), or the /proc fallback's."""
    processes = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or not words[1].isdigit():
            continue  # the header, or a process without a command line
        processes.append(Process(words[0], int(words[1]), tuple(words[2:])))
    return processes


def what_it_is(process: Process, *, binary: str, key_file: str, log_root: str | None) -> str | None:
    """The llamafleet process this is, named as the checks name them, or None:
    - the service's own program, started by its full path: its file name;
    - a tunnel, `ssh -N` with the tunnel key: "tunnel <its -L forward>";
    - a logger, svlogd writing under `log_root`: "svlogd <its directory>"."""
    argv = process.argv
    program = posixpath.basename(argv[0])
    if argv[0] == binary:
        return posixpath.basename(binary)
    if program == "ssh" and "-N" in argv and key_file in argv:
        forward = argv[argv.index("-L") + 1] if "-L" in argv[:-1] else "?"
        return f"tunnel {forward}"
    if program == "svlogd" and log_root and argv[-1].startswith(log_root.rstrip("/") + "/"):
        return f"svlogd {argv[-1].rstrip('/')}"
    return None


def privilege_problems(processes: Iterable[Process], wanted: Iterable[str], user: str, **kinds) -> list[str]:
    """Each wanted process (by `what_it_is` name) must run, and every llamafleet process found,
    wanted or not, must run as `user`. `kinds`: what_it_is's binary, key_file and log_root."""
    ours = [(name, process) for process in processes if (name := what_it_is(process, **kinds))]
    problems = [f"{name}: not running" for name in wanted if name not in {found for found, _ in ours}]
    problems += [f"{name} (pid {process.pid}) runs as {process.user}, not {user}"
                 for name, process in ours if process.user != user]
    return problems


# --- who may read a file -------------------------------------------------------------------------


def stat_chain_command(path: str) -> str:
    """Mode, owner, group and name of `path` and of each directory above it, up to /."""
    return (f"p={shlex.quote(path)}; while :; do stat -c '%a %U %G %n' \"$p\" || exit 1; "
            "[ \"$p\" = / ] && break; p=$(dirname \"$p\"); done")


@dataclass(frozen=True)
class Entry:
    path: str
    mode: int
    user: str
    group: str


def parse_stat_chain(text: str) -> list[Entry]:
    entries = []
    for line in text.splitlines():
        mode, user, group, path = line.split(" ", 3)
        entries.append(Entry(path, int(mode, 8), user, group))
    return entries


def _allows(entry: Entry, name: str, in_group: bool, bit: int) -> bool:
    """Whether the permission bits give `name` this access (owner bits for the owner, group bits
    for a member, other bits for the rest, as the kernel picks exactly one class)."""
    if entry.user == name:
        return bool(entry.mode & (bit << 6))
    if in_group:
        return bool(entry.mode & (bit << 3))
    return bool(entry.mode & bit)


def readers(chain: list[Entry], passwd: str = "", group: str = "") -> set[str]:
    """Who can read the file `chain` starts with (then each directory above it, to /): root
    (always), and each user of `getent passwd` (or, without it, each owner in the chain) that the bits let
    pass every directory (x) and read the file (r). "*": anyone at all, the other bits allow it.
    Group membership: a user's primary group, or being listed in `getent group`."""
    users: dict[str, int | None] = {}
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) == 7:
            users[fields[0]] = int(fields[3])
    for entry in chain:
        users.setdefault(entry.user, None)
    groups: dict[str, tuple[int, set[str]]] = {}
    for line in group.splitlines():
        fields = line.split(":")
        if len(fields) == 4:
            groups[fields[0]] = (int(fields[2]), {m for m in fields[3].split(",") if m})

    def member(name: str, group_name: str) -> bool:
        gid, members = groups.get(group_name, (None, set()))
        return name in members or (gid is not None and users.get(name) == gid)

    found = {"root"} | {name for name in users if all(
        _allows(entry, name, member(name, entry.group), 4 if index == 0 else 1)
        for index, entry in enumerate(chain))}
    if all(entry.mode & (4 if index == 0 else 1) for index, entry in enumerate(chain)):
        found.add("*")
    return found
