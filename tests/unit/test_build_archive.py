"""Finding llama.cpp inside a source archive on the controller."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from llamafleet.operations.archive import ArchiveError, archive_llama_root, llama_root, sha256_file

SDIST = [
    "llama_cpp_python-0.3.36/CMakeLists.txt",  # llama-cpp-python's own: not llama.cpp
    "llama_cpp_python-0.3.36/pyproject.toml",
    "llama_cpp_python-0.3.36/vendor/llama.cpp/CMakeLists.txt",
    "llama_cpp_python-0.3.36/vendor/llama.cpp/include/llama.h",
    "llama_cpp_python-0.3.36/vendor/llama.cpp/tools/rpc/CMakeLists.txt",
    "llama_cpp_python-0.3.36/vendor/llama.cpp/ggml/CMakeLists.txt",
]


def test_sdist_uses_the_vendored_tree():
    assert llama_root(SDIST) == "llama_cpp_python-0.3.36/vendor/llama.cpp/"


def test_release_tarball_with_one_top_directory():
    names = ["llama.cpp-b6000/", "llama.cpp-b6000/CMakeLists.txt", "llama.cpp-b6000/include/llama.h",
             "llama.cpp-b6000/ggml/CMakeLists.txt"]
    assert llama_root(names) == "llama.cpp-b6000/"


def test_tree_at_the_top_and_dot_slash_names():
    assert llama_root(["./CMakeLists.txt", "./include/llama.h", "./ggml/CMakeLists.txt"]) == ""


def test_older_tree_with_llama_h_at_the_top():
    assert llama_root(["old/CMakeLists.txt", "old/llama.h", "old/examples/rpc/CMakeLists.txt"]) == "old/"


def test_no_llama_cpp_is_an_error():
    with pytest.raises(ArchiveError, match="no llama.cpp tree"):
        llama_root(["project/CMakeLists.txt", "project/src/main.c"])


def test_two_equal_candidates_are_an_error():
    names = ["a/CMakeLists.txt", "a/include/llama.h", "b/CMakeLists.txt", "b/include/llama.h"]
    with pytest.raises(ArchiveError, match="more than one"):
        llama_root(names)


def _make_tar(path, names):
    with tarfile.open(path, "w:gz") as archive:
        for name in names:
            data = f"content of {name}\n".encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_archive_on_disk_and_its_sha256(tmp_path):
    path = tmp_path / "sdist.tar.gz"
    _make_tar(path, SDIST)
    assert archive_llama_root(str(path)) == "llama_cpp_python-0.3.36/vendor/llama.cpp/"
    assert sha256_file(str(path)) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_unreadable_archive_is_an_error(tmp_path):
    path = tmp_path / "broken.tar.gz"
    path.write_bytes(b"not a tar file")
    with pytest.raises(ArchiveError, match="cannot list"):
        archive_llama_root(str(path))
    with pytest.raises(ArchiveError, match="cannot read"):
        archive_llama_root(str(tmp_path / "missing.tar.gz"))


def test_digests_outlive_the_process_and_a_changed_file_is_read_again(tmp_path, monkeypatch):
    """A new deploy process finds the digest on disk instead of reading the file again; a
    file with another size or mtime is hashed anew."""
    import json
    import os

    from llamafleet.operations import archive

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(archive, "_memo", {})
    path = tmp_path / "model.gguf"
    path.write_bytes(b"weights")
    assert sha256_file(str(path)) == hashlib.sha256(b"weights").hexdigest()
    stored = json.loads(archive.digest_cache_file().read_text())
    assert list(stored.values()) == [hashlib.sha256(b"weights").hexdigest()]

    # Another process: nothing in memory; the stored digest is used (proved by planting one).
    monkeypatch.setattr(archive, "_memo", {})
    monkeypatch.setattr(archive, "_remembered", {})
    archive.digest_cache_file().write_text(json.dumps({name: "f" * 64 for name in stored}))
    assert sha256_file(str(path)) == "f" * 64

    path.write_bytes(b"other weights")  # a new size: read again
    os.utime(path, ns=(1, 1))
    assert sha256_file(str(path)) == hashlib.sha256(b"other weights").hexdigest()
