"""llamafleet's base directory (`llamafleet_dir`), made with the marker that proves it is llamafleet's.

Before anything else is written into it: the marker goes only into a directory this deploy makes,
and `llamafleet remove` deletes only a marked one (llamafleet.serving.basedir).
"""

from pyinfra import host

from llamafleet.layout import device_paths
from llamafleet.serving.basedir import base_marked

base = device_paths(host).base
base_marked(name=f"llamafleet's directory {base} (made and marked here, or left as it is)", base=base)
