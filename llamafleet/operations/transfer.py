"""Move files between the controller and a device without ever leaving a half file in place.

Helpers for operations (they yield commands, they are not operations themselves): an upload goes
to `<dest>.part`, is checked by sha256 on the device, then renamed. Nothing is sent when the
device already holds a file with that sha256.
"""

from __future__ import annotations

from collections.abc import Iterator

from pyinfra import host
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand
from pyinfra.facts.files import Sha256File


def verify_and_rename(part: str, dest: str, sha256: str) -> StringCommand:
    """Shell: check `part` against `sha256`, then rename it to `dest` (removing it on mismatch)."""
    return StringCommand(
        "if", "echo", QuoteString(f"{sha256}  {part}"), "|", "sha256sum", "-c", "-", ">/dev/null", "2>&1;",
        "then", "mv", "-f", QuoteString(part), QuoteString(dest), ";",
        "else", "rm", "-f", QuoteString(part), ";",
        "echo", QuoteString(f"llamafleet: {part} does not match sha256 {sha256}: removed, {dest} not replaced"), ">&2;",
        "exit", "1;", "fi",
    )


def upload_verified(src: str, dest: str, sha256: str) -> Iterator:
    """Commands that make `dest` on the device a verified copy of the local file `src`."""
    if host.get_fact(Sha256File, path=dest) == sha256:
        return
    part = f"{dest}.part"
    parent = dest.rsplit("/", 1)[0] or "/"
    yield StringCommand("mkdir", "-p", QuoteString(parent))
    yield FileUploadCommand(src, part)
    yield verify_and_rename(part, dest, sha256)
