"""Install the toolchain llama.cpp needs: `pkg` on Termux phones, apt on Linux hosts.

Lists come from group data: `termux_packages` or `apt_packages` for the platform, plus
`extra_packages` for a device class. A second run installs nothing.
"""

from pyinfra import host
from pyinfra.operations import apt

from llamafleet.layout import platform_name
from llamafleet.operations import termux
from llamafleet.operations.hostdata import merge_unique, package_list

platform = platform_name(host)
extra = package_list(host.name, "extra_packages", host.data.get("extra_packages"))

if platform == "termux":
    termux.packages(
        name="Install Termux packages",
        packages=merge_unique(
            package_list(host.name, "termux_packages", host.data.get("termux_packages")), extra
        ),
    )
else:
    # No `update`: the package lists are refreshed by the admin, and offline hosts (the lab) must
    # still converge when everything is installed already.
    apt.packages(
        name="Install Debian packages",
        packages=merge_unique(
            package_list(host.name, "apt_packages", host.data.get("apt_packages")), extra
        ),
    )
