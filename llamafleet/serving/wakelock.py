"""A phone's wake lock, and the record saying it was taken in this boot.

Android cannot be asked whether an app holds a wake lock. So wherever llamafleet takes it (the
Termux:Boot script, the prestart of a phone's services), it then writes the boot id and the time
to `Paths.wake_lock_record`; `llamafleet doctor` compares that boot id with the current one (a
reboot drops the lock and changes the boot id).

The record is one line: "<boot id> <seconds since the epoch>". The command that writes it is
the same text on every deploy (the time is the phone's, when the line runs), so the files it is
rendered into stay unchanged between deploys.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass

BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


def take_command(record: str) -> str:
    """One POSIX sh line: take the wake lock and, when that succeeded, write the record
    (through a temporary file, so a reader never sees half a line). Exit status non-zero when
    either failed."""
    target, temporary = shlex.quote(record), shlex.quote(record + ".tmp")
    return (
        f"termux-wake-lock && mkdir -p {shlex.quote(posixpath.dirname(record))} && "
        f"printf '%s %s\\n' \"$(cat {BOOT_ID_FILE})\" \"$(date +%s)\" > {temporary} && "
        f"mv -f {temporary} {target}"
    )


def prestart_lines(record: str) -> list[str]:
    """What a phone's service runs before it starts: the wake lock and its record. A failure is
    logged, not fatal: a worker that may doze still serves better than none."""
    return [f"{take_command(record)} || echo 'llamafleet: termux-wake-lock failed, or its record {record} could not be written'"]


@dataclass(frozen=True)
class WakeLockRecord:
    boot_id: str
    taken_at: int  # seconds since the epoch, the phone's clock


def parse_record(text: str) -> WakeLockRecord | None:
    """The record's content, or None when it is missing or not a record."""
    match = re.fullmatch(r"\s*([0-9a-fA-F-]{8,})\s+(\d+)\s*", text or "")
    if not match:
        return None
    return WakeLockRecord(match.group(1).lower(), int(match.group(2)))
