"""The DevicePlatform fact: Termux on Android or plain Linux, root or not, service manager."""

from __future__ import annotations

from pyinfra.api import FactBase

from llamafleet.cpu.device import parse_platform

# Each line is `key=value`; every probe swallows its own errors so the fact never fails.
# getprop exists only on Android; sv-enable comes with Termux's termux-services package.
PROBE = r"""
echo "prefix=${PREFIX:-}"
echo "termux_version=${TERMUX_VERSION:-}"
echo "home=${HOME:-}"
echo "uid=$(id -u 2>/dev/null)"
echo "android=$(getprop ro.build.version.release 2>/dev/null)"
if [ -d /run/systemd/system ]; then echo "systemd=1"; else echo "systemd=0"; fi
echo "sv_enable=$(command -v sv-enable 2>/dev/null)"
echo "runsvdir=$(command -v runsvdir 2>/dev/null)"
true
""".strip()


class DevicePlatform(FactBase[dict]):
    """Where the host runs (see llamafleet.cpu.device.parse_platform for the rules):

    .. code:: python

        {"platform": "termux", "android_version": "13", "is_root": False,
         "home": "/data/data/com.termux/files/home", "prefix": "/data/data/com.termux/files/usr",
         "has_systemd": False, "service_manager": "termux-services"}
    """

    # Read once per host and deploy (llamafleet.facts.reading): it cannot change meanwhile.
    same_for_a_deploy = True

    def command(self) -> str:
        return PROBE

    def process(self, output: list[str]) -> dict:
        return parse_platform(list(output))
