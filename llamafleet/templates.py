"""llamafleet's Jinja2 templates: every file a host gets, and every script it runs, is in templates/.

Whole files (run scripts, units, the boot script, the sysctl drop-in, the known hosts of the
tunnels) are written by pyinfra's `files.template` from `template_path(...)`. Fragments (the
firewall rules files, the lines a service runs before it starts, the source
scripts, the build script) are rendered here, with the same Jinja2 environment as
`files.template` (pyinfra's `get_template`: an undefined name is an error, the trailing newline
is kept), and then written or run by an operation, or passed into a whole-file template.

A user reads or overrides what a host gets by editing the template; templates rendered here may
include one another by their path under templates/, and may call `quote` (POSIX shell quoting).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from jinja2 import FileSystemLoader
from pyinfra.api.util import get_template

# In the package (a wheel carries them); the checkout's templates/ is a link to this folder, so
# the deploy directory shows them where pyinfra deploys keep theirs.
TEMPLATES = Path(__file__).resolve().parent / "host_templates"


def template_path(relative: str) -> str:
    """The absolute path of templates/<relative>, for files.template's `src`."""
    return str(TEMPLATES / relative)


def render(relative: str, **context) -> str:
    """The text of templates/<relative> rendered with `context` (and `quote`)."""
    # A new dict every time: get_template pops the loader out of it.
    template = get_template(template_path(relative), {"loader": FileSystemLoader(str(TEMPLATES))})
    return template.render({"quote": shlex.quote, **context})


def render_lines(relative: str, **context) -> list[str]:
    """A fragment whose every non-blank line is one shell command (a service's prestart lines:
    the run script runs them in turn, a systemd unit has one ExecStartPre= each)."""
    return [line for line in render(relative, **context).splitlines() if line.strip()]


def render_one_line(relative: str, **context) -> str:
    """A fragment written over several lines for the reader and used as one shell line (inside
    `bash -c '...'` of a systemd unit, say): its non-blank lines, stripped, joined by spaces.
    So each of its lines ends where a space may follow: after `;`, `&&`, `||`, `do`, `then`."""
    return " ".join(line.strip() for line in render(relative, **context).splitlines() if line.strip())
