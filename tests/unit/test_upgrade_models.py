"""The model task records what it downloads, so the prune step knows which files are its own."""

from __future__ import annotations

import hashlib
import subprocess

from pyinfra.api import FileUploadCommand, StringCommand
from pyinfra.context import ctx_host, ctx_state

from llamafleet.serving.model import model_file, record_download
from scratch import FakeHost

DEST = "/opt/llamafleet/models/m.gguf"
RECORD_LINE = ("grep -qxF m.gguf /opt/llamafleet/models/.llamafleet-downloads 2>/dev/null "
               "|| echo m.gguf >> /opt/llamafleet/models/.llamafleet-downloads")


def run(device_sha256, **kwargs):
    fake = FakeHost("linux1", {"Sha256File": device_sha256})
    with ctx_state.use(object()), ctx_host.use(fake):
        return list(model_file._inner(dest=DEST, **kwargs)), fake.noops


def test_a_download_is_recorded_before_the_first_byte():
    commands, _ = run(None, sha256="ab" * 32, url="http://x/m.gguf")
    raws = [c.get_raw_value() for c in commands]
    assert raws.index(RECORD_LINE) < next(i for i, c in enumerate(raws) if c.startswith("curl "))


def test_an_upload_is_recorded_before_the_first_byte(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"weights")
    commands, _ = run(None, sha256=hashlib.sha256(b"weights").hexdigest(), src=str(path))
    record = next(i for i, c in enumerate(commands) if isinstance(c, StringCommand) and c.get_raw_value() == RECORD_LINE)
    upload = next(i for i, c in enumerate(commands) if isinstance(c, FileUploadCommand))
    assert record < upload


def test_a_model_already_there_is_not_claimed():
    # Put there by hand with the right sha256: the deploy sends nothing and records nothing.
    commands, noops = run("ab" * 32, sha256="ab" * 32, url="http://x/m.gguf")
    assert commands == [] and noops


def test_the_record_names_a_file_once(tmp_path):
    dest = tmp_path / "models dir" / "m.gguf"  # a space: quoted
    dest.parent.mkdir()
    command = record_download(str(dest)).get_raw_value()
    for _ in range(2):
        subprocess.run(["sh", "-c", command], check=True)
    assert (dest.parent / ".llamafleet-downloads").read_text() == "m.gguf\n"
