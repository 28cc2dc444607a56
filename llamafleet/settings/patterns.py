"""What a value must look like before it may reach a device: its shell, a command line, a path.

Each `*_problem` function returns None for a value that is fine, else the end of a sentence
saying what is wrong ("is not ..."), which `llamafleet check` prints after the value. The
settings' declarations (llamafleet.settings.tunables) name the one each key must pass. The patterns are
strict on purpose: these values end up in shell scripts, systemd units and runit run scripts
(templates/), in file names under llamafleet's directories and on compiler and CMake command
lines, and a value that matches them needs no quoting anywhere and cannot leave its directory.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from llamafleet.cpu import x86
from llamafleet.cpu.flags import ARM_MARCH, TUNE_NAME

# Debian/Termux package names: lowercase letters, digits, + - . (policy §5.6.1); upper case is
# accepted for apt's sake, and an `=version` pin.
PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.\-]*(=[A-Za-z0-9:~.+\-]+)?")

_HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
# A file or directory name: no slash, no leading "-" (read as an option) or "." ("..").
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}")
# One directory of a path: a leading dot is allowed (~/.local), "." and ".." are not.
_PATH_PART = re.compile(r"[A-Za-z0-9._+-]+")
# Tags, branches and commits as llama.cpp names them (b6500, master, a 40-digit commit).
_GIT_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]{0,254}")
# The characters of a URL (RFC 3986) less those a shell treats specially even inside double
# quotes (' $ `) and the ones a URL never needs (spaces, quotes, backslash, < > { } | ^).
_URL_CHARS = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!&()*+,;=%-]+")
# -DNAME=VALUE, -DNAME:TYPE=VALUE, -UNAME; the value holds what compiler flags and CMake lists
# need (spaces, = , ; : / + % @ ~ ^) and nothing a shell would expand.
_CMAKE_ARG = re.compile(r"-D[A-Za-z_][A-Za-z0-9_]*(:[A-Z]+)?=[A-Za-z0-9 _.,:;=+/@%~^-]*|-U[A-Za-z_][A-Za-z0-9_]*")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# A Linux user or group name every tool agrees on: shadow's useradd (NAME_REGEX's default),
# Debian's adduser and systemd's User= in strict mode (which takes at most 31 characters), in
# lower case, starting with a letter or _ (a name of digits alone would read as a uid).
_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,30}")


def is_ip_or_hostname(value: str) -> bool:
    """An IPv4/IPv6 address (IPv6 optionally in brackets, both of them) or an RFC 1123 host name."""
    bracketed = value.startswith("[") and value.endswith("]")
    try:
        ipaddress.ip_address(value[1:-1] if bracketed else value)
        return True
    except ValueError:
        pass
    if not value or len(value) > 253 or value.replace(".", "").isdigit():
        return False
    return all(_HOSTNAME_LABEL.fullmatch(label) for label in value.rstrip(".").split("."))


def address_problem(value: str) -> str | None:
    if not is_ip_or_hostname(value):
        return "is not an IP address or host name"
    return None


def network_problem(value: str) -> str | None:
    """An address or a CIDR (a firewall rule's source)."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return "is not an address or CIDR"
    return None


def home_path_problem(value: str) -> str | None:
    return device_path_problem(value, home_allowed=True)


def absolute_path_problem(value: str) -> str | None:
    return device_path_problem(value, home_allowed=False)


def file_name_problem(value: str) -> str | None:
    if not _NAME.fullmatch(value):
        return ("is not a plain file name (letters, digits and . _ + -, not starting with . or -, "
                "no /): it must stay inside its directory")
    return None


def device_path_problem(value: str, home_allowed: bool) -> str | None:
    """An absolute path on a device (or `~`, `~/...` when home_allowed) with plain names only."""
    rest = value[1:] if home_allowed and (value == "~" or value.startswith("~/")) else value
    wanted = "an absolute path (or ~/...)" if home_allowed else "an absolute path"
    if value == "~":
        return None
    if not rest.startswith("/"):
        return f"is not {wanted}"
    if not rest.strip("/"):
        return "is the root directory"
    parts = rest.strip("/").split("/")
    if any(part in (".", "..") for part in parts):
        return "climbs with . or ..: write the directory itself"
    if not all(_PATH_PART.fullmatch(part) for part in parts):
        return "may hold only letters, digits and . _ + - between single slashes"
    return None


def git_ref_problem(value: str) -> str | None:
    if (not _GIT_REF.fullmatch(value) or ".." in value or "//" in value or "/." in value
            or value.endswith(("/", ".", ".lock"))):
        return "is not a git tag, branch or commit (letters, digits and . _ / + -, as git names refs)"
    return None


def http_url_problem(value: str) -> str | None:
    if not _URL_CHARS.fullmatch(value):
        return "holds characters a URL does not need (spaces, quotes, $, `, \\)"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        return "is not an http:// or https:// URL"
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError:
        return "has a port that is not a number in 1..65535"
    if not parts.hostname or not is_ip_or_hostname(parts.hostname):
        return "names no valid host"
    return None


def cpu_arch_problem(value: str) -> str | None:
    if value == "native" or value in x86.LEVELS or ARM_MARCH.fullmatch(value):
        return None
    return (f"is not an ARM -march value (e.g. 'armv8.2-a+dotprod+fp16'), an x86-64 level "
            f"({', '.join(x86.LEVELS)}) or 'native'")


def cpu_tune_problem(value: str) -> str | None:
    if value == "" or TUNE_NAME.fullmatch(value):
        return None
    return "is not a core name such as 'cortex-a76' (or '' for no tuning)"


def compiler_problem(value: str) -> str | None:
    if "/" in value:
        problem = device_path_problem(value, home_allowed=False)
        return f"{problem} (a compiler given by path)" if problem else None
    if not _NAME.fullmatch(value):
        return "is not a compiler name such as 'clang' or 'gcc-12', nor an absolute path"
    return None


def package_problem(value: str) -> str | None:
    if not PACKAGE_NAME.fullmatch(value):
        return "is not a package name (letters, digits and + . -, optionally =VERSION)"
    return None


def cmake_arg_problem(value: str) -> str | None:
    if not _CMAKE_ARG.fullmatch(value):
        return ("is not -DNAME=VALUE, -DNAME:TYPE=VALUE or -UNAME with a VALUE of letters, digits, "
                "spaces and _ . , : ; = + / @ % ~ ^ -")
    return None


def user_name_problem(value: str) -> str | None:
    if not _USER_NAME.fullmatch(value):
        return ("is not a Linux user name (lower-case letters, digits, _ and -, starting with a letter "
                "or _, at most 31 characters)")
    return None


def sha256_problem(value: str) -> str | None:
    if not _SHA256.fullmatch(value):
        return "is not a sha256 (64 hex digits)"
    if len(set(value.lower())) == 1:
        # What a copied example or template leaves behind ("0" * 64); no real file hashes to it.
        return ("is a placeholder (one hex digit repeated), not the model's sha256: put the "
                "file's real one here (`sha256sum FILE`, or the model's download page)")
    return None
