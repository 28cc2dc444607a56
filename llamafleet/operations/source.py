"""Put one llama.cpp source tree on a device: from an archive on the controller, or from git.

The tree lives in `<src>/tree-<id>` and `<src>/llama.cpp` is a symlink to it. A new tree is
unpacked (or fetched) into a temporary directory next to the target, completed, renamed, and only
then does the symlink switch, with one rename: an interrupted run never leaves a half tree behind
the name the build uses. The tree carries `.llamafleet-source` (JSON: archive sha256 or git
commit), which the build stamp records. The scripts that do this are templates/source/*.sh.j2.

The tree of the previous release stays beside the current one (llamafleet.operations.keep;
the prune task removes the others): setting the ref or archive back points the symlink at it
again, with nothing fetched or uploaded.
"""

from __future__ import annotations

import json
import posixpath
import shlex

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from llamafleet.facts.build import SOURCE_ID_FILE, LlamaSource
from llamafleet.facts.store import SourceTrees
from llamafleet.operations.keep import kept_tree_for
from llamafleet.operations.transfer import upload_verified
from llamafleet.templates import render


def archive_tree_name(sha256: str) -> str:
    return f"tree-archive-{sha256[:12]}"


def unpack_script(archive: str, sha256: str, root: str, dest: str) -> str:
    """Shell: unpack the llama.cpp tree at `root` inside `archive` and make it `dest`."""
    return render(
        "source/unpack-archive.sh.j2",
        archive=archive,
        member=root.rstrip("/"),
        root=root,
        dest=dest,
        parent=posixpath.dirname(dest),
        tree=archive_tree_name(sha256),
        identity=json.dumps({"kind": "archive", "sha256": sha256, "root": root}, sort_keys=True),
        source_id_file=SOURCE_ID_FILE,
    )


def git_script(repo: str, ref: str, dest: str) -> str:
    """Shell: fetch `ref` of `repo` shallowly into a new tree and make it `dest`."""
    return render(
        "source/fetch-git.sh.j2",
        repo=repo,
        ref=ref,
        repo_json=json.dumps(repo),
        ref_json=json.dumps(ref),
        dest=dest,
        parent=posixpath.dirname(dest),
        source_id_file=SOURCE_ID_FILE,
    )


def switch_script(tree: str, dest: str) -> str:
    """Shell: point `dest` at its sibling tree `tree`, already on the device (a roll back)."""
    return render("source/swap-tree.sh.j2", tree=shlex.quote(tree), dest=dest)


def _run(script: str) -> StringCommand:
    return StringCommand("sh", "-c", QuoteString(script))


def _kept_tree(dest: str, matches) -> str | None:
    """A tree beside `dest` (not the current one) whose identity `matches`, or None."""
    return kept_tree_for(host.get_fact(SourceTrees, src_dir=posixpath.dirname(dest)), matches)


@operation()
def archive(src: str, sha256: str, root: str, dest: str, upload_path: str):
    """
    Make `dest` the llama.cpp tree of a source archive kept on the controller.

    + src: the .tar.gz on the controller
    + sha256: its sha256 (the source identity recorded in the tree)
    + root: where llama.cpp sits inside the archive ("" or e.g. "pkg-1.0/vendor/llama.cpp/")
    + dest: the tree's path on the device (a symlink, swapped atomically)
    + upload_path: where the archive is uploaded on the device (removed once unpacked)

    Nothing is sent when the tree already came from this archive or a kept tree did (the
    symlink is pointed at it), and the upload is skipped when an earlier, interrupted run left a
    verified copy on the device.

    **Example:**

    .. code:: python

        source.archive(
            name="Unpack llama.cpp",
            src="llama_cpp_python-0.3.36.tar.gz",
            sha256="832d...",
            root="llama_cpp_python-0.3.36/vendor/llama.cpp/",
            dest="/opt/llamafleet/src/llama.cpp",
            upload_path="/opt/llamafleet/src/archive.tar.gz",
        )
    """
    tree = host.get_fact(LlamaSource, path=dest)
    identity = (tree or {}).get("identity") or {}
    if identity.get("kind") == "archive" and identity.get("sha256") == sha256:
        host.noop(f"llama.cpp source at {dest} is archive {sha256[:12]}")
        return
    kept = _kept_tree(dest, lambda found: found.get("kind") == "archive" and found.get("sha256") == sha256)
    if kept:
        yield _run(switch_script(kept, dest))
        return
    yield from upload_verified(src, upload_path, sha256)
    yield _run(unpack_script(upload_path, sha256, root, dest))


@operation()
def git(repo: str, ref: str, dest: str):
    """
    Make `dest` a shallow checkout of one ref (tag or commit) of a llama.cpp git repository.

    + repo: git URL the device fetches from
    + ref: tag or commit; every node must run the same one (the RPC protocol version must match)
    + dest: the tree's path on the device (a symlink, swapped atomically)

    A tree already fetched from this repository and ref is kept: tags and commits do not move.
    Branch names work but are not followed after the first fetch; use a tag or commit. A kept
    tree of the ref (the previous release's) is pointed at again instead of fetched.

    **Example:**

    .. code:: python

        source.git(
            name="Fetch llama.cpp",
            repo="https://github.com/ggml-org/llama.cpp",
            ref="b6000",
            dest="/opt/llamafleet/src/llama.cpp",
        )
    """
    tree = host.get_fact(LlamaSource, path=dest)
    identity = (tree or {}).get("identity") or {}
    if identity.get("kind") == "git" and identity.get("repo") == repo and identity.get("ref") == ref:
        host.noop(f"llama.cpp source at {dest} is {ref} ({str(identity.get('commit'))[:12]})")
        return
    kept = _kept_tree(dest, lambda found: found.get("kind") == "git" and found.get("repo") == repo and found.get("ref") == ref)
    yield _run(switch_script(kept, dest) if kept else git_script(repo, ref, dest))
