"""Facts about Termux itself (the Android app's package database)."""

from __future__ import annotations

from pyinfra.api import FactBase

# One line per package; the tab-separated shape survives package names with dots and pluses.
_QUERY_FORMAT = r"${Package}\t${Version}\t${Status}\n"


class TermuxPackages(FactBase):
    """
    Packages installed in Termux, read from its dpkg database.

    Termux builds dpkg with its own admin dir ($PREFIX/var/lib/dpkg), so a plain `dpkg-query -W`
    on the device reads the app's database, never the Android system's. Only packages whose status
    is "install ok installed" count (half-installed or removed ones are to be installed again).

    .. code:: python

        {
            "clang": "21.1.8",
            "cmake": "4.1.2",
        }
    """

    default = dict

    def command(self) -> str:
        # `|| true`: a device without dpkg-query simply has no packages we know of.
        return f"dpkg-query -W -f '{_QUERY_FORMAT}' 2>/dev/null || true"

    def process(self, output: list[str]) -> dict[str, str]:
        return parse_dpkg_query(output)


def parse_dpkg_query(lines: list[str]) -> dict[str, str]:
    """Parse `dpkg-query -W -f '${Package}\\t${Version}\\t${Status}\\n'` into {name: version}."""
    installed: dict[str, str] = {}
    for line in lines:
        fields = line.rstrip("\n").split("\t")
        if len(fields) < 3:
            continue
        name, version, status = fields[0].strip(), fields[1].strip(), fields[2].strip()
        if name and status.split()[-1:] == ["installed"]:
            installed[name] = version
    return installed
