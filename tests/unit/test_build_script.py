"""llamafleet-build.sh, the device-side build helper, run for real with a stand-in for CMake.

The compile itself is exercised on the lab (tests/lab/test_build_pipeline.py); here the script's
own logic is checked quickly: staging and the atomic swap of <base>/bin, the stamp and checksums,
failure output, a killed build taken over, a running build waited for, pack/install for twins.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from llamafleet.facts.build import InstalledBuild
from llamafleet.layout import paths_for
from llamafleet.operations.build import BUILD_SCRIPT


# Stands for CMake: `cmake -S src -B build ...` (configure) and `cmake --build build --target T
# -j N` (CMake driving Ninja). It "compiles" each target into build/bin/<target> (content taken
# from the source's VERSION file), prints 50 progress lines like Ninja, and sleeps or fails when
# FAKE_SLEEP / FAKE_FAIL ask it to.
FAKE_CMAKE = r"""#!/bin/sh
if [ "$1" = "--build" ]; then
    build=$2; shift 2
    targets=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --target) shift; while [ $# -gt 0 ] && [ "$1" != "-j" ]; do targets="$targets $1"; shift; done ;;
            *) shift ;;
        esac
    done
    i=0
    while [ $i -lt 50 ]; do i=$((i+1)); echo "[$i/50] Building CXX object unit$i.o"; done
    [ -n "${FAKE_SLEEP:-}" ] && sleep "$FAKE_SLEEP"
    if [ -n "${FAKE_FAIL:-}" ]; then echo "unit7.cpp:1:1: error: $FAKE_FAIL"; exit 1; fi
    mkdir -p "$build/bin" "$build/ggml/src"
    # The static ggml libraries the self-test links against (BUILD_SHARED_LIBS=OFF).
    : > "$build/ggml/src/libggml-cpu.a"
    : > "$build/ggml/src/libggml-base.a"
    [ -n "${FAKE_OPENMP:-}" ] && echo "GGML_OPENMP_ENABLED:INTERNAL=ON" > "$build/CMakeCache.txt"
    for t in $targets; do
        printf 'binary %s from %s\n' "$t" "$(cat "$(cat "$build/.src")/VERSION")" > "$build/bin/$t"
        chmod +x "$build/bin/$t"
    done
    exit 0
fi
src=""; build=""
while [ $# -gt 0 ]; do
    case "$1" in -S) src=$2; shift 2 ;; -B) build=$2; shift 2 ;; *) shift ;; esac
done
mkdir -p "$build"
echo "$src" > "$build/.src"
echo configured >> "$build/configure-count"
"""

# Stands for the device's C and C++ compilers building the self-test: records each call in
# $FAKE_CC_LOG; a link (no -c) writes a program that behaves as FAKE_SELFTEST says: "ok" (the
# default), "sigill" (dies of SIGILL as on a CPU without the flags' features), "wrong" (the
# kernels computed wrong results), or "cc-fails" makes the compile itself fail.
FAKE_CC = r"""#!/bin/sh
echo "$*" >> "${FAKE_CC_LOG:-/dev/null}"
[ "${FAKE_SELFTEST:-ok}" = cc-fails ] && { echo "error: unknown target feature" >&2; exit 1; }
out=""; link=1
while [ $# -gt 0 ]; do
    case "$1" in -o) out=$2; shift 2 ;; -c) link=""; shift ;; *) shift ;; esac
done
if [ -n "$link" ]; then
    case "${FAKE_SELFTEST:-ok}" in
        ok) printf '#!/bin/sh\necho "ggml-selftest: ok: mul_mat, $1 thread(s)"\n' > "$out" ;;
        sigill) printf '#!/bin/sh\nkill -ILL $$\n' > "$out" ;;
        wrong) printf '#!/bin/sh\necho "ggml-selftest: wrong results: q4_K WRONG 0.9"\nexit 1\n' > "$out" ;;
    esac
    chmod +x "$out"
else
    : > "$out"
fi
"""


@pytest.fixture
def device(tmp_path):
    """A device base dir with a source tree, the build script as uploaded (rendered from its
    template), and a PATH whose cmake is the stand-in."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "llamafleet-build.sh").write_text(BUILD_SCRIPT)
    (tools / "cmake").write_text(FAKE_CMAKE)
    (tools / "cmake").chmod(0o755)
    (tools / "fake-cc").write_text(FAKE_CC)
    (tools / "fake-cc").chmod(0o755)
    base = tmp_path / "device"
    src = base / "src" / "llama.cpp"
    src.mkdir(parents=True)
    (src / "VERSION").write_text("v1\n")
    return {"base": base, "paths": paths_for(str(base)), "path": f"{tools}:{os.environ['PATH']}",
            "script": tools / "llamafleet-build.sh"}


def stamp_for(key: str) -> str:
    return json.dumps({"schema": 1, "class_key": key, "inputs": {"targets": ["ggml-rpc-server"]}, "built_on": "phone1"}, indent=2)


def env_for(device, key: str, **extra) -> dict:
    paths = device["paths"]
    env = {
        "PATH": device["path"],
        "LF_HOST": "phone1",
        "LF_KEY": key,
        "LF_LOG": paths.build_log,
        "LF_RUN": paths.run,
        "LF_RELEASES": paths.releases,
        "LF_BIN": paths.bin,
        "LF_SRC": paths.llama_src,
        "LF_BUILD": paths.build,
        "LF_JOBS": "2",
        "LF_TARGETS": "ggml-rpc-server",
        "LF_INSTALL": "ggml-rpc-server:ggml-rpc-server",
        "LF_STAMP": stamp_for(key),
        "LF_CC": "fake-cc",
        "LF_CXX": "fake-cc",
        "LF_ISA_FLAGS": "-march=armv8.2-a+dotprod+fp16+i8mm",
        "LF_SELFTEST_SRC": str(paths.selftest_source),
        "LF_SELFTEST_THREADS": "4",
    }
    env.update(extra)
    return env


def run_script(device, mode: str, key: str, *args, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", str(device["script"]), mode, *args], env=env_for(device, key, **extra), capture_output=True, text=True, timeout=60
    )


def installed(device) -> dict | None:
    fact = InstalledBuild()
    out = subprocess.run(["sh", "-c", fact.command(bin_dir=device["paths"].bin).get_raw_value()], capture_output=True, text=True)
    return fact.process(out.stdout.splitlines()) if out.stdout else None


def log_text(device) -> str:
    log = Path(device["paths"].build_log)
    return log.read_text() if log.exists() else ""


def test_compile_installs_a_release_with_stamp_and_checksums(device):
    result = run_script(device, "compile", "k1", "-DGGML_RPC=ON")
    assert result.returncode == 0, result.stderr
    bin_link = Path(device["paths"].bin)
    assert bin_link.is_symlink() and os.readlink(bin_link).startswith("releases/k1-")
    assert (bin_link / "ggml-rpc-server").read_text() == "binary ggml-rpc-server from v1\n"
    found = installed(device)
    assert found["intact"] and found["stamp"]["class_key"] == "k1" and found["files"] == ["ggml-rpc-server"]
    assert "llamafleet: compile start k1 ggml-rpc-server" in log_text(device)
    assert not Path(device["paths"].run, "build.lock").exists()


def test_older_rpc_target_is_installed_under_todays_name(device):
    result = run_script(device, "compile", "k1", LF_TARGETS="rpc-server", LF_INSTALL="rpc-server:ggml-rpc-server")
    assert result.returncode == 0, result.stderr
    bin_dir = Path(device["paths"].bin)
    assert (bin_dir / "ggml-rpc-server").read_text() == "binary rpc-server from v1\n"
    assert not (bin_dir / "rpc-server").exists()
    assert installed(device)["files"] == ["ggml-rpc-server"] and installed(device)["intact"]


def test_new_inputs_start_a_fresh_build_tree_and_leave_the_releases_to_the_deploy(device):
    for key in ("k1", "k2", "k3"):
        assert run_script(device, "compile", key).returncode == 0
    # Which releases stay is decided by the deploy's prune step (llamafleet.operations.keep).
    releases = sorted(os.listdir(device["paths"].releases))
    assert sorted(name.split("-")[0] for name in releases) == ["k1", "k2", "k3"]
    assert installed(device)["stamp"]["class_key"] == "k3"
    # The tree was wiped for each new key: configured once since the last wipe.
    assert Path(device["paths"].build, "configure-count").read_text().count("configured") == 1


def test_failed_compile_prints_the_tail_and_keeps_the_previous_build(device):
    assert run_script(device, "compile", "k1").returncode == 0
    before = os.readlink(device["paths"].bin)
    result = run_script(device, "compile", "k2", FAKE_FAIL="no member named 'frobnicate'")
    assert result.returncode == 1
    assert "last 40 lines of" in result.stderr
    assert "error: no member named 'frobnicate'" in result.stderr
    assert "[50/50]" in result.stderr
    assert os.readlink(device["paths"].bin) == before
    assert installed(device)["stamp"]["class_key"] == "k1" and installed(device)["intact"]


def test_killed_build_is_taken_over_and_finished(device):
    assert run_script(device, "compile", "k1").returncode == 0
    before = os.readlink(device["paths"].bin)
    victim = subprocess.Popen(
        ["sh", str(device["script"]), "compile"], env=env_for(device, "k2", FAKE_SLEEP="30"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + 20
    while "compile start k2" not in log_text(device):
        assert time.time() < deadline, "the build never started"
        time.sleep(0.2)
    os.killpg(victim.pid, signal.SIGKILL)  # the phone killed Termux mid-compile
    victim.wait()
    assert Path(device["paths"].run, "build.lock").exists()
    assert os.readlink(device["paths"].bin) == before  # nothing half-done is visible

    result = run_script(device, "compile", "k2")
    assert result.returncode == 0, result.stderr
    assert "taking over the lock of a build that was killed" in log_text(device)
    found = installed(device)
    assert found["intact"] and found["stamp"]["class_key"] == "k2"
    # Same inputs: the interrupted tree was resumed, not wiped (configured twice).
    assert Path(device["paths"].build, "configure-count").read_text().count("configured") == 2


def test_a_build_still_running_is_waited_for(device):
    first = subprocess.Popen(
        ["sh", str(device["script"]), "compile"], env=env_for(device, "k1", FAKE_SLEEP="4"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + 20
    while "compile start k1" not in log_text(device):
        assert time.time() < deadline
        time.sleep(0.2)
    second = run_script(device, "compile", "k1")
    assert first.wait(timeout=30) == 0
    assert second.returncode == 0
    assert "waiting for an earlier build" in log_text(device)
    assert installed(device)["intact"]


def test_pack_and_install_give_a_twin_the_same_release(device, tmp_path):
    assert run_script(device, "compile", "k1").returncode == 0
    archive = tmp_path / "class-k1.tar.gz"
    packed = run_script(device, "pack", "k1", LF_ARCHIVE=str(archive))
    assert packed.returncode == 0, packed.stderr
    digest = packed.stdout.strip().splitlines()[-1]
    assert digest == hashlib.sha256(archive.read_bytes()).hexdigest()

    twin = {"paths": paths_for(str(tmp_path / "twin")), "path": device["path"], "script": device["script"]}
    upload = Path(twin["paths"].run) / "class-k1.tar.gz"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(archive.read_bytes())
    result = run_script(twin, "install", "k1", LF_ARCHIVE=str(upload), LF_SHA256=digest, LF_SOURCE_HOST="phone1")
    assert result.returncode == 0, result.stderr
    assert installed(twin)["intact"]
    assert Path(twin["paths"].stamp).read_text() == Path(device["paths"].stamp).read_text()
    assert not upload.exists()
    assert "compile start" not in log_text(twin)


def test_install_refuses_a_corrupted_copy(device, tmp_path):
    assert run_script(device, "compile", "k1").returncode == 0
    archive = tmp_path / "class-k1.tar.gz"
    digest = run_script(device, "pack", "k1", LF_ARCHIVE=str(archive)).stdout.strip().splitlines()[-1]
    archive.write_bytes(archive.read_bytes()[:-10])
    result = run_script(device, "install", "k1", LF_ARCHIVE=str(archive), LF_SHA256=digest, LF_SOURCE_HOST="phone1")
    assert result.returncode == 1
    assert "does not match sha256" in result.stderr
    assert installed(device)["stamp"]["class_key"] == "k1"


def test_pack_refuses_a_release_of_another_class(device, tmp_path):
    assert run_script(device, "compile", "k1").returncode == 0
    result = run_script(device, "pack", "k2", LF_ARCHIVE=str(tmp_path / "x.tar.gz"))
    assert result.returncode == 1
    assert "not class k2" in result.stderr
