"""One SSH command per host, many answers: the marked sections `doctor` and `status` read.

A probe prints `MARK name` before each answer; `parse_sections` splits the output back. Paths
given as "~/..." are expanded by the host's shell, not the controller's.
"""

from __future__ import annotations

import shlex


def sh_path(path: str) -> str:
    """A path for a probe's shell: "~/x" becomes "$HOME"/'x' (expanded on the device)."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def parse_sections(output: str, mark: str) -> dict[str, str]:
    """{name: text} of every section that `mark name` opened in `output`."""
    sections: dict[str, str] = {}
    key = None
    for line in output.splitlines():
        if line.startswith(mark):
            key = line[len(mark):].strip()
            sections[key] = ""
        elif key is not None:
            sections[key] += line + "\n"
    return sections
