"""A phone's wake lock, and the record saying it was taken in this boot.

Android cannot be asked whether an app holds a wake lock. So wherever llamafleet takes it (the
Termux:Boot script, the prestart of a phone's services), it then writes the boot id and the time
to `Paths.wake_lock_record`; `llamafleet doctor` compares that boot id with the current one (a
reboot drops the lock and changes the boot id).

The record is one line: "<boot id> <seconds since the epoch>". The command that writes it is
the same text on every deploy (the time is the phone's, when the line runs), so the files it is
rendered into stay unchanged between deploys. Both the command and the phone's prestart line
are templates: templates/termux/wake-lock.sh.j2 and templates/prestart/termux.sh.j2.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from llamafleet.templates import render_lines, render_one_line

BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


def take_command(record: str) -> str:
    """One POSIX sh line: take the wake lock and, when that succeeded, write the record
    (through a temporary file, so a reader never sees half a line). Exit status non-zero when
    either failed."""
    return render_one_line(
        "termux/wake-lock.sh.j2", record=record, record_dir=posixpath.dirname(record), boot_id_file=BOOT_ID_FILE
    )


def prestart_lines(record: str) -> list[str]:
    """What a phone's service runs before it starts: the wake lock and its record. A failure is
    logged, not fatal: a worker that may doze still serves better than none."""
    return render_lines("prestart/termux.sh.j2", wake_lock=take_command(record), record=record)


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
