"""Install the toolchain llama.cpp needs: `pkg` on Termux phones, apt on Linux hosts.

Lists come from group data: `termux_packages` or `apt_packages` for the platform, plus
`extra_packages` for a device class, plus the package of the service manager the plan chose
(runit only where runit runs the services: llamafleet.plan.packages), plus taskset's where the
plan pins a worker to its big cores (util-linux, on Termux). A second run installs nothing, and
refreshes no package list: lists are refreshed only on the way to an install (apt: when older
than a day; Termux's pkg does it by itself).
"""

from llamafleet.operations import packages, termux
from llamafleet.plan.packages import packages_of
from llamafleet.serving import cluster

planned = cluster.this_host()
wanted = packages_of(cluster.settings(), planned.platform, planned.service_manager, pinned=bool(planned.cpu_pin))

if planned.platform == "termux":
    termux.packages(name="Install Termux packages", packages=wanted)
else:
    packages.apt_installed(name="Install Debian packages", packages=wanted)
