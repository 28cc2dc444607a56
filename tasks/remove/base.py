"""llamafleet's base directory (builds, source, models, logs, cache, records), whole, when its
marker says llamafleet made it; a base without the marker is refused, naming host and path.
Last: the refusal fails the host, and every other removal is done by then."""

from pyinfra import host

from llamafleet.layout import device_paths
from llamafleet.serving.basedir import base_removed

base = device_paths(host).base
base_removed(name=f"llamafleet's directory {base} (only if llamafleet made it)", base=base)
