"""Undoing what the deploy put on a host (`llamafleet remove`, remove.py): each operation reads
what is there and yields commands only for llamafleet's own traces, so a second run changes nothing.

How a trace is known to be llamafleet's, and never something of the user's of the same name:
- a service: its name is one llamafleet gives (llama-rpc, llama-server, llama-tunnel-*) and its
  definition (runit run script, systemd unit) carries llamafleet's "Managed by llamafleet" header;
- a service's log directory (termux-services keeps them in $PREFIX/var/log/sv/<name>): named
  after one of those services, whose definition is llamafleet's or gone;
- the wake lock: llamafleet's record says it took it in this boot (llamafleet.serving.wakelock);
- a directory named after llamafleet (/etc/llamafleet): removed only once empty;
- the service user: its comment is the one the deploy gives the account it makes.
The rest (the Termux:Boot script, the sysctl drop-in, the firewall, the secrets, the tunnel key
line, the base directory) is done with pyinfra's own operations or those of its module.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, operation

from llamafleet.serving.services import ManagedServices, definitions_root, layout_for, retire_commands
from llamafleet.serving.wakelock import BOOT_ID_FILE, parse_record

# Every service the deploy defines is one of these (tasks/workers.py, tasks/master.py).
SERVICE_NAMES = ("llama-rpc", "llama-server", "llama-tunnel-*")
MANAGED = "Managed by llamafleet"  # the header of every run script and unit (templates/runit, systemd)


def _globs(root: str, pattern: str) -> str:
    """The shell words for each service name under `root` (`pattern` has {} for the name)."""
    return " ".join(f"{shlex.quote(root)}/{pattern.format(name)}" for name in SERVICE_NAMES)


def _is_ours(definition: str) -> str:
    """A shell test: the service definition file (unit or run script) has llamafleet's header."""
    return f"grep -qs {shlex.quote(MANAGED)} {definition}"


class LlamafleetServices(FactBase):
    """
    The services llamafleet defined under one manager: named as its services are and carrying
    its header (a user's own `llama-server` under runit is not one of them).

    .. code:: python

        ["llama-rpc", "llama-tunnel-phone1"]
    """

    @staticmethod
    def default() -> list:
        # No output is no service (pyinfra hands process() nothing and returns default()).
        return []

    def command(self, manager: str, prefix: str | None = None) -> str:
        root = definitions_root(manager, prefix)
        if manager == "systemd":
            unit_is_ours = _is_ours('"$f"')
            return (f"for f in {_globs(root, 'llamafleet-{}.service')}; do "
                    f'[ -f "$f" ] && {unit_is_ours} && echo "$f"; done; true')
        run_is_ours = _is_ours('"$d/run"')
        return f'for d in {_globs(root, "{}")}; do [ -d "$d" ] && {run_is_ours} && echo "$d"; done; true'

    def process(self, output):
        # Paths to names, as ManagedServices reads them (llamafleet-<name>.service for systemd).
        return ManagedServices().process(output)


@operation()
def services_removed(manager: str, prefix: str | None = None):
    """
    Stop, disable and remove every service llamafleet defined under `manager` (the commands
    that retire a tunnel no longer planned: llamafleet.serving.services.retire_commands).

    + manager: termux-services, runit or systemd
    + prefix: Termux's $PREFIX (termux-services only)

    **Example:**

    .. code:: python

        services_removed(name="llamafleet's runit services", manager="runit")
    """
    names = host.get_fact(LlamafleetServices, manager=manager, prefix=prefix)
    if not names:
        host.noop(f"no llamafleet service under {manager}")
        return
    for name in names:
        yield from retire_commands(layout_for(manager, name, prefix), name)


class TermuxServiceLogs(FactBase):
    """
    The log directories termux-services' svlogd keeps for llamafleet's services
    ($PREFIX/var/log/sv/<name>): those whose service is llamafleet's or gone, not those of a
    user's own service of the same name.

    .. code:: python

        ["/data/data/com.termux/files/usr/var/log/sv/llama-rpc"]
    """

    @staticmethod
    def default() -> list:
        return []  # no output: no log directory

    def command(self, prefix: str) -> str:
        services = shlex.quote(definitions_root("termux-services", prefix))
        run_is_ours = _is_ours('"$s/run"')
        users_service = f'[ -d "$s" ] && ! {run_is_ours}'
        return (f"for d in {_globs(f'{prefix}/var/log/sv', '{}')}; do [ -d \"$d\" ] || continue; "
                f's={services}/"${{d##*/}}"; if {users_service}; then continue; fi; echo "$d"; done; true')

    def process(self, output):
        return sorted(line.strip() for line in output if line.strip())


@operation()
def termux_service_logs_removed(prefix: str):
    """
    Remove the log directories of llamafleet's services on a phone (termux-services keeps a
    service's log after the service is gone).

    + prefix: Termux's $PREFIX

    **Example:**

    .. code:: python

        termux_service_logs_removed(name="Service logs", prefix="/data/data/com.termux/files/usr")
    """
    directories = host.get_fact(TermuxServiceLogs, prefix=prefix)
    if not directories:
        host.noop("no log of a llamafleet service")
        return
    yield StringCommand("rm", "-rf", *map(QuoteString, directories))


class WakeLockRecord(FactBase):
    """
    llamafleet's wake-lock record on a phone and the current boot id (None: unreadable).

    .. code:: python

        {"record": "0f3c...-... 1767225600", "boot_id": "0f3c...-..."}
    """

    def command(self, record: str) -> str:
        return (f"echo \"boot $(cat {BOOT_ID_FILE} 2>/dev/null)\"; "
                f"[ -f {shlex.quote(record)} ] && echo \"record $(cat {shlex.quote(record)})\"; true")

    def process(self, output):
        found = {"record": None, "boot_id": None}
        for line in (line.strip() for line in output):
            key, _, value = line.partition(" ")
            if key == "boot" and value.strip():
                found["boot_id"] = value.strip().lower()
            elif key == "record":
                found["record"] = value.strip()
        return found


@operation()
def wake_lock_released(record: str):
    """
    Release the phone's wake lock when llamafleet's record says llamafleet took it in this boot
    (a reboot drops the lock and changes the boot id), and remove the record with it.

    Termux has one wake lock for the app: a lock the user also took by hand goes with it
    (`termux-wake-lock` takes it again).

    + record: llamafleet's wake-lock record (Paths.wake_lock_record)

    **Example:**

    .. code:: python

        wake_lock_released(name="Wake lock", record="/data/data/com.termux/files/home/llamafleet/run/wake-lock")
    """
    found = host.get_fact(WakeLockRecord, record=record)
    taken = parse_record(found["record"] or "")
    if taken is None:
        host.noop("llamafleet took no wake lock (no record)")
    elif not found["boot_id"] or taken.boot_id != found["boot_id"]:
        host.noop("llamafleet holds no wake lock (its record is from an earlier boot)")
    else:
        yield StringCommand("termux-wake-unlock")
        # The record goes too: a second run must not release a lock taken since by someone else.
        yield StringCommand("rm", "-f", QuoteString(record))


class DirectoryEntries(FactBase):
    """
    The names in a directory (hidden ones too), sorted, and whether it is a mount point (a
    volume or bind mount of its own, which `rmdir` cannot remove); None when there is no
    directory there.

    .. code:: python

        {"entries": ["llama-rpc"], "mountpoint": False}
    """

    @staticmethod
    def default() -> None:
        return None  # no output: no directory at the path

    def command(self, path: str) -> str:
        quoted = shlex.quote(path)
        # mountinfo's fifth field is the mount point (bind mounts included, which stat's device
        # numbers do not tell apart).
        return (f"[ -d {quoted} ] && [ ! -L {quoted} ] && {{ echo @directory; "
                f"awk -v p={quoted} '$5 == p {{ found = 1 }} END {{ exit !found }}' /proc/self/mountinfo "
                f"2>/dev/null && echo @mountpoint; ls -A {quoted}; }}; true")

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        if "@directory" not in lines:
            return None
        return {"entries": sorted(line for line in lines if not line.startswith("@")),
                "mountpoint": "@mountpoint" in lines}


@operation()
def empty_directory_removed(path: str):
    """
    Remove a directory of llamafleet's once it is empty; one that still holds something (a
    record kept for a later run) stays, and so does a mount point.

    + path: the directory

    **Example:**

    .. code:: python

        empty_directory_removed(name="/etc/llamafleet once empty", path="/etc/llamafleet")
    """
    found = host.get_fact(DirectoryEntries, path=path)
    if found is None:
        host.noop(f"{path} is not there")
    elif found["entries"]:
        host.noop(f"{path} holds {', '.join(found['entries'])}: kept")
    elif found["mountpoint"]:
        host.noop(f"{path} is empty, and a mount point: kept")
    else:
        yield StringCommand("rmdir", QuoteString(path))


@operation()
def directory_removed(path: str):
    """
    Remove a directory named after llamafleet with everything in it (runit's service logs in
    /var/log/llamafleet). A mount point is emptied and kept: it is not a directory of the
    host's to delete.

    + path: the directory

    **Example:**

    .. code:: python

        directory_removed(name="Service logs", path="/var/log/llamafleet")
    """
    found = host.get_fact(DirectoryEntries, path=path)
    if found is None:
        host.noop(f"{path} is not there")
    elif not found["mountpoint"]:
        yield StringCommand("rm", "-rf", QuoteString(path))
    elif found["entries"]:
        yield StringCommand("rm", "-rf", *(QuoteString(f"{path}/{name}") for name in found["entries"]))
    else:
        host.noop(f"{path} is empty, and a mount point: kept")
