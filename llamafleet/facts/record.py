"""A record llamafleet keeps on a device for later plans (its RPC port, the CPU features it
refused, its measured speed): read as a fact, with no output when there is none yet."""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand


class DeviceRecord(FactBase):
    """The lines of the record at `path` (none when it does not exist); subclasses parse them."""

    def command(self, path: str) -> StringCommand:
        return StringCommand("cat", QuoteString(path), "2>/dev/null", "||", "true")
