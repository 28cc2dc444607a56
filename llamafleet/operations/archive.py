"""Inspect a llama.cpp source archive on the controller (pure Python, no pyinfra).

Two layouts are accepted:
- a llama.cpp tree, at the top of the archive or under one directory (`llama.cpp-b6000/`),
- a llama-cpp-python sdist, whose llama.cpp is vendored at `<name>/vendor/llama.cpp/`.
The llama.cpp root is the directory holding `CMakeLists.txt` and `llama.h` (in `include/` since
mid 2024, at the top before). Results are remembered per file version (in the process and on disk): the archive is ~75 MB
and every host of every deploy asks.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1024 * 1024
_memo: dict[tuple, str] = {}
_remembered: dict[Path, dict[str, str]] = {}  # cache file -> its entries, read once


def digest_cache_file() -> Path:
    """Where digests of controller files outlive the process: every deploy would otherwise
    read the 75 MB archive and the model again (0.9 s of a 6 s no-op re-run on the lab)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "llamafleet" / "digests.json"


def _remember(key: tuple, compute) -> str:
    """`compute()` once per file version: in this process, then on disk. The key holds the
    file's real path, size and mtime in ns (as git's index trusts a file's stat), so a changed
    file is read again; a cache that cannot be read or written only costs the time."""
    if key in _memo:
        return _memo[key]
    path = digest_cache_file()
    if path not in _remembered:
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError):
            loaded = {}
        _remembered[path] = loaded if isinstance(loaded, dict) else {}
    entries, name = _remembered[path], json.dumps(key)
    if not isinstance(entries.get(name), str):
        entries[name] = compute()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.{os.getpid()}")
            partial.write_text(json.dumps(entries, indent=0, sort_keys=True))
            partial.replace(path)
        except OSError:
            pass
    _memo[key] = entries[name]
    return _memo[key]


class ArchiveError(ValueError):
    """The archive is missing, unreadable or holds no llama.cpp tree."""


def _file_version(path: str | os.PathLike) -> tuple:
    try:
        info = os.stat(path)
    except OSError as error:
        raise ArchiveError(f"cannot read {path}: {error.strerror}") from error
    return (os.path.realpath(path), info.st_size, info.st_mtime_ns)


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a local file, memoised while the file is unchanged.

    The one controller-side sha256 of the project: serving.model and the lab's assets
    (llamafleet_lab.assets) use it too (the key is the real path, size and mtime, so a changed
    file is hashed again).
    """
    def compute() -> str:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(_CHUNK):
                digest.update(block)
        return digest.hexdigest()

    return _remember(("sha256",) + _file_version(path), compute)


def llama_root(members: Iterable[str]) -> str:
    """The llama.cpp root inside an archive listing: "" (top) or a prefix ending in "/".

    Raises ArchiveError when there is none, or when two candidates are equally likely.
    """
    files = set()
    for name in members:
        while name.startswith("./"):
            name = name[2:]
        if name and not name.endswith("/"):
            files.add(name)

    candidates = []
    for name in files:
        if name == "CMakeLists.txt" or name.endswith("/CMakeLists.txt"):
            root = name[: -len("CMakeLists.txt")]
            if f"{root}include/llama.h" in files or f"{root}llama.h" in files:
                candidates.append(root)
    if not candidates:
        raise ArchiveError("no llama.cpp tree (CMakeLists.txt next to include/llama.h) in the archive")

    vendored = [root for root in candidates if root.endswith("vendor/llama.cpp/")]
    pool = vendored or candidates
    depth = min(root.count("/") for root in pool)
    shallowest = sorted(root for root in pool if root.count("/") == depth)
    if len(shallowest) > 1:
        raise ArchiveError(f"more than one llama.cpp tree in the archive: {', '.join(shallowest)}")
    return shallowest[0]


def archive_llama_root(path: str) -> str:
    """The llama.cpp root inside the .tar.gz at `path` (see `llama_root`)."""
    def compute() -> str:
        try:
            with tarfile.open(path, "r:*") as archive:
                return llama_root(archive.getnames())
        except (tarfile.TarError, OSError, EOFError) as error:
            raise ArchiveError(f"cannot list {path}: {error}") from error

    return _remember(("root",) + _file_version(path), compute)
