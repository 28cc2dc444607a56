"""What an upgrade keeps and removes, as pure decisions over what the facts found
(llamafleet.operations.keep): releases, source trees, models, and the kept release or tree a
roll back finds."""

from __future__ import annotations

from types import SimpleNamespace

from llamafleet.operations.keep import (
    choose_releases, kept_release_for, kept_sources, kept_tree_for, models_to_remove, previous_release,
    records_to_forget, trees_to_remove,
)
from llamafleet.plan.decide import holds_model


def release(mtime: int, source: str = "git:" + "0" * 40, key: str = "k") -> dict:
    return {"mtime": mtime, "stamp": {"class_key": key, "inputs": {"source": source}}}


def releases_found(current, building=False, staging=(), **releases) -> dict:
    return {"current": current, "releases": releases, "staging": list(staging), "building": building, "archives": []}


# --- releases ---------------------------------------------------------------------------------


def test_keeps_current_and_previous_removes_older():
    # b1 built first, b2 next, b3 now current; an older one from long ago.
    found = releases_found("b3", b0=release(50), b1=release(100), b2=release(200), b3=release(300))
    choice = choose_releases(found)
    assert (choice.current, choice.previous) == ("b3", "b2")
    assert choice.remove == ("b0", "b1")


def test_previous_is_the_last_one_current_before_not_the_last_built():
    # b1 (built at 100) was rolled back to at 400, after b2 (200) and b3 (300): b1 is current.
    # Then b4 is built: the release to return to is b1, the one that ran before it.
    after_rollback = releases_found("b1", b1=release(400), b2=release(200), b3=release(300))
    assert choose_releases(after_rollback).previous == "b3"
    assert choose_releases(after_rollback).remove == ("b2",)
    upgraded_again = releases_found("b4", b1=release(400), b3=release(300), b4=release(500))
    choice = choose_releases(upgraded_again)
    assert choice.previous == "b1" and choice.remove == ("b3",)


def test_current_is_never_removed_even_when_oldest():
    # A clock that went back: the current release has the oldest mtime; it stays all the same.
    found = releases_found("b1", b1=release(10), b2=release(200), b3=release(300))
    choice = choose_releases(found)
    assert "b1" not in choice.remove and choice.previous == "b3" and choice.remove == ("b2",)


def test_same_second_is_broken_by_name():
    assert previous_release({"a": release(5), "b": release(5), "c": release(9)}, "c") == "b"


def test_one_or_two_releases_remove_nothing():
    assert choose_releases(releases_found("b1", b1=release(1))).remove == ()
    assert choose_releases(releases_found("b2", b1=release(1), b2=release(2))).remove == ()


def test_bin_pointing_at_no_release_removes_nothing():
    for current in (None, "gone-release"):
        choice = choose_releases(releases_found(current, b1=release(1), b2=release(2), b3=release(3)))
        assert choice == choose_releases(None) and choice.remove == ()


def test_staging_of_a_killed_build_goes_unless_a_build_runs():
    staging = [".staging-k-1"]
    assert choose_releases(releases_found("b2", staging=staging, b1=release(1), b2=release(2))).remove == (".staging-k-1",)
    busy = releases_found("b2", building=True, staging=staging, b1=release(1), b2=release(2))
    assert choose_releases(busy).remove == ()


# --- source trees -----------------------------------------------------------------------------

A, B, C = ("a" * 40, "b" * 40, "c" * 40)


def tree(commit: str) -> dict:
    return {"kind": "git", "repo": "https://x/llama.cpp", "ref": commit[:4], "commit": commit}


def test_trees_of_current_and_previous_release_stay():
    found = releases_found("r3", r1=release(1, f"git:{A}"), r2=release(2, f"git:{B}"), r3=release(3, f"git:{C}"))
    assert kept_sources(found) == {f"git:{B}", f"git:{C}"}
    trees = {"current": "tree-git-c", "trees": {"tree-git-a": tree(A), "tree-git-b": tree(B), "tree-git-c": tree(C)},
             "leftovers": [".fetch-42", "archive.tar.gz.part"]}
    assert trees_to_remove(trees, kept_sources(found)) == ["tree-git-a", ".fetch-42", "archive.tar.gz.part"]


def test_the_linked_tree_stays_even_when_no_release_uses_it():
    # The source changed but this host's build has not run yet (or failed): the tree the
    # build will read stays, and an archive tree's identity is matched by its sha256.
    archive = {"kind": "archive", "sha256": "d" * 64, "root": ""}
    trees = {"current": "tree-archive-dddd", "trees": {"tree-archive-dddd": archive, "tree-git-a": tree(A)}, "leftovers": []}
    assert trees_to_remove(trees, {f"git:{A}"}) == []
    assert trees_to_remove(trees, set()) == ["tree-git-a"]
    assert trees_to_remove(trees, {"archive:" + "d" * 64}) == ["tree-git-a"]


def test_a_tree_without_identity_is_not_a_kept_releases_tree():
    trees = {"current": "tree-git-a", "trees": {"tree-git-a": tree(A), "tree-odd": None}, "leftovers": []}
    assert trees_to_remove(trees, {f"git:{A}"}) == ["tree-odd"]


# --- models ----------------------------------------------------------------------------------


def test_only_files_the_deploy_downloaded_go():
    found = {"files": ["new.gguf", "old.gguf", "old.gguf.part", "mine.gguf", "notes.txt"],
             "downloaded": ["old.gguf", "new.gguf"]}
    assert models_to_remove(found, "new.gguf") == ["old.gguf", "old.gguf.part"]
    assert records_to_forget(found, "new.gguf")


def test_the_current_model_stays_even_when_the_deploy_downloaded_it():
    found = {"files": ["m.gguf"], "downloaded": ["m.gguf"]}
    assert models_to_remove(found, "m.gguf") == [] and not records_to_forget(found, "m.gguf")


def test_a_model_put_by_hand_stays_when_the_model_changes():
    found = {"files": ["by-hand.gguf", "new.gguf"], "downloaded": ["new.gguf"]}
    assert models_to_remove(found, "new.gguf") == []


def test_a_worker_without_the_model_loses_what_the_deploy_put_there():
    # model_on_workers was on, and is off now: the worker holds no model.
    found = {"files": ["m.gguf", "mine.gguf"], "downloaded": ["m.gguf"]}
    assert models_to_remove(found, None) == ["m.gguf"]


def test_a_record_of_a_file_already_gone_is_forgotten_without_removing_anything():
    found = {"files": ["new.gguf"], "downloaded": ["gone.gguf", "new.gguf"]}
    assert models_to_remove(found, "new.gguf") == [] and records_to_forget(found, "new.gguf")


def test_who_holds_the_model():
    off, on = SimpleNamespace(model_on_workers=False), SimpleNamespace(model_on_workers=True)
    assert holds_model("master", off) and not holds_model("worker", off) and holds_model("worker", on)


# --- what a roll back finds ---------------------------------------------------------------------


def test_kept_release_is_found_by_its_stamp_newest_first_never_the_current():
    found = releases_found("r3", r1=release(1, key="old"), r2=release(2, key="old"), r3=release(3, key="old"))
    wants_old = lambda stamp: stamp["class_key"] == "old"  # noqa: E731
    assert kept_release_for(found, wants_old) == "r2"
    assert kept_release_for(found, lambda stamp: stamp["class_key"] == "other") is None
    no_stamp = releases_found("r2", r1={"mtime": 1, "stamp": None}, r2=release(2))
    assert kept_release_for(no_stamp, lambda stamp: True) is None


def test_kept_tree_is_found_by_its_identity():
    trees = {"current": "tree-git-b", "trees": {"tree-git-a": tree(A), "tree-git-b": tree(B), "tree-x": None}}
    assert kept_tree_for(trees, lambda identity: identity["commit"] == A) == "tree-git-a"
    assert kept_tree_for(trees, lambda identity: identity["commit"] == B) is None  # already current
    assert kept_tree_for(None, lambda identity: True) is None
