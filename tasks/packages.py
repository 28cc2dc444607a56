"""Install the toolchain llama.cpp needs: `pkg` on Termux phones, apt on Linux hosts.

Lists come from group data: `termux_packages` or `apt_packages` for the platform, plus
`extra_packages` for a device class. A second run installs nothing.
"""

from pyinfra.operations import apt

from llamafleet.operations import termux
from llamafleet.operations.hostdata import merge_unique
from llamafleet.serving import cluster

settings = cluster.settings()

if cluster.this_host().platform == "termux":
    termux.packages(
        name="Install Termux packages",
        packages=merge_unique(settings.termux_packages, settings.extra_packages),
    )
else:
    # runit only where it supervises llamafleet's services: on a systemd host they are units,
    # and runit (with runit-run, a second system-wide supervisor) is nothing the owner asked for.
    wanted = [package for package in merge_unique(settings.apt_packages, settings.extra_packages)
              if package != "runit" or cluster.this_host().service_manager == "runit"]
    # No `update`: the package lists are refreshed by the admin, and offline hosts (the lab) must
    # still converge when everything is installed already.
    apt.packages(
        name="Install Debian packages",
        packages=wanted,
    )
