"""Debian packages for llamafleet: installed when missing, from package lists refreshed first
when they are stale.

A fresh device (a Raspberry Pi OS image months old, a cloud image with empty lists) has package
lists that no longer match its mirror: `apt-get install` then fails with 404s, or finds no
package at all. pyinfra's `apt.packages(update=True, cache_time=...)` refreshes them, but on every
run whose lists are older than `cache_time`, wanted or not: a cluster whose packages are all
installed would change something once a day, and a host without a route to its mirror would
fail a deploy that has nothing to install. So the lists are refreshed (pyinfra's own
`apt.update`, with its `cache_time` stamp) only on the way to installing something.

Termux needs nothing of the kind: its `pkg install` refreshes the lists itself when they are
older than 20 minutes or missing (termux-tools, scripts/pkg.in: update_apt_cache).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt

# Older package lists than this are refreshed before an install.
APT_LISTS_MAX_AGE_S = 24 * 3600


def missing_debs(wanted: list[str], installed: dict[str, list[str]]) -> list[str]:
    """The wanted packages that are not installed (a pinned `name=version` only at that
    version), in the order asked for, each once."""
    missing = []
    for name in wanted:
        package, _, version = name.partition("=")
        have = installed.get(package)
        if (not have or (version and version not in have)) and name not in missing:
            missing.append(name)
    return missing


@operation()
def apt_installed(packages: list[str], cache_time: int = APT_LISTS_MAX_AGE_S):
    """
    Install the Debian packages that are missing, refreshing apt's package lists first when they
    are older than `cache_time`; nothing at all when every package is installed.

    + packages: Debian package names; `name=version` pins a version
    + cache_time: the age in seconds beyond which the lists are refreshed before installing

    **Example:**

    .. code:: python

        packages.apt_installed(
            name="Install the build toolchain",
            packages=["build-essential", "cmake", "ninja-build"],
        )
    """
    missing = missing_debs(list(packages), host.get_fact(DebPackages) or {})
    if not missing:
        host.noop(f"Debian packages are installed: {', '.join(packages)}")
        return
    yield from apt.update._inner(cache_time=cache_time)
    yield from apt.packages._inner(packages=missing)
