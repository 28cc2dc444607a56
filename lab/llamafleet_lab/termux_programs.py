"""Which programs each lab Termux package puts into $PREFIX/bin (and a few other $PREFIX paths).

Stands for: the file lists of Termux's packages (termux-packages `packages/*/build.sh`; on a phone
`dpkg -L PACKAGE`). A Termux session's PATH is $PREFIX/bin alone, so a program exists on a phone
only once the package that ships it is installed. The lab's programs really are the machine's:
a lab package's files are links to the machine's binaries of the Debian package(s) named here
(found with `dpkg-query -L` when `lab up` writes the index), plus lab stand-ins from
lab/llamafleet_lab/bin for Termux's own scripts. `pkg install` creates them and `pkg uninstall`
removes them, so `command -v ss` finds nothing until `pkg install iproute2`.

A package not listed here (or whose Debian twin the machine lacks) installs no programs; its
name is still recorded in the phone's dpkg database.
"""

from __future__ import annotations

import os
import subprocess
from typing import NamedTuple

# Where a package's lab stand-ins come from on the phone: copied there by `lab up`, as apt's
# cache holds downloaded packages. `pkg` copies from here into $PREFIX.
LAB_PAYLOAD = "var/cache/apt/lab-payload"


class PackageFiles(NamedTuple):
    debian: tuple[str, ...] = ()  # Debian packages whose bin/sbin programs it links
    extra: tuple[tuple[str, str], ...] = ()  # (path below $PREFIX, machine path or "lab:NAME")


def _f(*debian: str) -> PackageFiles:
    return PackageFiles(tuple(debian))


def _x(debian: tuple[str, ...], *extra: tuple[str, str]) -> PackageFiles:
    return PackageFiles(debian, tuple(extra))


PACKAGE_FILES: dict[str, PackageFiles] = {
    # --- bootstrap -------------------------------------------------------------------------------
    "apt": _x((), ("bin/apt", "lab:pkg")),
    "bash": _f("bash"),
    # Termux's sh is dash (dash's build.sh links $PREFIX/bin/sh to it).
    "dash": _x(("dash",), ("bin/sh", "/usr/bin/dash")),
    "bzip2": _f("bzip2"),
    "coreutils": _f("coreutils"),
    "curl": _f("curl"),
    "debianutils": _f("debianutils"),
    "diffutils": _f("diffutils"),
    # Termux's dpkg ships start-stop-daemon, which termux-services' service-daemon runs.
    "dpkg": _x((), ("bin/dpkg", "lab:dpkg"), ("bin/dpkg-query", "lab:dpkg-query"),
               ("bin/start-stop-daemon", "/sbin/start-stop-daemon")),
    "ed": _f("ed"),
    "findutils": _f("findutils"),
    # gawk in Termux; the machine's awk is Debian's default (mawk or gawk).
    "gawk": _x(("gawk",), ("bin/awk", "/usr/bin/awk")),
    "grep": _f("grep"),
    "gzip": _f("gzip"),
    "less": _f("less"),
    # Termux's hostname comes with inetutils (with ftp, telnet, ...); Debian ships it alone.
    "inetutils": _f("hostname"),
    "net-tools": _f("net-tools"),
    "patch": _f("patch"),
    "procps": _f("procps"),
    "psmisc": _f("psmisc"),
    "sed": _f("sed"),
    "tar": _f("tar"),
    "termux-tools": _x((), ("bin/pkg", "lab:pkg"), ("bin/termux-wake-lock", "lab:termux-wake-lock"),
                       ("bin/termux-wake-unlock", "lab:termux-wake-unlock")),
    "unzip": _f("unzip"),
    "util-linux": _f("util-linux", "bsdutils"),
    "xz-utils": _f("xz-utils"),
    "zstd": _f("zstd"),
    # Termux's sshd reads $PREFIX/etc/ssh/sshd_config; the stand-in passes it to the machine's.
    "openssh": _x(("openssh-client",), ("bin/sshd", "lab:sshd")),
    # --- services ----------------------------------------------------------------------------------
    # Termux's sv defaults to $PREFIX/var/service: the stand-in sets that default.
    "runit": _x(("runit",), ("bin/sv", "lab:sv")),
    "termux-services": _x(
        (),
        ("bin/service-daemon", "lab:service-daemon"),
        ("bin/sv-enable", "lab:sv-enable"),
        ("bin/sv-disable", "lab:sv-disable"),
        ("etc/profile.d/start-services.sh", "lab:start-services.sh"),
        ("share/termux-services/svlogger", "lab:svlogger"),
    ),
    # --- toolchain -----------------------------------------------------------------------------
    # Termux's clang links cc and c++ to itself; its linker and archiver come with it (lld and
    # LLVM's binutils in Termux, the machine's binutils here).
    # On an ARM lab phone they build for it (the stand-in adds --target; see bin/clang).
    "clang": _x(("clang", "clang-14"), *[(f"bin/{name}", "lab:clang") for name in ("clang", "clang++", "cc", "c++")]),
    "lld": _x((), ("bin/ld", "/usr/bin/ld"), ("bin/ld.lld", "/usr/bin/ld")),
    "libllvm": _x((), *[(f"bin/{tool}", f"/usr/bin/{tool}") for tool in ("ar", "ranlib", "nm", "strip", "objcopy", "objdump", "as")]),
    "cmake": _f("cmake"),
    "make": _f("make"),
    "ninja": _f("ninja-build"),
    "ccache": _f("ccache"),
    "git": _f("git"),
    "pkg-config": _f("pkgconf-bin", "pkgconf"),
    "binutils": _f("binutils", "binutils-x86-64-linux-gnu"),
    # --- languages and tools ---------------------------------------------------------------------
    "python": _x(("python3", "python3-minimal"), ("bin/python", "/usr/bin/python3")),
    "iproute2": _f("iproute2"),
    "rsync": _f("rsync"),
    "netcat-openbsd": _f("netcat-openbsd"),
    "jq": _f("jq"),
    "lsof": _f("lsof"),
    "htop": _f("htop"),
    "tmux": _f("tmux"),
    "file": _f("file"),
    "which": _x((), ("bin/which", "/usr/bin/which")),
}

_PROGRAM_DIRS = ("/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/")


def _debian_programs(package: str) -> list[str]:
    """Programs (bin and sbin paths) of an installed Debian package; [] when it is not installed."""
    result = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True)
    if result.returncode != 0:
        return []
    return [
        path for path in result.stdout.splitlines()
        if path.startswith(_PROGRAM_DIRS) and path.rstrip("/") != path.rsplit("/", 1)[0]
        and os.path.lexists(path) and not os.path.isdir(path)
    ]


def package_files(name: str) -> list[tuple[str, str]]:
    """(path below $PREFIX, source) for one Termux package, as the index's Lab-Files field."""
    spec = PACKAGE_FILES.get(name)
    if spec is None:
        return []
    files: dict[str, str] = {}
    for debian in spec.debian:
        for path in _debian_programs(debian):
            files.setdefault("bin/" + os.path.basename(path), path)
    for destination, source in spec.extra:
        if source.startswith("lab:") or os.path.lexists(source):
            files[destination] = source
    return sorted(files.items())


def lab_scripts() -> set[str]:
    """Names of the stand-in scripts of lab/llamafleet_lab/bin that some package ships."""
    return {
        source.removeprefix("lab:")
        for spec in PACKAGE_FILES.values()
        for _, source in spec.extra
        if source.startswith("lab:")
    }
