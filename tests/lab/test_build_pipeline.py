"""The build pipeline on the lab: packages → source → build, for real, with real compiles.

The lab has two simulated Termux phones (one device class), linux1 (master: llama-server) and
linux2 (worker). The tests run in order on one lab and share its state:

1. cold deploy: binaries present with the right flags, one compile per class, twins identical;
2. second deploy: no package installed, no compile, no change at all;
3. a flag changed for the phones' class: exactly that class rebuilds (once);
4. a compile killed halfway (controller and device side): the previous release stays intact,
   and the next run completes it;
5. `pyinfra --serial`: still one compile for the phones (the first to run), the other fetches late;
6. the phones' data set back to that of step 3: the kept release is swapped in, nothing compiles.

These runs leave out tasks/prune.py: every release stays, so step 6 finds step 3's.

Measured times are printed (run with -s to see them) and summarised at the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
TASKS = ["tasks/packages.py", "tasks/source.py", "tasks/build.py"]
PHONES = ("phone1", "phone2")
WORKERS = ("phone1", "phone2", "linux2")
BASES = {
    "phone1": "/data/data/com.termux/files/home/llamafleet",
    "phone2": "/data/data/com.termux/files/home/llamafleet",
    "linux1": "/opt/llamafleet",
    "linux2": "/opt/llamafleet",
}
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def lab():
    """The lab, brought up for this module unless it is up already (then left as it was)."""
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (network namespaces)")
    import llamafleet_lab as lab_api

    started_here = False
    try:
        lab_api.load_state()
    except lab_api.LabNotUp:
        lab_api.up()
        started_here = True
    yield lab_api
    if TIMINGS:
        print("\nbuild pipeline timings: " + json.dumps(TIMINGS, indent=2))
    if started_here:
        lab_api.down()


@pytest.fixture(scope="module")
def build_cache(tmp_path_factory):
    """A controller build cache of this module's own, so the cold deploy really is cold."""
    return tmp_path_factory.mktemp("build-cache")


def inventory_with(tmp_path: Path, phone_data: dict) -> Path:
    """An inventory: the lab's, with extra data for the phones' class (as group data for one
    device class would add)."""
    path = tmp_path / f"lab_{abs(hash(json.dumps(phone_data, sort_keys=True)))}.py"
    path.write_text(
        "from llamafleet_lab import inventory_groups\n"
        "_groups = inventory_groups()\n"
        f"_extra = {phone_data!r}\n"
        "termux = [(name, {**data, **_extra}) for name, data in _groups['termux']]\n"
        "linux = _groups['linux']\n"
    )
    return path


def deploy(build_cache: Path, inventory: str | Path = "inventory/lab.py", **popen) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLAMAFLEET_BUILD_CACHE": str(build_cache)}
    args = [PYINFRA, "-y", str(inventory), *TASKS]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600, **popen)


def sh(lab, host: str, command: str) -> str:
    result = lab.lab_exec(host, command, timeout=300)
    assert result.returncode == 0, f"{host}: {command}: {result.stdout}{result.stderr}"
    return result.stdout


def compiles(lab, host: str) -> int:
    """How many compiles the host's build log records."""
    result = lab.lab_exec(host, f"cat {BASES[host]}/logs/build.log 2>/dev/null || true")
    return len(re.findall(r"^llamafleet: compile start ", result.stdout, re.M))


def stamp(lab, host: str) -> dict:
    return json.loads(sh(lab, host, f"cat {BASES[host]}/bin/build-stamp.json"))


def binary_sha256(lab, host: str, name: str) -> str:
    return sh(lab, host, f"sha256sum {BASES[host]}/bin/{name}").split()[0]


def release_is_consistent(lab, host: str) -> None:
    """bin/ is a complete release: every file matches SHA256SUMS and the stamp names its class."""
    sh(lab, host, f"cd {BASES[host]}/bin && sha256sum -c SHA256SUMS")
    current = sh(lab, host, f"readlink {BASES[host]}/bin").strip()
    assert current.startswith("releases/" + stamp(lab, host)["class_key"] + "-")


def compile_counts(lab) -> dict[str, int]:
    return {host: compiles(lab, host) for host in BASES}


def assert_ok(result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def test_cold_deploy_builds_once_per_class(lab, build_cache):
    before = compile_counts(lab)
    started = time.monotonic()
    output = assert_ok(deploy(build_cache))
    TIMINGS["cold_deploy_s"] = round(time.monotonic() - started, 1)

    # The build log is named before the compile starts, so a user can follow it.
    assert re.search(r"\[phone1\] compiling ggml-rpc-server .*tail -f /data/data/com\.termux/files/home/llamafleet/logs/build\.log", output)
    assert re.search(r"\[linux1\] compiling llama-server .*tail -f /opt/llamafleet/logs/build\.log", output)

    after = compile_counts(lab)
    assert {host: after[host] - before[host] for host in BASES} == {"phone1": 1, "phone2": 0, "linux1": 1, "linux2": 1}
    assert "install start" in sh(lab, "phone2", f"cat {BASES['phone2']}/logs/build.log")

    for host in BASES:
        release_is_consistent(lab, host)
    phone = stamp(lab, "phone1")
    assert stamp(lab, "phone2") == phone  # the twin carries the builder's stamp
    assert phone["inputs"]["platform"] == "termux" and phone["inputs"]["targets"] == ["ggml-rpc-server"]
    assert phone["inputs"]["compiler"].startswith("clang ")
    for flag in ("-DGGML_RPC=ON", "-DGGML_NATIVE=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DBUILD_SHARED_LIBS=OFF"):
        assert flag in phone["inputs"]["cmake_args"]
    assert binary_sha256(lab, "phone1", "ggml-rpc-server") == binary_sha256(lab, "phone2", "ggml-rpc-server")

    master = stamp(lab, "linux1")
    assert master["inputs"]["targets"] == ["llama-server"] and master["inputs"]["platform"] == "linux"
    assert "-DLLAMA_BUILD_SERVER=ON" in master["inputs"]["cmake_args"]
    assert "--rpc" in sh(lab, "linux1", f"{BASES['linux1']}/bin/llama-server --help 2>&1")
    for host in WORKERS:
        assert "--port" in sh(lab, host, f"{BASES[host]}/bin/ggml-rpc-server --help 2>&1")

    # Compile times, from the device logs ("compile done <key> in <n>s").
    for host, label in (("phone1", "worker_compile_s"), ("linux2", "worker_gcc_compile_s"), ("linux1", "master_compile_s")):
        log = sh(lab, host, f"cat {BASES[host]}/logs/build.log")
        TIMINGS[label] = int(re.findall(r"compile done \S+ in (\d+)s", log)[-1])


def test_second_deploy_changes_nothing(lab, build_cache):
    before = compile_counts(lab)
    packages_before = sh(lab, "phone1", "dpkg-query -W | sort")
    started = time.monotonic()
    output = assert_ok(deploy(build_cache))
    TIMINGS["second_deploy_s"] = round(time.monotonic() - started, 1)

    assert compile_counts(lab) == before
    assert sh(lab, "phone1", "dpkg-query -W | sort") == packages_before
    assert not re.search(r"\] Success", output), output
    for host in BASES:
        assert f"[{host}] No changes" in output


def test_changed_flags_rebuild_exactly_that_class(lab, build_cache, tmp_path):
    before = compile_counts(lab)
    linux_stamps = {host: stamp(lab, host) for host in ("linux1", "linux2")}
    old_phone_key = stamp(lab, "phone1")["class_key"]
    inventory = inventory_with(tmp_path, {"llama_cpu_arch": "x86-64-v2"})
    started = time.monotonic()
    assert_ok(deploy(build_cache, inventory))
    TIMINGS["class_rebuild_deploy_s"] = round(time.monotonic() - started, 1)

    after = compile_counts(lab)
    assert {host: after[host] - before[host] for host in BASES} == {"phone1": 1, "phone2": 0, "linux1": 0, "linux2": 0}
    phone = stamp(lab, "phone1")
    assert phone["class_key"] != old_phone_key
    assert "-DGGML_AVX2=OFF" in phone["inputs"]["cmake_args"]  # x86-64-v2 has no AVX2
    assert stamp(lab, "phone2") == phone
    assert {host: stamp(lab, host) for host in ("linux1", "linux2")} == linux_stamps
    for host in PHONES:
        release_is_consistent(lab, host)


def test_killed_compile_is_completed_by_the_next_run(lab, build_cache, tmp_path):
    previous = stamp(lab, "phone1")
    # A define no earlier build used changes every compile command: ccache cannot answer, so the
    # compile takes long enough to be killed in the middle.
    nonce = f"-DLLAMAFLEET_KILL_TEST={time.time_ns()}"
    extra = [f"-DCMAKE_C_FLAGS={nonce}", f"-DCMAKE_CXX_FLAGS={nonce}"]
    inventory = inventory_with(tmp_path, {"llama_cmake_args": extra})
    env = {**os.environ, "LLAMAFLEET_BUILD_CACHE": str(build_cache)}
    controller = subprocess.Popen(
        [PYINFRA, "-y", str(inventory), *TASKS], cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    log = f"{BASES['phone1']}/logs/build.log"
    starts = compiles(lab, "phone1")
    deadline = time.monotonic() + 600
    # Wait until the compile is under way (objects being built), then kill both ends: the
    # deploy on the controller, and the build's process group on the phone (as Android does
    # when it kills Termux).
    while True:
        assert time.monotonic() < deadline, "the compile never started"
        assert controller.poll() is None, "the deploy ended before it could be killed"
        if compiles(lab, "phone1") > starts and re.search(r"^\[\d+/\d+\] ", sh(lab, "phone1", f"tail -n 1 {log}"), re.M):
            break
        time.sleep(0.5)
    os.killpg(controller.pid, signal.SIGKILL)
    controller.wait()
    lock = f"{BASES['phone1']}/run/build.lock"
    sh(lab, "phone1", f'kill -9 -$(ps -o pgid= -p "$(cat {lock}/pid)" | tr -d " ")')
    time.sleep(1)

    # The interrupted build left the previous release and its stamp in place.
    assert "compile done" not in sh(lab, "phone1", f"tail -n 3 {log}")
    assert stamp(lab, "phone1") == previous
    release_is_consistent(lab, "phone1")

    output = assert_ok(deploy(build_cache, inventory))
    assert "[phone1] Success" in output
    assert "taking over the lock of a build that was killed" in sh(lab, "phone1", f"cat {log}")
    finished = stamp(lab, "phone1")
    assert finished["class_key"] != previous["class_key"]
    assert finished["inputs"]["cmake_args"][-2:] == extra  # the user's arguments come last
    for host in PHONES:
        release_is_consistent(lab, host)
    assert stamp(lab, "phone2") == finished
    assert binary_sha256(lab, "phone1", "ggml-rpc-server") == binary_sha256(lab, "phone2", "ggml-rpc-server")


def test_serial_run_still_compiles_once(lab, tmp_path):
    """With `pyinfra --serial` each host runs every operation before the next host starts, in no
    fixed order: the first phone to run compiles, the other fetches its binaries from it late."""
    before = compile_counts(lab)
    fresh_cache = tmp_path / "cache"  # nothing cached: the copy must come from the other phone
    # Inputs no earlier step used: step 3's would find its release kept and compile nothing (a
    # define no source reads changes the class, not the compile commands: ccache answers).
    inventory = inventory_with(tmp_path, {"llama_cpu_arch": "x86-64-v2",
                                          "llama_cmake_args": [f"-DLLAMAFLEET_SERIAL_TEST={time.time_ns()}"]})
    env = {**os.environ, "LLAMAFLEET_BUILD_CACHE": str(fresh_cache)}
    result = subprocess.run(
        [PYINFRA, "-y", "--serial", str(inventory), *TASKS], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=3600,
    )
    assert_ok(result)
    after = compile_counts(lab)
    compiled = {host: after[host] - before[host] for host in BASES}
    assert compiled["linux1"] == compiled["linux2"] == 0
    assert sorted((compiled["phone1"], compiled["phone2"])) == [0, 1], compiled
    assert stamp(lab, "phone2") == stamp(lab, "phone1")
    assert "-DGGML_AVX2=OFF" in stamp(lab, "phone2")["inputs"]["cmake_args"]
    for host in PHONES:
        release_is_consistent(lab, host)


def test_data_set_back_swaps_in_the_kept_release(lab, build_cache, tmp_path):
    """A roll back: step 3's data again. Both phones still hold that release (these runs do not
    prune), so neither compiles nor copies: each swaps it in after checking its checksums."""
    before = compile_counts(lab)
    started = time.monotonic()
    output = assert_ok(deploy(build_cache, inventory_with(tmp_path, {"llama_cpu_arch": "x86-64-v2"})))
    TIMINGS["roll_back_deploy_s"] = round(time.monotonic() - started, 1)

    assert compile_counts(lab) == before
    for host in PHONES:
        assert f"[{host}] Success" in output
        # This run's line is the log's last: the lines before it are step 5's install.
        last = sh(lab, host, f"tail -n 1 {BASES[host]}/logs/build.log")
        assert "switched back to" in last, last
        phone = stamp(lab, host)
        assert "-DGGML_AVX2=OFF" in phone["inputs"]["cmake_args"]
        assert not [arg for arg in phone["inputs"]["cmake_args"] if "LLAMAFLEET_" in arg]
        release_is_consistent(lab, host)
    assert stamp(lab, "phone2") == stamp(lab, "phone1")
