"""Facts about llama.cpp sources and builds on a device."""

from __future__ import annotations

import json
import re

from pyinfra.api import FactBase, QuoteString, StringCommand

SOURCE_ID_FILE = ".llamafleet-source"
STAMP_FILE = "build-stamp.json"
SUMS_FILE = "SHA256SUMS"

# Where llama.cpp keeps the RPC server and the HTTP server, newest layout first. The RPC server
# was `rpc-server` under examples/ until it moved to tools/ as `ggml-rpc-server`.
RPC_CMAKELISTS = ("tools/rpc/CMakeLists.txt", "examples/rpc/CMakeLists.txt")
SERVER_CMAKELISTS = ("tools/server/CMakeLists.txt", "examples/server/CMakeLists.txt")

_SECTION = "@@llamafleet "


def _sections(lines: list[str]) -> dict[str, list[str]]:
    """Split fact output on `@@llamafleet <name>` marker lines."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in lines:
        if line.startswith(_SECTION):
            current = line[len(_SECTION):].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return sections


def executable_targets(cmake_text: str) -> list[str]:
    """Names of the executables a CMakeLists.txt adds (`add_executable(${TARGET} ...)` included)."""
    targets = []
    current = None
    for match in re.finditer(
        r"set\s*\(\s*TARGET\s+([A-Za-z0-9_.+-]+)\s*\)|add_executable\s*\(\s*(\$\{TARGET\}|[A-Za-z0-9_.+-]+)",
        cmake_text,
    ):
        if match.group(1):
            current = match.group(1)
        elif match.group(2) == "${TARGET}":
            if current:
                targets.append(current)
        else:
            targets.append(match.group(2))
    return targets


def pick_target(cmake_text: str, wanted: str) -> str | None:
    """The first executable that is not a test and whose name contains `wanted`."""
    for name in executable_targets(cmake_text):
        if not name.startswith("test-") and wanted in name:
            return name
    return None


def _cat_section(root: str, relative_paths: tuple[str, ...], section: str) -> list:
    """Shell pieces printing a marker, then whichever of the files exist (newest layout first)."""
    paths = [QuoteString(f"{root}/{relative}") for relative in relative_paths]
    return ["echo", QuoteString(_SECTION + section), ";", "cat", *paths, "2>/dev/null", ";"]


class LlamaSource(FactBase):
    """
    The llama.cpp tree at `path`: where it came from and what its servers are called.

    Returns None when there is no tree. `identity` is what llamafleet recorded when it unpacked or
    fetched the tree (None for a tree it did not put there); the target names are read from the
    tree's CMakeLists so older refs (`rpc-server`) build too.

    .. code:: python

        {
            "identity": {"kind": "archive", "sha256": "83...", "root": "x/vendor/llama.cpp/"},
            "rpc_target": "ggml-rpc-server",
            "server_target": "llama-server",
        }
    """

    def command(self, path: str) -> StringCommand:
        quoted = QuoteString(path)
        return StringCommand(
            "if", "[", "-d", quoted, "];", "then",
            "echo", QuoteString(_SECTION + "identity"), ";",
            "cat", QuoteString(f"{path}/{SOURCE_ID_FILE}"), "2>/dev/null", ";", "echo", ";",
            *_cat_section(path, RPC_CMAKELISTS, "rpc"),
            *_cat_section(path, SERVER_CMAKELISTS, "server"),
            "true", ";", "fi", "||", "true",
        )

    def process(self, output: list[str]) -> dict | None:
        sections = _sections(output)
        if "identity" not in sections:
            return None
        identity = None
        text = "\n".join(sections["identity"]).strip()
        if text:
            try:
                identity = json.loads(text)
            except ValueError:
                identity = None
        return {
            "identity": identity if isinstance(identity, dict) else None,
            "rpc_target": pick_target("\n".join(sections.get("rpc", [])), "rpc"),
            "server_target": pick_target("\n".join(sections.get("server", [])), "server"),
        }


class InstalledBuild(FactBase):
    """
    The build installed at `bin_dir` (normally `<base>/bin`, a symlink to a release).

    Returns None when there is no stamp. `intact` is True when every file listed in the release's
    SHA256SUMS is present and unchanged: a stamp alone does not prove the binaries are there.

    .. code:: python

        {
            "stamp": {"class_key": "4f0c...", "inputs": {...}, "built_on": "phone1"},
            "release": "/data/.../llamafleet/releases/4f0c...-1700000000",
            "intact": True,
            "files": ["ggml-rpc-server"],
        }
    """

    def command(self, bin_dir: str) -> StringCommand:
        return StringCommand(
            "cd", QuoteString(bin_dir), "2>/dev/null", "&&", "[", "-f", STAMP_FILE, "]", "&&", "{",
            "echo", QuoteString(_SECTION + "release"), ";", "pwd", "-P", ";",
            "echo", QuoteString(_SECTION + "stamp"), ";", "cat", STAMP_FILE, ";", "echo", ";",
            "echo", QuoteString(_SECTION + "check"), ";",
            "if", "sha256sum", "-c", SUMS_FILE, ">/dev/null", "2>&1;", "then", "echo", "ok;",
            "else", "echo", "bad;", "fi;",
            "echo", QuoteString(_SECTION + "files"), ";", "cut", "-c67-", SUMS_FILE, "2>/dev/null;",
            "}", "||", "true",
        )

    def process(self, output: list[str]) -> dict | None:
        sections = _sections(output)
        if "stamp" not in sections:
            return None
        try:
            stamp = json.loads("\n".join(sections["stamp"]))
        except ValueError:
            stamp = None
        release = (sections.get("release") or [""])[0].strip()
        return {
            "stamp": stamp if isinstance(stamp, dict) else None,
            "release": release or None,
            "intact": [line.strip() for line in sections.get("check", [])] == ["ok"],
            "files": [line.strip() for line in sections.get("files", []) if line.strip()],
        }
