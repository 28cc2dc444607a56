"""Put the model on a device: sha256-checked, never re-sent when the device already has it.

The file is written to `<dest>.part`, checked, then renamed (operations.transfer), so a half
transfer or a wrong file never sits where llama-server reads its model. Before it sends a byte,
the deploy adds the file's name to `.llamafleet-downloads` beside it: once the model changes,
the prune task removes the files named there (and their `.part`), never one put there by hand.
"""

from __future__ import annotations

import os
import posixpath

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.files import Sha256File

from llamafleet.layout import MODEL_RECORD, model_file_name
from llamafleet.operations.archive import sha256_file
from llamafleet.operations.transfer import upload_verified, verify_and_rename


def local_sha256(path: str) -> str:
    """sha256 of a controller file (`~` expanded), computed once per deploy.

    The memo is operations.archive's (keyed by real path, size and mtime), shared with the
    source archive's sha256 rather than a second cache of its own.
    """
    return sha256_file(os.path.abspath(os.path.expanduser(path)))


@operation()
def model_file(dest: str, sha256: str, src: str | None = None, url: str | None = None):
    """
    Make `dest` on the device the model with this sha256, from a controller file or a URL.

    + dest: the model's path on the device
    + sha256: the model's sha256 (lower-case hex)
    + src: a file on the controller to upload
    + url: a URL the device downloads itself (resumable with curl -C -)

    **Example:**

    .. code:: python

        model_file(name="Model", dest="/opt/llamafleet/models/m.gguf", sha256="a5fd...", src="m.gguf")
    """
    sha256 = sha256.lower()  # sha256sum prints lower case
    if host.get_fact(Sha256File, path=dest) == sha256:
        host.noop(f"model {dest} is present with sha256 {sha256[:12]}")
        return
    if not src and not url:
        raise ValueError(f"{host.name}: model_url: neither model_url nor model_file is set")
    if src and local_sha256(src) != sha256:
        raise ValueError(f"{host.name}: model_file: {src} does not have model_sha256 {sha256}")
    yield StringCommand("mkdir", "-p", QuoteString(posixpath.dirname(dest)))
    yield record_download(dest)
    if src:
        yield from upload_verified(os.path.expanduser(src), dest, sha256)
    else:
        part = f"{dest}.part"
        # -C - resumes the part an interrupted run left.
        yield StringCommand("curl", "-fL", "--retry", "3", "-C", "-", "-o", QuoteString(part), QuoteString(url))
        yield verify_and_rename(part, dest, sha256)


def record_download(dest: str) -> StringCommand:
    """Shell: add `dest`'s name to the record of files the deploy put beside it, once. Written
    before the transfer, so a `.part` an interrupted one leaves is the deploy's too."""
    record = QuoteString(posixpath.join(posixpath.dirname(dest), MODEL_RECORD))
    name = QuoteString(posixpath.basename(dest))
    return StringCommand("grep", "-qxF", name, record, "2>/dev/null", "||", "echo", name, ">>", record)


def model_dest(settings, models_dir: str) -> str:
    """The model's path on a device: <models>/<model_name or the source's basename> (the plan's
    model_path, when it knows the device's base)."""
    name = model_file_name(settings)
    if not name:
        raise ValueError("model_file: neither model_file nor model_url is set")
    return f"{models_dir}/{name}"
