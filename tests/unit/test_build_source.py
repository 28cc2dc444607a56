"""The source operations: decisions with recorded facts, then real runs with pyinfra @local."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from pyinfra.api import StringCommand
from pyinfra.api.command import FileUploadCommand
from pyinfra.context import ctx_host, ctx_state

from llamafleet.operations import source
from llamafleet.operations.archive import sha256_file

REPO = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
SHA = "cd" * 32


class FakeHost:
    """Stands in for a pyinfra Host: facts by class name, noops recorded."""

    def __init__(self, facts):
        self.name = "phone1"
        self.facts = facts
        self.noops: list[str] = []
        self.state = None
        self.data = {}

    def get_fact(self, cls, *args, **kwargs):
        return self.facts[cls.__name__]

    def noop(self, text):
        self.noops.append(text)


def archive_op(facts):
    fake = FakeHost(facts)
    with ctx_state.use(object()), ctx_host.use(fake):
        commands = list(
            source.archive._inner(src="/ctl/a.tar.gz", sha256=SHA, root="p/vendor/llama.cpp/",
                                  dest="/b/src/llama.cpp", upload_path="/b/src/archive.tar.gz")
        )
    return commands, fake.noops


def test_archive_already_unpacked_is_a_noop():
    tree = {"identity": {"kind": "archive", "sha256": SHA}, "rpc_target": None, "server_target": None}
    commands, noops = archive_op({"LlamaSource": tree, "Sha256File": None, "SourceTrees": None})
    assert commands == [] and noops == [f"llama.cpp source at /b/src/llama.cpp is archive {SHA[:12]}"]


def test_new_archive_is_uploaded_verified_and_unpacked():
    commands, _ = archive_op({"LlamaSource": None, "Sha256File": None, "SourceTrees": None})
    assert [type(c) for c in commands] == [StringCommand, FileUploadCommand, StringCommand, StringCommand]
    assert commands[1].dest == "/b/src/archive.tar.gz.part"
    assert "sha256sum -c" in commands[2].get_raw_value()
    assert "tar -xzf /b/src/archive.tar.gz" in commands[3].get_raw_value()


def test_upload_left_by_an_interrupted_run_is_not_sent_again():
    other = {"identity": {"kind": "archive", "sha256": "00" * 32}}
    commands, _ = archive_op({"LlamaSource": other, "Sha256File": SHA, "SourceTrees": None})
    assert [type(c) for c in commands] == [StringCommand]


def test_git_same_ref_is_a_noop_other_ref_fetches():
    tree = {"identity": {"kind": "git", "repo": "https://x/llama.cpp", "ref": "b6000", "commit": "a" * 40}}
    fake = FakeHost({"LlamaSource": tree, "SourceTrees": None})
    with ctx_state.use(object()), ctx_host.use(fake):
        assert list(source.git._inner(repo="https://x/llama.cpp", ref="b6000", dest="/b/src/llama.cpp")) == []
        commands = list(source.git._inner(repo="https://x/llama.cpp", ref="b6001", dest="/b/src/llama.cpp"))
    script = commands[0].get_raw_value()
    assert "fetch -q --depth 1 https://x/llama.cpp b6001" in script


# --- real runs on this machine ------------------------------------------------------------------

RPC_CMAKE = "set(TARGET ggml-rpc-server)\nadd_executable(${TARGET} rpc-server.cpp)\n"


def make_sdist(path: Path, version: str) -> Path:
    """A tiny llama-cpp-python-shaped sdist: the llama.cpp tree under vendor/llama.cpp."""
    files = {
        "pkg-1.0/CMakeLists.txt": "project(bindings)\n",
        "pkg-1.0/vendor/llama.cpp/CMakeLists.txt": f"project(llama.cpp) # {version}\n",
        "pkg-1.0/vendor/llama.cpp/include/llama.h": "/* llama */\n",
        "pkg-1.0/vendor/llama.cpp/tools/rpc/CMakeLists.txt": RPC_CMAKE,
    }
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def pyinfra_local(base: Path, *data: str) -> str:
    args = [PYINFRA, "-y", "-v", "@local", "--data", f"llamafleet_dir={base}"]
    for item in data:
        args += ["--data", item]
    result = subprocess.run(args + ["tasks/source.py"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_archive_deploy_twice_then_a_new_archive(tmp_path):
    base = tmp_path / "lf"
    first = make_sdist(tmp_path / "v1.tar.gz", "v1")
    out = pyinfra_local(base, f"llama_cpp_archive={first}")
    assert "[@local] Success" in out
    tree = base / "src" / "llama.cpp"
    assert tree.is_symlink()
    identity = json.loads((tree / ".llamafleet-source").read_text())
    assert identity == {"kind": "archive", "sha256": sha256_file(str(first)), "root": "pkg-1.0/vendor/llama.cpp/"}
    assert "v1" in (tree / "CMakeLists.txt").read_text()
    assert not (base / "src" / "archive.tar.gz").exists()  # removed once unpacked

    again = pyinfra_local(base, f"llama_cpp_archive={first}")
    assert "[@local] No changes" in again and "[@local] Success" not in again

    second = make_sdist(tmp_path / "v2.tar.gz", "v2")
    pyinfra_local(base, f"llama_cpp_archive={second}")
    assert "v2" in (tree / "CMakeLists.txt").read_text()
    trees = sorted(p.name for p in (base / "src").iterdir() if p.name.startswith("tree-"))
    # The old tree stays for a roll back: removing trees is tasks/prune.py's (test_upgrade_*).
    assert trees == sorted(f"tree-archive-{sha256_file(str(archive))[:12]}" for archive in (first, second))
    assert os.readlink(tree) == f"tree-archive-{sha256_file(str(second))[:12]}"


def test_git_ref_deploy(tmp_path):
    repo = tmp_path / "llama.cpp.git"
    work = tmp_path / "work"
    (work / "include").mkdir(parents=True)
    (work / "tools" / "rpc").mkdir(parents=True)
    (work / "CMakeLists.txt").write_text("project(llama.cpp)\n")
    (work / "include" / "llama.h").write_text("/* llama */\n")
    (work / "tools" / "rpc" / "CMakeLists.txt").write_text(RPC_CMAKE)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(work)]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "one"], check=True)
    subprocess.run(git + ["tag", "b1"], check=True)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(repo)], check=True)

    base = tmp_path / "lf"
    url = f"file://{repo}"
    pyinfra_local(base, f"llama_cpp_repo={url}", "llama_cpp_ref=b1")
    identity = json.loads((base / "src" / "llama.cpp" / ".llamafleet-source").read_text())
    assert identity == {"commit": commit, "kind": "git", "ref": "b1", "repo": url}
    assert os.readlink(base / "src" / "llama.cpp") == f"tree-git-{commit[:12]}"
    assert "[@local] No changes" in pyinfra_local(base, f"llama_cpp_repo={url}", "llama_cpp_ref=b1")


def test_missing_archive_names_host_and_key(tmp_path):
    args = [PYINFRA, "-y", "@local", "--data", f"llamafleet_dir={tmp_path / 'lf'}",
            "--data", f"llama_cpp_archive={tmp_path / 'nope.tar.gz'}", "tasks/source.py"]
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "@local: llama_cpp_archive: no such file on the controller" in result.stdout + result.stderr
    assert not (tmp_path / "lf").exists()  # nothing was changed


def test_a_ref_is_never_run_as_shell_code(tmp_path):
    # git allows `$`, `(`, `{` in a branch name; the message about a tree without CMakeLists.txt
    # names the ref and must print it, not run it. (`llamafleet check` refuses such a ref too.)
    work = tmp_path / "work"
    work.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(work)]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    (work / "README").write_text("not llama.cpp\n")
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "one"], check=True)
    ref = "$(touch${IFS}ran)"
    subprocess.run(git + ["branch", ref], check=True)
    dest = tmp_path / "src" / "llama.cpp"
    dest.parent.mkdir()
    result = subprocess.run(["sh", "-c", source.git_script(f"file://{work}", ref, str(dest))],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"llamafleet: {ref} of file://{work} has no CMakeLists.txt" in result.stderr
    assert not (tmp_path / "ran").exists()
