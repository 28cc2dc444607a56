"""The prune operations: commands only for what must go, noop otherwise; their facts read by a
real shell; and all three run for real by pyinfra on this machine (@local), twice: the second
run changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pyinfra.api import StringCommand
from pyinfra.context import ctx_host, ctx_state

from llamafleet.facts.store import ModelFiles, Releases, SourceTrees
from llamafleet.layout import paths_for
from llamafleet.operations import prune
from scratch import FakeHost

PATHS = paths_for("/opt/llamafleet")
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
REPO = Path(__file__).resolve().parents[2]
A, B, C = ("a" * 40, "b" * 40, "c" * 40)


def run(op, facts, **kwargs):
    fake = FakeHost("linux1", facts)
    with ctx_state.use(object()), ctx_host.use(fake):
        commands = list(op._inner(**kwargs))
    return [c.get_raw_value() for c in commands if isinstance(c, StringCommand)], fake.noops


def stamped(mtime, commit):
    return {"mtime": mtime, "stamp": {"class_key": "k", "inputs": {"source": f"git:{commit}"}}}


RELEASES = {
    "current": "r3",
    "releases": {"r1": stamped(100, A), "r2": stamped(200, B), "r3": stamped(300, C)},
    "staging": [], "building": False, "archives": [],
}


# --- decisions with recorded facts ---------------------------------------------------------------


def test_releases_removes_only_the_older_ones():
    commands, noops = run(prune.releases, {"Releases": RELEASES}, paths=PATHS)
    assert commands == ["rm -rf /opt/llamafleet/releases/r1"] and noops == []


def test_releases_noop_names_what_it_keeps():
    found = {**RELEASES, "releases": {k: v for k, v in RELEASES["releases"].items() if k != "r1"}}
    commands, noops = run(prune.releases, {"Releases": found}, paths=PATHS)
    assert commands == [] and noops == ["releases: r3 and previous r2 kept, nothing else"]


def test_releases_left_archives_and_staging_go_too():
    found = {**RELEASES, "staging": [".staging-k-9"], "archives": ["class-k.tar.gz.part"]}
    commands, _ = run(prune.releases, {"Releases": found}, paths=PATHS)
    assert commands == ["rm -rf /opt/llamafleet/releases/r1 /opt/llamafleet/releases/.staging-k-9",
                        "rm -rf /opt/llamafleet/run/class-k.tar.gz.part"]


def test_releases_without_a_current_one_touch_nothing():
    commands, noops = run(prune.releases, {"Releases": {**RELEASES, "current": None}}, paths=PATHS)
    assert commands == [] and noops == ["/opt/llamafleet/bin points at no release: nothing pruned"]


def test_source_trees_keeps_the_trees_of_both_kept_releases():
    trees = {"current": "tree-git-cccc", "leftovers": [".unpack-7"], "trees": {
        f"tree-git-{x[:4]}": {"kind": "git", "commit": x} for x in (A, B, C)}}
    commands, _ = run(prune.source_trees, {"Releases": RELEASES, "SourceTrees": trees}, paths=PATHS)
    assert commands == ["rm -rf /opt/llamafleet/src/tree-git-aaaa /opt/llamafleet/src/.unpack-7"]
    trees["trees"].pop("tree-git-aaaa")
    trees["leftovers"] = []
    commands, noops = run(prune.source_trees, {"Releases": RELEASES, "SourceTrees": trees}, paths=PATHS)
    assert commands == [] and noops == ["source trees: tree-git-bbbb, tree-git-cccc kept, nothing else"]


def test_models_removes_the_old_download_and_rewrites_the_record():
    found = {"files": ["new.gguf", "old.gguf", "mine.gguf"], "downloaded": ["old.gguf", "new.gguf"]}
    commands, _ = run(prune.models, {"ModelFiles": found}, paths=PATHS, keep="new.gguf")
    record = "/opt/llamafleet/models/.llamafleet-downloads"
    assert commands == ["rm -rf /opt/llamafleet/models/old.gguf", f"echo new.gguf > {record}"]


def test_models_noop_when_only_the_current_download_is_recorded():
    found = {"files": ["new.gguf", "mine.gguf"], "downloaded": ["new.gguf"]}
    commands, noops = run(prune.models, {"ModelFiles": found}, paths=PATHS, keep="new.gguf")
    assert commands == [] and noops == ["models: new.gguf kept, no other file the deploy downloaded"]


def test_models_on_a_worker_without_the_model():
    found = {"files": ["m.gguf"], "downloaded": ["m.gguf"]}
    commands, _ = run(prune.models, {"ModelFiles": found}, paths=PATHS, keep=None)
    assert commands == ["rm -rf /opt/llamafleet/models/m.gguf", "rm -f /opt/llamafleet/models/.llamafleet-downloads"]
    commands, noops = run(prune.models, {"ModelFiles": {"files": ["hand.gguf"], "downloaded": []}}, paths=PATHS, keep=None)
    assert commands == [] and noops == ["models: no model kept, no other file the deploy downloaded"]


# --- the facts, read by a real shell --------------------------------------------------------------


def read(fact, **kwargs):
    out = subprocess.run(["sh", "-c", fact.command(**kwargs)], capture_output=True, text=True, check=True)
    return fact.process(out.stdout.splitlines())


def test_facts_on_a_fresh_base(tmp_path):
    paths = paths_for(str(tmp_path / "base"))
    assert read(Releases(), releases_dir=paths.releases, bin_dir=paths.bin, run_dir=paths.run) == {
        "current": None, "releases": {}, "staging": [], "building": False, "archives": []}
    assert read(SourceTrees(), src_dir=paths.src, archive=paths.source_archive) == {
        "current": None, "trees": {}, "leftovers": []}
    assert read(ModelFiles(), models_dir=paths.models, record=paths.model_record) == {"files": [], "downloaded": []}


def test_releases_fact_sees_a_running_build(tmp_path):
    paths = paths_for(str(tmp_path))
    lock = Path(paths.run, "build.lock")
    lock.mkdir(parents=True)
    (lock / "pid").write_text(f"{os.getpid()}\n")
    assert read(Releases(), releases_dir=paths.releases, bin_dir=paths.bin, run_dir=paths.run)["building"] is True
    (lock / "pid").write_text("999999999\n")  # a killed build's lock: no such process
    assert read(Releases(), releases_dir=paths.releases, bin_dir=paths.bin, run_dir=paths.run)["building"] is False


# --- all three for real, twice -------------------------------------------------------------------


def make_device(base: Path) -> None:
    """A base after three upgrades: r1 (tree a), r2 (tree b), r3 current (tree c), plus what
    interrupted runs leave, and a model changed from old.gguf to new.gguf beside one of the user's."""
    for number, (name, commit) in enumerate((("r1", A), ("r2", B), ("r3", C)), start=1):
        release = base / "releases" / name
        release.mkdir(parents=True)
        stamp = {"class_key": "k", "inputs": {"source": f"git:{commit}"}}
        (release / "build-stamp.json").write_text(json.dumps(stamp, indent=2))
        os.utime(release, (1_700_000_000 + number, 1_700_000_000 + number))
        tree = base / "src" / f"tree-git-{commit[:12]}"
        tree.mkdir(parents=True)
        (tree / ".llamafleet-source").write_text(json.dumps({"kind": "git", "commit": commit}))
    (base / "releases" / ".staging-k-77").mkdir()
    (base / "bin").symlink_to("releases/r3")
    (base / "src" / "llama.cpp").symlink_to(f"tree-git-{C[:12]}")
    (base / "src" / ".fetch-4242").mkdir()
    (base / "src" / "archive.tar.gz.part").write_text("half")
    (base / "run").mkdir()
    (base / "run" / "class-k.tar.gz").write_text("old class archive")
    models = base / "models"
    models.mkdir()
    for name in ("new.gguf", "old.gguf", "old.gguf.part", "mine.gguf"):
        (models / name).write_text(name)
    (models / ".llamafleet-downloads").write_text("old.gguf\nnew.gguf\n")


DEPLOY = """
from llamafleet.layout import paths_for
from llamafleet.operations import prune

paths = paths_for({base!r})
prune.releases(name="releases", paths=paths)
prune.source_trees(name="trees", paths=paths)
prune.models(name="models", paths=paths, keep="new.gguf")
"""


def pyinfra_local(workdir: Path) -> str:
    result = subprocess.run([PYINFRA, "-y", "@local", "deploy.py"], cwd=workdir, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": f"{REPO}:{os.environ.get('PYTHONPATH', '')}"})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_prune_for_real_then_a_second_run_changes_nothing(tmp_path):
    base = tmp_path / "a base"  # a space: every path is quoted
    make_device(base)
    (tmp_path / "deploy.py").write_text(DEPLOY.format(base=str(base)))

    out = pyinfra_local(tmp_path)
    assert "[@local] Success" in out
    assert sorted(os.listdir(base / "releases")) == ["r2", "r3"]
    assert os.readlink(base / "bin") == "releases/r3"
    assert sorted(os.listdir(base / "src")) == ["llama.cpp", f"tree-git-{B[:12]}", f"tree-git-{C[:12]}"]
    assert os.listdir(base / "run") == []
    assert sorted(os.listdir(base / "models")) == [".llamafleet-downloads", "mine.gguf", "new.gguf"]
    assert (base / "models" / ".llamafleet-downloads").read_text() == "new.gguf\n"

    again = pyinfra_local(tmp_path)
    assert "[@local] No changes" in again and "[@local] Success" not in again
