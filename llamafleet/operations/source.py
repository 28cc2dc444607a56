"""Put one llama.cpp source tree on a device: from an archive on the controller, or from git.

The tree lives in `<src>/tree-<id>` and `<src>/llama.cpp` is a symlink to it. A new tree is
unpacked (or fetched) into a temporary directory next to the target, completed, renamed, and only
then does the symlink switch, with one rename: an interrupted run never leaves a half tree behind
the name the build uses. The tree carries `.llamafleet-source` (JSON: archive sha256 or git
commit), which the build stamp records.
"""

from __future__ import annotations

import json
import posixpath
import shlex

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from llamafleet.facts.build import SOURCE_ID_FILE, LlamaSource
from llamafleet.operations.transfer import upload_verified


def _swap_symlink_script(dest: str, q_name: str) -> str:
    """Shell: point `dest` at its sibling tree `q_name` (a quoted shell word) atomically, then drop
    older trees."""
    q_dest = shlex.quote(dest)
    parent = shlex.quote(posixpath.dirname(dest))
    return f"""
ln -sfn {q_name} {q_dest}.new
if [ -e {q_dest} ] && [ ! -L {q_dest} ]; then rm -rf {q_dest}; fi
mv -T {q_dest}.new {q_dest}
for old in {parent}/tree-*; do
    [ "$(basename "$old")" = {q_name} ] || rm -rf "$old"
done
"""


def archive_tree_name(sha256: str) -> str:
    return f"tree-archive-{sha256[:12]}"


def unpack_script(archive: str, sha256: str, root: str, dest: str) -> str:
    """Shell: unpack the llama.cpp tree at `root` inside `archive` and make it `dest`."""
    parent = posixpath.dirname(dest)
    tree_name = archive_tree_name(sha256)
    identity = json.dumps({"kind": "archive", "sha256": sha256, "root": root}, sort_keys=True)
    member = root.rstrip("/")
    unpacked = f'"$tmp"/{shlex.quote(member)}' if member else '"$tmp"'
    extract_member = shlex.quote(member) if member else ""
    return f"""set -e
tmp={shlex.quote(parent)}/.unpack-$$
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
tar -xzf {shlex.quote(archive)} -C "$tmp" {extract_member}
if [ ! -f {unpacked}/CMakeLists.txt ]; then
    echo {shlex.quote(f"llamafleet: no llama.cpp tree at {root or '/'} in {archive}")} >&2
    exit 1
fi
printf '%s\\n' {shlex.quote(identity)} > {unpacked}/{SOURCE_ID_FILE}
rm -rf {shlex.quote(parent)}/{tree_name}
mv {unpacked} {shlex.quote(parent)}/{tree_name}
{_swap_symlink_script(dest, shlex.quote(tree_name))}
rm -f {shlex.quote(archive)}
"""


def git_script(repo: str, ref: str, dest: str) -> str:
    """Shell: fetch `ref` of `repo` shallowly into a new tree and make it `dest`."""
    parent = shlex.quote(posixpath.dirname(dest))
    return f"""set -e
tmp={parent}/.fetch-$$
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
git init -q "$tmp"
git -C "$tmp" fetch -q --depth 1 {shlex.quote(repo)} {shlex.quote(ref)}
git -C "$tmp" -c advice.detachedHead=false checkout -q FETCH_HEAD
commit=$(git -C "$tmp" rev-parse HEAD)
if [ ! -f "$tmp"/CMakeLists.txt ]; then
    echo {shlex.quote(f"llamafleet: {ref} of {repo} has no CMakeLists.txt: not a llama.cpp tree")} >&2
    exit 1
fi
printf '{{"commit": "%s", "kind": "git", "ref": %s, "repo": %s}}\\n' "$commit" \\
    {shlex.quote(json.dumps(ref))} {shlex.quote(json.dumps(repo))} > "$tmp"/{SOURCE_ID_FILE}
tree_name=tree-git-$(printf '%s' "$commit" | cut -c1-12)
rm -rf {parent}/"$tree_name"
mv "$tmp" {parent}/"$tree_name"
{_swap_symlink_script(dest, '"$tree_name"')}
"""


def _run(script: str) -> StringCommand:
    return StringCommand("sh", "-c", QuoteString(script))


@operation()
def archive(src: str, sha256: str, root: str, dest: str, upload_path: str):
    """
    Make `dest` the llama.cpp tree of a source archive kept on the controller.

    + src: the .tar.gz on the controller
    + sha256: its sha256 (the source identity recorded in the tree)
    + root: where llama.cpp sits inside the archive ("" or e.g. "pkg-1.0/vendor/llama.cpp/")
    + dest: the tree's path on the device (a symlink, swapped atomically)
    + upload_path: where the archive is uploaded on the device (removed once unpacked)

    Nothing is sent when the tree already came from this archive, and the upload is skipped when
    an earlier, interrupted run left a verified copy on the device.

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
    Branch names work but are not followed after the first fetch; use a tag or commit.

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
    yield _run(git_script(repo, ref, dest))
