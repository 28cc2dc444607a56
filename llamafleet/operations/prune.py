"""Remove what an upgrade left behind: old releases, unused source trees, replaced models.

Each operation reads what is on the device (llamafleet.facts.store), asks llamafleet.operations.keep
what must stay, and removes only the difference with one `rm -rf`; with nothing to remove it
changes nothing, so a second deploy reports no change. tasks/prune.py runs them last, once the
new build and model are in place and the services run them.
"""

from __future__ import annotations

import posixpath

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from llamafleet.facts.store import ModelFiles, Releases, SourceTrees
from llamafleet.layout import Paths
from llamafleet.operations.keep import (
    choose_releases, kept_sources, models_to_remove, records_to_forget, trees_to_remove,
)


def _remove(directory: str, names: list[str]) -> StringCommand:
    return StringCommand("rm", "-rf", *(QuoteString(posixpath.join(directory, name)) for name in names))


def _releases_fact(paths: Paths) -> dict:
    return host.get_fact(Releases, releases_dir=paths.releases, bin_dir=paths.bin, run_dir=paths.run)


@operation()
def releases(paths: Paths):
    """
    Keep the current release and the previous one; remove older releases, unfinished builds'
    staging directories and class archives left in `<base>/run`.

    + paths: the device layout (llamafleet.layout.device_paths)

    The previous release is the one made current most recently before the current one (each
    release directory's mtime, set when it is made current): the one a roll back returns to.
    Nothing is removed while `<base>/bin` points at no release; a staging directory stays
    while a build runs.

    **Example:**

    .. code:: python

        prune.releases(name="Keep the current and previous releases", paths=device_paths(host))
    """
    found = _releases_fact(paths)
    choice = choose_releases(found)
    archives = (found or {}).get("archives") or []
    if not choice.remove and not archives:
        if choice.current is None:
            host.noop(f"{paths.bin} points at no release: nothing pruned")
        else:
            kept = choice.current + (f" and previous {choice.previous}" if choice.previous else "")
            host.noop(f"releases: {kept} kept, nothing else")
        return
    if choice.remove:
        yield _remove(paths.releases, list(choice.remove))
    if archives:
        yield _remove(paths.run, archives)


@operation()
def source_trees(paths: Paths):
    """
    Keep the llama.cpp trees the current and previous releases were built from (and the one
    `<base>/src/llama.cpp` points to); remove other trees, interrupted fetches and unpacks,
    and an uploaded source archive left behind.

    + paths: the device layout

    **Example:**

    .. code:: python

        prune.source_trees(name="Keep the trees of the kept releases", paths=device_paths(host))
    """
    trees = host.get_fact(SourceTrees, src_dir=paths.src, archive=paths.source_archive)
    remove = trees_to_remove(trees, kept_sources(_releases_fact(paths)))
    if not remove:
        kept = sorted((trees or {}).get("trees") or {})
        host.noop(f"source trees: {', '.join(kept) or 'none'} kept, nothing else")
        return
    yield _remove(paths.src, remove)


@operation()
def models(paths: Paths, keep: str | None):
    """
    Remove the model files the deploy downloaded that are not the model in use here; never a
    file it did not put there (`<base>/models/.llamafleet-downloads` names those it did).

    + paths: the device layout
    + keep: the model's file name on this device, None when the device holds no model

    **Example:**

    .. code:: python

        prune.models(name="Only the current model", paths=device_paths(host), keep="gemma-3-270m.gguf")
    """
    found = host.get_fact(ModelFiles, models_dir=paths.models, record=paths.model_record)
    remove = models_to_remove(found, keep)
    if not remove and not records_to_forget(found, keep):
        host.noop(f"models: {keep or 'no model'} kept, no other file the deploy downloaded")
        return
    if remove:
        yield _remove(paths.models, remove)
    # The record names only what is still the deploy's: the kept model, if it put it there.
    record = QuoteString(paths.model_record)
    if keep in ((found or {}).get("downloaded") or []):
        yield StringCommand("echo", QuoteString(keep), ">", record)
    else:
        yield StringCommand("rm", "-f", record)
