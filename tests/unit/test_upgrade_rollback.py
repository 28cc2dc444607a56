"""Roll back: the ref (or archive) set back to the previous one finds the kept release and tree.

The build operations with recorded facts (the kept release is swapped in, nothing compiles, the
services restart), the build script's `activate` run for real, and tasks/source.py run for real
by pyinfra (@local): the kept tree is pointed at again, nothing fetched or unpacked.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pyinfra.api import FunctionCommand
from pyinfra.context import ctx_host, ctx_state

from llamafleet.operations import build, source
from llamafleet.operations.buildinputs import make_stamp
import test_build_operations
import test_build_script
from test_build_operations import PATHS, FakeHost, FakeState, deploy, phone_facts, raw, run
from test_build_script import installed, log_text, run_script
from test_build_source import make_sdist, pyinfra_local

# The fixtures of the build tests, shared: an empty controller build cache for every test
# (autouse there, and here), and a device base with the build script and a stand-in for CMake.
empty_build_cache = test_build_operations.empty_build_cache
device = test_build_script.device

CURRENT = "kNEW-20261201100000-1"
KEPT = "kOLD-20261101100000-1"


def rolled_back(fake, state, kept_intact=True):
    """Set `fake`'s facts as after an upgrade: <base>/bin is a newer build, and the release
    before it, kept, has exactly the inputs this deploy wants (the ref was set back)."""
    run(build.resolve, fake, paths=PATHS, role="worker")
    inputs = build.registry(state)[fake.name].inputs
    wanted = make_stamp(inputs, "phone1")
    newer = {**wanted, "class_key": "kNEW", "inputs": {**wanted["inputs"], "source": "git:" + "e" * 40}}

    def installed_at(bin_dir):
        stamp = newer if bin_dir == PATHS.bin else wanted
        return {"stamp": stamp, "release": bin_dir, "intact": kept_intact or bin_dir == PATHS.bin,
                "files": ["ggml-rpc-server"]}

    fake.facts["InstalledBuild"] = installed_at
    fake.facts["Releases"] = {
        "current": CURRENT, "staging": [], "building": False, "archives": [],
        "releases": {CURRENT: {"mtime": 200, "stamp": newer}, KEPT: {"mtime": 100, "stamp": wanted}},
    }
    return inputs


def test_the_kept_release_is_swapped_in_without_compiling():
    state = FakeState(["phone1"])
    fake = FakeHost("phone1", state, phone_facts())
    rolled_back(fake, state)
    results = deploy(state, [fake])
    commands = raw(results[("phone1", "compile")])
    assert not [c for c in commands if " compile " in c]
    [activate] = [c for c in commands if c.endswith(" activate")]
    assert f"LF_RELEASE={KEPT}" in activate
    assert any(f"switching <base>/bin back to releases/{KEPT}" in line for line in fake.logs)
    assert results[("phone1", "install_copy")] == [] and results[("phone1", "share")] == []
    # The services restart on it (tasks/workers.py, tasks/master.py: binaries_changed).
    assert build.binaries_changed(fake) is True


def test_a_kept_release_with_damaged_binaries_is_compiled_again():
    state = FakeState(["phone1"])
    fake = FakeHost("phone1", state, phone_facts())
    rolled_back(fake, state, kept_intact=False)
    results = deploy(state, [fake])
    assert [c for c in raw(results[("phone1", "compile")]) if " compile " in c]


def test_a_twin_without_the_kept_release_copies_it_from_the_one_that_has_it():
    # phone2 joined after the upgrade: it never had the old release. Nobody compiles.
    state = FakeState(["phone1", "phone2"])
    hosts = [FakeHost(name, state, phone_facts()) for name in ("phone1", "phone2")]
    rolled_back(hosts[0], state)
    run(build.resolve, hosts[1], paths=PATHS, role="worker")
    results = deploy(state, hosts)
    assert not [c for name in ("phone1", "phone2") for c in raw(results[(name, "compile")]) if " compile " in c]
    assert [type(c) for c in results[("phone1", "share")]] == [FunctionCommand]
    late = results[("phone2", "install_copy")]
    assert late and late[0].function is build.copy_late and late[0].args[1].name == "phone1"


def test_source_ops_point_back_at_a_kept_tree():
    repo = "https://x/llama.cpp"
    trees = {"current": "tree-git-bbbb", "leftovers": [], "trees": {
        "tree-git-aaaa": {"kind": "git", "repo": repo, "ref": "b1", "commit": "a" * 40},
        "tree-archive-cdcdcdcdcdcd": {"kind": "archive", "sha256": "cd" * 32}}}
    current = {"identity": {"kind": "git", "repo": repo, "ref": "b2", "commit": "b" * 40}}

    class Host(FakeHost):
        def __init__(self):
            super().__init__("phone1", None, {"LlamaSource": current, "SourceTrees": trees, "Sha256File": None})

    with ctx_state.use(object()), ctx_host.use(Host()):
        [back] = list(source.git._inner(repo=repo, ref="b1", dest="/b/src/llama.cpp"))
        [archive] = list(source.archive._inner(src="/ctl/a.tar.gz", sha256="cd" * 32, root="",
                                               dest="/b/src/llama.cpp", upload_path="/b/src/archive.tar.gz"))
        [fetch] = list(source.git._inner(repo=repo, ref="b3", dest="/b/src/llama.cpp"))
    assert "ln -sfn tree-git-aaaa /b/src/llama.cpp.new" in back.get_raw_value() and "fetch" not in back.get_raw_value()
    assert "ln -sfn tree-archive-cdcdcdcdcdcd" in archive.get_raw_value() and "tar " not in archive.get_raw_value()
    assert "fetch -q --depth 1" in fetch.get_raw_value()


# --- the build script's activate, for real ---------------------------------------------------------


def test_activate_swaps_back_without_compiling_and_marks_the_release_current(device):
    source_version = Path(device["paths"].llama_src, "VERSION")
    assert run_script(device, "compile", "k1").returncode == 0
    first = os.readlink(device["paths"].bin).split("/")[-1]
    source_version.write_text("v2\n")
    assert run_script(device, "compile", "k2").returncode == 0
    second = os.readlink(device["paths"].bin).split("/")[-1]
    releases = Path(device["paths"].releases)
    os.utime(releases / first, (1, 1))  # built long before the second one
    configured = Path(device["paths"].build, "configure-count").read_text()

    result = run_script(device, "activate", "k1", LF_RELEASE=first)
    assert result.returncode == 0, result.stderr
    assert os.readlink(device["paths"].bin) == f"releases/{first}"
    assert Path(device["paths"].bin, "ggml-rpc-server").read_text() == "binary ggml-rpc-server from v1\n"
    assert installed(device)["stamp"]["class_key"] == "k1" and installed(device)["intact"]
    assert Path(device["paths"].build, "configure-count").read_text() == configured  # nothing compiled
    assert f"switched back to k1 as releases/{first}" in log_text(device)
    # Its mtime now says it became current last: the one it replaced is the previous one.
    assert (releases / first).stat().st_mtime >= (releases / second).stat().st_mtime


def test_activate_refuses_a_damaged_or_foreign_release_and_keeps_bin(device):
    assert run_script(device, "compile", "k1").returncode == 0
    first = os.readlink(device["paths"].bin).split("/")[-1]
    assert run_script(device, "compile", "k2").returncode == 0
    current = os.readlink(device["paths"].bin)
    wrong_class = run_script(device, "activate", "k9", LF_RELEASE=first)
    assert wrong_class.returncode == 1 and f"releases/{first} is not class k9" in wrong_class.stderr
    Path(device["paths"].releases, first, "ggml-rpc-server").write_text("truncated")
    damaged = run_script(device, "activate", "k1", LF_RELEASE=first)
    assert damaged.returncode == 1 and "does not match its SHA256SUMS" in damaged.stderr
    assert os.readlink(device["paths"].bin) == current


# --- tasks/source.py for real: forward, then back ------------------------------------------------


def test_archive_set_back_reuses_the_kept_tree(tmp_path):
    base = tmp_path / "lf"
    first, second = make_sdist(tmp_path / "v1.tar.gz", "v1"), make_sdist(tmp_path / "v2.tar.gz", "v2")
    pyinfra_local(base, f"llama_cpp_archive={first}")
    tree = base / "src" / "llama.cpp"
    (tree / "kept-marker").write_text("this tree was not unpacked again\n")
    pyinfra_local(base, f"llama_cpp_archive={second}")
    assert "v2" in (tree / "CMakeLists.txt").read_text()

    back = pyinfra_local(base, f"llama_cpp_archive={first}")
    assert "[@local] Success" in back
    assert "v1" in (tree / "CMakeLists.txt").read_text() and (tree / "kept-marker").exists()
    assert not (base / "src" / "archive.tar.gz").exists() and not (base / "src" / "archive.tar.gz.part").exists()
    assert "[@local] No changes" in pyinfra_local(base, f"llama_cpp_archive={first}")


def git_repo_with_tags(tmp_path: Path, tags: list[str]) -> str:
    work = tmp_path / "work"
    (work / "tools" / "rpc").mkdir(parents=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(work)]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    for tag in tags:
        (work / "CMakeLists.txt").write_text(f"project(llama.cpp) # {tag}\n")
        subprocess.run(git + ["add", "."], check=True)
        subprocess.run(git + ["commit", "-q", "-m", tag], check=True)
        subprocess.run(git + ["tag", tag], check=True)
    repo = tmp_path / "llama.cpp.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(repo)], check=True)
    return f"file://{repo}"


def test_ref_set_back_needs_no_fetch(tmp_path):
    url = git_repo_with_tags(tmp_path, ["b1", "b2"])
    base = tmp_path / "lf"
    pyinfra_local(base, f"llama_cpp_repo={url}", "llama_cpp_ref=b1")
    pyinfra_local(base, f"llama_cpp_repo={url}", "llama_cpp_ref=b2")
    tree = base / "src" / "llama.cpp"
    assert "# b2" in (tree / "CMakeLists.txt").read_text()

    # The repository is gone: going back to b1 works only from the kept tree.
    subprocess.run(["rm", "-rf", url.removeprefix("file://")], check=True)
    assert "[@local] Success" in pyinfra_local(base, f"llama_cpp_repo={url}", "llama_cpp_ref=b1")
    assert "# b1" in (tree / "CMakeLists.txt").read_text()
