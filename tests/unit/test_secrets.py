"""llamafleet.serving.secrets: the API key and tunnel key pair on the controller, private
(directory 700, files 600) whatever the umask, generated once, the API key printed once, and
the same on every later call; kept beside the inventory, found from any working directory."""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import pytest

from llamafleet.serving import secrets as lf_secrets


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def secrets_home(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "secrets"
    monkeypatch.setenv("LLAMAFLEET_SECRETS", str(directory))
    return directory


@pytest.fixture
def open_umask():
    """A umask that hides nothing: the modes must come from the code, not the user's umask."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_api_key_is_generated_private_and_printed_once(secrets_home, open_umask, capsys):
    path = lf_secrets.api_key_file()
    printed = capsys.readouterr()
    key = path.read_text().strip()
    assert path == secrets_home / "api-key"
    assert mode(secrets_home) == 0o700 and mode(path) == 0o600
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", key), "not 32 random bytes, URL-safe"
    assert printed.out.count(key) == 1 and key not in printed.err
    assert str(path) in printed.out


def test_api_key_is_stable_and_not_printed_again(secrets_home, capsys):
    key = lf_secrets.api_key()
    capsys.readouterr()
    assert lf_secrets.api_key() == key
    assert lf_secrets.api_key_file().read_text() == key + "\n"
    again = capsys.readouterr()
    assert again.out == "" and again.err == ""
    assert sorted(p.name for p in secrets_home.iterdir()) == ["api-key"]


def test_each_deploy_directory_gets_its_own_key(tmp_path, monkeypatch):
    keys = []
    for name in ("a", "b"):
        monkeypatch.setenv("LLAMAFLEET_SECRETS", str(tmp_path / name))
        keys.append(lf_secrets.api_key())
    assert keys[0] != keys[1]


def test_a_key_already_there_is_kept(secrets_home, capsys):
    secrets_home.mkdir(mode=0o755)
    (secrets_home / "api-key").write_text("chosen-by-the-user\n")
    assert lf_secrets.api_key() == "chosen-by-the-user"
    assert capsys.readouterr().out == ""
    assert mode(secrets_home) == 0o700, "an existing secrets directory is made private"


def test_without_an_inventory_the_place_is_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("LLAMAFLEET_SECRETS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert lf_secrets.api_key_file() == tmp_path / ".llamafleet" / "secrets" / "api-key"
    assert mode(tmp_path / ".llamafleet" / "secrets") == 0o700


@pytest.fixture
def cluster_dir(tmp_path, monkeypatch) -> Path:
    """An inventory file in a directory of its own, and two other places to run commands from."""
    monkeypatch.delenv("LLAMAFLEET_SECRETS", raising=False)
    (tmp_path / "cluster").mkdir()
    (tmp_path / "cluster" / "mine.py").write_text('linux = ["homeserver"]\n')
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)
    return tmp_path / "cluster"


def test_secrets_live_beside_the_inventory_from_any_directory(cluster_dir, monkeypatch, open_umask):
    found = []
    for cwd, inventory in ((cluster_dir.parent / "elsewhere", "../cluster/mine.py"),
                           (cluster_dir.parent / "elsewhere" / "deeper", cluster_dir / "mine.py"),
                           (cluster_dir, "mine.py")):
        monkeypatch.chdir(cwd)
        found.append((lf_secrets.secrets_dir(inventory), lf_secrets.api_key(inventory)))
    beside = cluster_dir / ".llamafleet" / "secrets"
    assert [place for place, _ in found] == [beside] * 3
    assert len({key for _, key in found}) == 1, "a second directory generated a second API key"
    assert sorted(p.name for p in beside.iterdir()) == ["api-key"]
    assert mode(beside) == 0o700 and mode(beside / "api-key") == 0o600
    assert not (cluster_dir.parent / "elsewhere" / ".llamafleet").exists(), "the working directory got secrets"


def test_the_environment_overrides_the_inventorys_place(cluster_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("LLAMAFLEET_SECRETS", str(tmp_path / "vault"))
    assert lf_secrets.secrets_location(cluster_dir / "mine.py") == tmp_path / "vault"


def test_locating_creates_nothing(cluster_dir):
    assert lf_secrets.secrets_location(cluster_dir / "mine.py") == cluster_dir / ".llamafleet" / "secrets"
    assert lf_secrets.existing_tunnel_key(cluster_dir / "mine.py") is None
    assert not (cluster_dir / ".llamafleet").exists()


def test_secrets_left_in_the_old_place_stop_a_new_pair_being_made(cluster_dir, monkeypatch):
    """Before secrets followed the inventory they were kept in the working directory: a deploy
    from there must not make a second API key unasked, but say how to move them."""
    old = cluster_dir.parent / "elsewhere" / ".llamafleet" / "secrets"
    old.mkdir(parents=True)
    (old / "api-key").write_text("the-old-key\n")
    monkeypatch.chdir(cluster_dir.parent / "elsewhere")
    new = cluster_dir / ".llamafleet" / "secrets"
    with pytest.raises(lf_secrets.SecretsElsewhere, match=re.escape(f"mv {old} {new})")):
        lf_secrets.api_key("../cluster/mine.py")
    assert not new.exists(), "a new secrets directory was made"
    new.parent.mkdir()
    old.rename(new)  # what the message says to do
    assert lf_secrets.api_key("../cluster/mine.py") == "the-old-key"


needs_ssh_keygen = pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="ssh-keygen not installed")


@needs_ssh_keygen
def test_tunnel_key_is_generated_once_and_private(secrets_home, open_umask):
    assert lf_secrets.existing_tunnel_key() is None
    assert not (secrets_home / "tunnel_ed25519").exists(), "existing_tunnel_key generated a key"
    private, public = lf_secrets.tunnel_key()
    assert private == secrets_home / "tunnel_ed25519"
    assert mode(private) == 0o600 and mode(secrets_home) == 0o700
    assert mode(private.with_suffix(".pub")) == 0o600
    assert re.fullmatch(r"ssh-ed25519 [A-Za-z0-9+/=]+ llamafleet-tunnel", public)
    assert "PRIVATE KEY" in private.read_text()
    assert lf_secrets.existing_tunnel_key() == public
    before = private.read_bytes()
    assert lf_secrets.tunnel_key() == (private, public)
    assert private.read_bytes() == before, "the key pair was regenerated"


@needs_ssh_keygen
def test_tunnel_key_is_made_private_again(secrets_home):
    private, _ = lf_secrets.tunnel_key()
    private.chmod(0o644)
    lf_secrets.tunnel_key()
    assert mode(private) == 0o600
