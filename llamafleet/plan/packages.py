"""Which packages a host gets: the platform's list, the device class's extras, and the service
manager the plan chose for it (a pure decision, like those in llamafleet.plan.decide).

A service manager's package is installed where the plan chose that manager and nowhere else:
runit on a Linux host that runs its services under runit, never beside systemd, even when a
group data file still lists it in `apt_packages` (as llamafleet's own default once did).
"""

from __future__ import annotations

# The package each (platform, service manager) needs; systemd comes with the system.
MANAGER_PACKAGES = {("termux", "termux-services"): "termux-services", ("linux", "runit"): "runit"}

# The package with taskset, which starts a pinned worker (PlannedHost.cpu_pin). Termux's bootstrap
# has util-linux, yet a user may have removed it; on Debian it is Essential: nothing to add.
PIN_PACKAGES = {"termux": "util-linux"}


def packages_of(settings, platform: str, service_manager: str, pinned: bool = False) -> list[str]:
    """The packages to install on a host, in order, each once: `termux_packages` or
    `apt_packages`, then `extra_packages`, then the service manager's, then taskset's when a
    worker is pinned (`pinned`); without the packages of the platform's other service managers."""
    listed = settings.termux_packages if platform == "termux" else settings.apt_packages
    needed = [MANAGER_PACKAGES.get((platform, service_manager)), PIN_PACKAGES.get(platform) if pinned else None]
    others = {package for (on, manager), package in MANAGER_PACKAGES.items()
              if on == platform and manager != service_manager}
    wanted = dict.fromkeys([*listed, *settings.extra_packages, *filter(None, needed)])
    return [name for name in wanted if name.partition("=")[0] not in others]
