"""Remove what an upgrade replaced, once the new build and model are in place and serving.

Kept: the current release and the previous one (a roll back swaps it in without compiling),
the llama.cpp trees they were built from, and the model this device uses. Removed: older
releases, other trees, leftovers of interrupted builds, fetches and uploads, and the model
files the deploy downloaded that are no longer the model; never a file put there by hand. With
nothing to remove, nothing changes (llamafleet.operations.prune, llamafleet.operations.keep).
"""

import posixpath

from pyinfra import host

from llamafleet.layout import device_paths
from llamafleet.operations import prune
from llamafleet.plan.decide import holds_model
from llamafleet.serving import cluster

me, settings = cluster.this_host(), cluster.settings()
paths = device_paths(host)

prune.releases(name="Releases: the current one and the previous one", paths=paths)

prune.source_trees(name="llama.cpp source trees: those of the kept releases", paths=paths)

prune.models(
    name="Models: the one in use, and files the deploy did not download",
    paths=paths,
    keep=posixpath.basename(cluster.model_path(me)) if holds_model(me.role, settings) else None,
)
