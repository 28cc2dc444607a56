"""The build facts, run by a real shell against directories made here."""

from __future__ import annotations

import hashlib
import json
import subprocess

from llamafleet.facts.build import InstalledBuild, LlamaSource, executable_targets, pick_target

TOOLS_RPC = """set(TARGET ggml-rpc-server)
add_executable(${TARGET} rpc-server.cpp)
if (LLAMA_BUILD_TESTS AND UNIX AND NOT GGML_BACKEND_DL)
    add_executable(test-rpc-multi-server ${PROJECT_SOURCE_DIR}/tests/test-rpc-multi-server.cpp)
endif()
"""
EXAMPLES_RPC = """set(TARGET rpc-server)
add_executable(${TARGET} rpc-server.cpp)
"""
TOOLS_SERVER = """set(TARGET server-context)
add_library(${TARGET} STATIC server-context.cpp)
set(TARGET llama-server-impl)
add_library(${TARGET} STATIC server.cpp)
set(TARGET llama-server)
add_executable(${TARGET} main.cpp)
"""


def run_fact(fact, **kwargs):
    command = fact.command(**kwargs)
    result = subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True)
    assert result.returncode == 0, "a fact must never fail"
    lines = result.stdout.splitlines()
    return fact.process(lines) if lines else None


def test_executable_targets_skip_libraries_and_tests():
    assert executable_targets(TOOLS_SERVER) == ["llama-server"]
    assert pick_target(TOOLS_RPC, "rpc") == "ggml-rpc-server"
    assert pick_target(EXAMPLES_RPC, "rpc") == "rpc-server"
    assert pick_target("add_executable(llama-server main.cpp)", "server") == "llama-server"
    assert pick_target("", "rpc") is None


def test_llama_source_today(tmp_path):
    tree = tmp_path / "llama.cpp"
    (tree / "tools/rpc").mkdir(parents=True)
    (tree / "tools/server").mkdir(parents=True)
    (tree / "tools/rpc/CMakeLists.txt").write_text(TOOLS_RPC)
    (tree / "tools/server/CMakeLists.txt").write_text(TOOLS_SERVER)
    identity = {"kind": "archive", "sha256": "ab" * 32, "root": ""}
    (tree / ".llamafleet-source").write_text(json.dumps(identity) + "\n")
    assert run_fact(LlamaSource(), path=str(tree)) == {
        "identity": identity,
        "rpc_target": "ggml-rpc-server",
        "server_target": "llama-server",
    }


def test_llama_source_older_tree_without_identity(tmp_path):
    tree = tmp_path / "old tree"  # a space: paths are quoted
    (tree / "examples/rpc").mkdir(parents=True)
    (tree / "examples/rpc/CMakeLists.txt").write_text(EXAMPLES_RPC)
    assert run_fact(LlamaSource(), path=str(tree)) == {
        "identity": None,
        "rpc_target": "rpc-server",
        "server_target": None,
    }


def test_llama_source_missing_tree(tmp_path):
    assert run_fact(LlamaSource(), path=str(tmp_path / "nothing")) is None


def _release(tmp_path, stamp: dict):
    release = tmp_path / "releases" / "r1"
    release.mkdir(parents=True)
    binary = release / "ggml-rpc-server"
    binary.write_bytes(b"\x7fELF fake")
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    (release / "SHA256SUMS").write_text(f"{digest}  ggml-rpc-server\n")
    (release / "build-stamp.json").write_text(json.dumps(stamp, indent=2))
    (tmp_path / "bin").symlink_to("releases/r1")
    return release, binary


def test_installed_build_intact(tmp_path):
    stamp = {"class_key": "k1", "inputs": {}, "built_on": "phone1", "schema": 1}
    release, _ = _release(tmp_path, stamp)
    found = run_fact(InstalledBuild(), bin_dir=str(tmp_path / "bin"))
    assert found == {"stamp": stamp, "release": str(release), "intact": True, "files": ["ggml-rpc-server"]}


def test_installed_build_with_a_changed_binary_is_not_intact(tmp_path):
    _, binary = _release(tmp_path, {"class_key": "k1"})
    binary.write_bytes(b"truncated")
    assert run_fact(InstalledBuild(), bin_dir=str(tmp_path / "bin"))["intact"] is False


def test_installed_build_absent(tmp_path):
    assert run_fact(InstalledBuild(), bin_dir=str(tmp_path / "bin")) is None
