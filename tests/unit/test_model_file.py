"""model_file: what it sends for a model the device lacks, and the check-then-rename step run
in a real shell (a wrong copy never takes the model's place)."""

from __future__ import annotations

import hashlib
import subprocess

import pytest
from pyinfra.api import FileUploadCommand, StringCommand
from pyinfra.context import ctx_host, ctx_state

from llamafleet.operations.transfer import verify_and_rename
from llamafleet.serving.model import model_file

DEST = "/opt/llamafleet/models/m.gguf"


class FakeHost:
    """Stands in for a pyinfra Host: the device's Sha256File fact is a recorded value."""

    name = "linux1"

    def __init__(self, device_sha256):
        self.device_sha256 = device_sha256
        self.noops: list[str] = []

    def get_fact(self, cls, **kwargs):
        assert cls.__name__ == "Sha256File" and kwargs == {"path": DEST}
        return self.device_sha256

    def noop(self, text):
        self.noops.append(text)


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"weights")
    return path, hashlib.sha256(b"weights").hexdigest()


def run(fake, **kwargs):
    with ctx_state.use(object()), ctx_host.use(fake):
        return list(model_file._inner(**kwargs))


def test_present_model_is_a_noop(model):
    path, digest = model
    fake = FakeHost(digest)
    assert run(fake, dest=DEST, sha256=digest.upper(), src=str(path)) == []
    assert fake.noops == [f"model {DEST} is present with sha256 {digest[:12]}"]


def test_missing_model_is_uploaded_beside_and_renamed_after_the_check(model):
    path, digest = model
    commands = run(FakeHost(None), dest=DEST, sha256=digest, src=str(path))
    uploads = [c for c in commands if isinstance(c, FileUploadCommand)]
    assert [(u.src, u.dest) for u in uploads] == [(str(path), f"{DEST}.part")]
    last = commands[-1].get_raw_value()
    assert f"{digest}  {DEST}.part" in last and f"mv -f {DEST}.part {DEST}" in last


def test_url_download_resumes_into_the_part_file():
    digest = "ab" * 32
    commands = [c.get_raw_value() for c in run(FakeHost("cd" * 32), dest=DEST, sha256=digest, url="http://x/m.gguf")]
    # [0] mkdir, [1] the name recorded as the deploy's (tests/unit/test_upgrade_models.py)
    assert commands[2] == f"curl -fL --retry 3 -C - -o {DEST}.part http://x/m.gguf"
    assert f"mv -f {DEST}.part {DEST}" in commands[3]


def test_a_controller_file_with_another_sha256_is_refused_before_sending(model):
    path, _ = model
    with pytest.raises(ValueError, match=r"linux1: model_file: .* does not have model_sha256"):
        run(FakeHost(None), dest=DEST, sha256="0" * 64, src=str(path))


@pytest.mark.parametrize("good", [True, False])
def test_check_then_rename_in_a_shell(tmp_path, good):
    dest, part = tmp_path / "m.gguf", tmp_path / "m.gguf.part"
    dest.write_bytes(b"old weights")
    part.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights" if good else b"other").hexdigest()
    command = verify_and_rename(str(part), str(dest), digest)
    assert isinstance(command, StringCommand)
    result = subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True)
    assert not part.exists()
    if good:
        assert result.returncode == 0 and dest.read_bytes() == b"weights"
    else:
        assert result.returncode == 1 and dest.read_bytes() == b"old weights"
        assert f"does not match sha256 {digest}: removed, {dest} not replaced" in result.stderr
