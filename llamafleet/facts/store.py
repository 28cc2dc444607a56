"""Facts about what llamafleet keeps under its base directory: releases, source trees, models.

Read by the prune operations (llamafleet.operations.prune) and by the build and source
operations when they look for a kept release or tree to roll back to. Each one lists names and
the little it needs to decide (llamafleet.operations.keep); none reads a binary or a model.
"""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase

from llamafleet.facts.build import SOURCE_ID_FILE, STAMP_FILE

_MARK = "@@llamafleet "


def _marked(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(marker, lines below it) in output order; lines before the first marker are dropped."""
    parts: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith(_MARK):
            parts.append((line[len(_MARK):].strip(), []))
        elif parts:
            parts[-1][1].append(line)
    return parts


def _json(lines: list[str]) -> dict | None:
    text = "\n".join(lines).strip()
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _names(lines: list[str]) -> list[str]:
    return [line.strip() for line in lines if line.strip()]


def _basename(link: list[str]) -> str | None:
    target = "".join(link).strip().rstrip("/")
    return target.rsplit("/", 1)[-1] if target else None


class Releases(FactBase):
    """
    The releases under `releases_dir`, the one `bin_dir` points to, and what a killed build
    left behind. `mtime` is when llamafleet-build.sh last made the release current (it touches
    the directory then); `stamp` is its build-stamp.json (None when unreadable).

    .. code:: python

        {
            "current": "4f0c...-20261201101500-812",
            "releases": {"4f0c...-20261201101500-812": {"mtime": 1764584100, "stamp": {...}}},
            "staging": [".staging-77aa...-20261130090000-455"],
            "building": False,
            "archives": ["class-77aa....tar.gz"],
        }

    + releases_dir, bin_dir: `<base>/releases` and `<base>/bin`
    + run_dir: `<base>/run`, where the build's lock and the class archives for twins are
    """

    def command(self, releases_dir: str, bin_dir: str, run_dir: str) -> str:
        releases, run = shlex.quote(releases_dir), shlex.quote(run_dir)
        lock = shlex.quote(f"{run_dir}/build.lock")
        return (
            f"echo '{_MARK}current'; readlink {shlex.quote(bin_dir)} 2>/dev/null; "
            # A build holding the lock is alive when its shell or its compiler is.
            f"echo '{_MARK}building'; for p in $(cat {lock}/pid {lock}/worker 2>/dev/null); do "
            'kill -0 "$p" 2>/dev/null && echo "$p"; done; '
            f"for d in {releases}/* {releases}/.staging-*; do [ -d \"$d\" ] || continue; "
            f'echo "{_MARK}entry ${{d##*/}} $(stat -c %Y "$d" 2>/dev/null || echo 0)"; '
            f'cat "$d/{STAMP_FILE}" 2>/dev/null; echo; done; '
            f"echo '{_MARK}archives'; for f in {run}/class-*.tar.gz {run}/class-*.tar.gz.part; do "
            '[ -f "$f" ] && echo "${f##*/}"; done; true'
        )

    def process(self, output: list[str]) -> dict:
        found: dict = {"current": None, "releases": {}, "staging": [], "building": False, "archives": []}
        for marker, lines in _marked(output):
            kind, _, rest = marker.partition(" ")
            if kind == "current":
                found["current"] = _basename(lines)
            elif kind == "building":
                found["building"] = bool(_names(lines))
            elif kind == "archives":
                found["archives"] = _names(lines)
            elif kind == "entry":
                name, _, mtime = rest.partition(" ")
                if name.startswith(".staging-"):
                    found["staging"].append(name)
                elif name:
                    found["releases"][name] = {
                        "mtime": int(mtime) if mtime.strip().isdigit() else 0,
                        "stamp": _json(lines),
                    }
        return found


class SourceTrees(FactBase):
    """
    The llama.cpp trees under `src_dir` (`tree-*`, each with the identity llamafleet recorded
    in it, None when unreadable), the one `<src_dir>/llama.cpp` points to, and leftovers: an
    interrupted fetch or unpack, the uploaded source archive or its unfinished upload.

    .. code:: python

        {
            "current": "tree-git-0a1b2c3d4e5f",
            "trees": {"tree-git-0a1b2c3d4e5f": {"kind": "git", "ref": "b6000", ...}},
            "leftovers": [".fetch-4242", "archive.tar.gz.part"],
        }

    + src_dir: `<base>/src`
    + archive: where tasks/source.py uploads a source archive (Paths.source_archive); without
      it, an upload left behind is not looked for
    """

    def command(self, src_dir: str, archive: str | None = None) -> str:
        src = shlex.quote(src_dir)
        uploads = f"{shlex.quote(archive)} {shlex.quote(archive + '.part')}" if archive else ""
        return (
            f"echo '{_MARK}current'; readlink {src}/llama.cpp 2>/dev/null; "
            f"for d in {src}/tree-*; do [ -d \"$d\" ] || continue; "
            f'echo "{_MARK}tree ${{d##*/}}"; cat "$d/{SOURCE_ID_FILE}" 2>/dev/null; echo; done; '
            f"echo '{_MARK}leftovers'; for f in {src}/.fetch-* {src}/.unpack-* {uploads}; do "
            '[ -e "$f" ] && echo "${f##*/}"; done; true'
        )

    def process(self, output: list[str]) -> dict:
        found: dict = {"current": None, "trees": {}, "leftovers": []}
        for marker, lines in _marked(output):
            kind, _, rest = marker.partition(" ")
            if kind == "current":
                found["current"] = _basename(lines)
            elif kind == "tree" and rest:
                found["trees"][rest] = _json(lines)
            elif kind == "leftovers":
                found["leftovers"] = _names(lines)
        return found


class ModelFiles(FactBase):
    """
    The files in `models_dir` (not its dot files), and those the deploy downloaded there, as
    its record (`record`, one file name a line) names them.

    .. code:: python

        {"files": ["gemma-3-270m.gguf", "mine.gguf"], "downloaded": ["gemma-3-270m.gguf"]}

    + models_dir: `<base>/models`
    + record: `<base>/models/.llamafleet-downloads` (Paths.model_record)
    """

    def command(self, models_dir: str, record: str) -> str:
        models = shlex.quote(models_dir)
        return (
            f"echo '{_MARK}files'; for f in {models}/*; do [ -f \"$f\" ] && echo \"${{f##*/}}\"; done; "
            f"echo '{_MARK}downloaded'; cat {shlex.quote(record)} 2>/dev/null; true"
        )

    def process(self, output: list[str]) -> dict:
        found: dict = {"files": [], "downloaded": []}
        for marker, lines in _marked(output):
            if marker in found:
                found[marker] = _names(lines)
        return found
