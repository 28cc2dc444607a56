"""llamafleet's base directory (`llamafleet_dir`), marked as made by it, and removed only then.

`llamafleet_dir` may name any directory, one of the user's among them (`~`, `/srv`). So the
deploy writes a marker (`<base>/.llamafleet`, templates/llamafleet/marker.j2) into the base
directory when, and only when, it makes that directory: the marker proves llamafleet made it.
A base that was there before the first deploy, or that an earlier llamafleet made before the
marker existed, stays unmarked, and `llamafleet remove` refuses to delete it, naming the host
and the path: what else it holds is not llamafleet's to judge. A marked base is deleted whole.
"""

from __future__ import annotations

import posixpath
import shlex

from pyinfra import host, logger
from pyinfra.api import FactBase, QuoteString, StringCommand, operation

from llamafleet.layout import BASE_MARKER
from llamafleet.templates import render

MARKER_TEMPLATE = "llamafleet/marker.j2"
# The marker's first line says this; a file of that name without it is not llamafleet's marker.
MARKER_HEADER = "# Managed by llamafleet"


class BaseDirectory(FactBase):
    """
    What is at the base directory's path, and whether it holds llamafleet's marker (a regular
    file starting with its header): kind is "absent", "directory", "link" (a symbolic link,
    whatever it points to) or "other".

    .. code:: python

        {"kind": "directory", "marked": True}
    """

    def command(self, path: str) -> str:
        base, marker = shlex.quote(path), shlex.quote(posixpath.join(path, BASE_MARKER))
        return (
            f"if [ -L {base} ]; then echo link; elif [ -d {base} ]; then echo directory; "
            f"[ -f {marker} ] && [ ! -L {marker} ] && head -n 1 {marker} | grep -q {shlex.quote('^' + MARKER_HEADER)} "
            f"&& echo marked; elif [ -e {base} ]; then echo other; else echo absent; fi; true"
        )

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        kind = lines[0] if lines and lines[0] in ("absent", "directory", "link", "other") else "absent"
        return {"kind": kind, "marked": kind == "directory" and "marked" in lines}


def marker_text(base: str) -> str:
    return render(MARKER_TEMPLATE, base=base)


@operation()
def base_marked(base: str):
    """
    Make the base directory with llamafleet's marker in it when it does not exist yet; a
    directory that exists is left as it is, marked or not (only one this deploy made is
    provably llamafleet's).

    + base: the base directory (absolute)

    **Example:**

    .. code:: python

        base_marked(name="llamafleet's directory", base="/opt/llamafleet")
    """
    found = host.get_fact(BaseDirectory, path=base)
    if found["kind"] == "absent":
        marker = posixpath.join(base, BASE_MARKER)
        yield StringCommand("mkdir", "-p", QuoteString(base))
        yield StringCommand("printf", "%s", QuoteString(marker_text(base)), ">", QuoteString(marker))
    elif found["marked"]:
        host.noop(f"{base} is llamafleet's (marked)")
    else:
        # Not an error: the deploy works in it as before; only `llamafleet remove` keeps it.
        host.noop(f"{base} was there before llamafleet made it (no {BASE_MARKER} marker): "
                  "`llamafleet remove` will leave it in place")


def refusal(host_name: str, base: str, kind: str) -> str:
    """Why `llamafleet remove` keeps this base, naming host and path, with what to do."""
    what = {"link": "is a symbolic link", "other": "is not a directory", "root": "is the root directory"}.get(
        kind, f"has no {BASE_MARKER} marker, so llamafleet did not make it (or an older llamafleet did)")
    return (f"{host_name}: llamafleet_dir: {base} {what}: not deleted. Everything else llamafleet "
            f"put on the host is removed; look at what {base} holds and delete it yourself")


@operation()
def base_removed(base: str):
    """
    Delete the base directory whole when llamafleet's marker says llamafleet made it; refuse
    (this operation fails on the host, naming it and the path) when it is there unmarked.

    + base: the base directory (absolute)

    **Example:**

    .. code:: python

        base_removed(name="llamafleet's directory", base="/opt/llamafleet")
    """
    found = host.get_fact(BaseDirectory, path=base)
    if found["kind"] == "absent":
        host.noop(f"{base} is not there")
        return
    if found["marked"] and posixpath.normpath(base) != "/":
        yield StringCommand("rm", "-rf", QuoteString(base))
        return
    message = refusal(host.name, base, "root" if found["marked"] else found["kind"])
    # Said now too, so that `--dry` shows it before anything runs.
    logger.warning(message)
    # The host fails here, after every other removal: the run ends in an error that says why.
    yield StringCommand("echo", QuoteString(message), ">&2", "&&", "false")
