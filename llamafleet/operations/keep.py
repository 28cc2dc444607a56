"""What a deploy keeps on a device after an upgrade, and what it may remove (pure, no pyinfra).

The inputs are what the facts of llamafleet.facts.store found; the prune operations
(llamafleet.operations.prune) remove the rest, and the build and source operations use the
same answers to roll back without compiling or fetching.

- Releases (`<base>/releases/<name>`): the one `<base>/bin` points to, and the *previous* one,
  the one most recently made current before it. "Previous" comes from each release directory's
  mtime, which llamafleet-build.sh sets whenever it makes a release current (compile, install
  from a twin, or a roll back). Not from the stamp: build-stamp.json is the same on every member
  of a class (a twin installs the builder's copy) and records no time; not from the name's
  timestamp either: that is when the release was built, not when it was last in use. An mtime
  is the device's own clock, so only one device's releases are ever compared.
- Source trees (`<base>/src/tree-*`): the one `<base>/src/llama.cpp` points to and those the
  current and previous releases were built from (their stamps name the source), so a roll back
  neither fetches nor uploads. Interrupted fetches and unpacks and an uploaded archive left
  behind are not needed by anything.
- Models (`<base>/models/`): the model the plan puts on the device; of the others, only files
  the deploy downloaded itself (named in `.llamafleet-downloads`) are removed, never a file put
  there by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llamafleet.operations.buildinputs import source_identity


@dataclass(frozen=True)
class ReleaseChoice:
    """What happens to `<base>/releases/`: the names kept, and the entries removed (releases
    and unfinished `.staging-*` directories)."""

    current: str | None
    previous: str | None
    remove: tuple[str, ...] = field(default_factory=tuple)


def _stamp(entry: dict | None) -> dict:
    stamp = (entry or {}).get("stamp")
    return stamp if isinstance(stamp, dict) else {}


def previous_release(releases: dict[str, dict], current: str | None) -> str | None:
    """The release made current most recently before `current`: the newest mtime among the
    others (the name breaks a tie of one second), None when there is no other."""
    others = [name for name in releases if name != current]
    if not others:
        return None
    return max(others, key=lambda name: (int(releases[name].get("mtime") or 0), name))


def choose_releases(found: dict | None) -> ReleaseChoice:
    """Which entries of `<base>/releases/` go, from the Releases fact.

    Kept: the current release and the previous one. When `<base>/bin` points at no release
    (never built, or replaced by hand) nothing is removed: there is no current release to
    count from. A `.staging-*` directory is a build that never finished: removed, unless a
    build is running (it may be that build's).
    """
    found = found or {}
    releases: dict[str, dict] = found.get("releases") or {}
    current = found.get("current")
    if current not in releases:
        return ReleaseChoice(current=None, previous=None)
    previous = previous_release(releases, current)
    remove = [name for name in sorted(releases) if name not in (current, previous)]
    if not found.get("building"):
        remove += sorted(found.get("staging") or [])
    return ReleaseChoice(current=current, previous=previous, remove=tuple(remove))


def kept_sources(found: dict | None) -> set[str]:
    """The sources (`git:<commit>`, `archive:<sha256>`) the current and previous releases were
    built from, as their stamps record them."""
    choice = choose_releases(found)
    releases = (found or {}).get("releases") or {}
    sources = set()
    for name in (choice.current, choice.previous):
        source = (_stamp(releases.get(name)).get("inputs") or {}).get("source")
        if isinstance(source, str) and source:
            sources.add(source)
    return sources


def tree_source(identity: dict | None) -> str | None:
    """A tree's recorded identity as the stamp writes its source (operations.buildinputs)."""
    return source_identity(identity if isinstance(identity, dict) else None)


def trees_to_remove(trees: dict | None, sources: set[str]) -> list[str]:
    """Entries of `<base>/src/` to remove, from the SourceTrees fact and `kept_sources`.

    Kept: the tree `<base>/src/llama.cpp` points to and every tree whose identity is one of
    `sources`. Removed: the other `tree-*` directories, and the leftovers (an interrupted
    fetch or unpack, an uploaded source archive: unpacking removes it when it succeeds).
    """
    trees = trees or {}
    current = trees.get("current")
    remove = [
        name for name, identity in sorted((trees.get("trees") or {}).items())
        if name != current and tree_source(identity) not in sources
    ]
    return remove + sorted(trees.get("leftovers") or [])


def models_to_remove(models: dict | None, keep: str | None) -> list[str]:
    """Files of `<base>/models/` to remove, from the ModelFiles fact: those the deploy
    downloaded (and their unfinished `.part`) other than `keep`, the model in use here (None
    when the device holds no model)."""
    models = models or {}
    present = set(models.get("files") or [])
    remove = []
    for name in sorted(set(models.get("downloaded") or [])):
        if name == keep:
            continue
        remove += [file for file in (name, f"{name}.part") if file in present]
    return remove


def records_to_forget(models: dict | None, keep: str | None) -> bool:
    """True when `.llamafleet-downloads` names a file other than `keep` (removed, or gone):
    the record is rewritten to name only what is still the deploy's."""
    return any(name != keep for name in (models or {}).get("downloaded") or [])


def kept_release_for(found: dict | None, matches) -> str | None:
    """A release other than the current one whose stamp satisfies `matches(stamp)` (the build
    wants exactly those inputs again: a roll back), the most recently current first."""
    found = found or {}
    releases: dict[str, dict] = found.get("releases") or {}
    candidates = [
        name for name, entry in releases.items()
        if name != found.get("current") and _stamp(entry) and matches(_stamp(entry))
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda name: (int(releases[name].get("mtime") or 0), name))


def kept_tree_for(trees: dict | None, matches) -> str | None:
    """A tree under `<base>/src/` (not the current one) whose identity satisfies
    `matches(identity)`: the source a roll back asks for, still on the device."""
    trees = trees or {}
    for name, identity in sorted((trees.get("trees") or {}).items()):
        if name != trees.get("current") and isinstance(identity, dict) and matches(identity):
            return name
    return None
