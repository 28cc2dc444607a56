"""Operations for Termux, the Android app that hosts llamafleet on phones.

pyinfra's own `pkg` operations drive FreeBSD's pkg; Termux's `pkg` is a different tool (a wrapper
around apt that picks a mirror), so it gets its own operation here.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from llamafleet.facts.termux import TermuxPackages


def missing_packages(wanted: list[str], installed: dict[str, str]) -> list[str]:
    """The wanted packages that are not installed, in the order they were asked for."""
    missing = []
    for name in wanted:
        # A pinned name (`clang=17.0.6`) counts as installed only at that version.
        package, _, version = name.partition("=")
        have = installed.get(package)
        if have is None or (version and have != version):
            if name not in missing:
                missing.append(name)
    return missing


@operation()
def packages(packages: list[str]):
    """
    Install Termux packages with `pkg install -y`, only those that are missing.

    + packages: Termux package names (as `pkg search` spells them); `name=version` pins a version

    Runs as the app's user: Termux has no root and no sudo, and needs neither to install into
    $PREFIX.

    **Example:**

    .. code:: python

        termux.packages(
            name="Install the build toolchain",
            packages=["clang", "cmake", "ninja"],
        )
    """
    installed = host.get_fact(TermuxPackages)
    missing = missing_packages(list(packages), installed)
    if not missing:
        host.noop(f"Termux packages are installed: {', '.join(packages)}")
        return
    yield StringCommand("pkg", "install", "-y", *(QuoteString(name) for name in missing))
