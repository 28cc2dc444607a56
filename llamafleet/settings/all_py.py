"""Render group_data/all.py, the documented defaults, from the declarations.

    python -m llamafleet.settings.all_py > group_data/all.py

pyinfra loads that file as every host's defaults and users read it as the reference of every
key; tests/unit/test_settings.py fails when it differs from what this renders.
"""

from __future__ import annotations

import sys
from typing import Any

from llamafleet.settings.tunables import SETTINGS

HEADER = '''"""Every llamafleet tunable, documented once, with its default.

pyinfra loads this file for every host; per-platform files (`termux.py`, `linux.py`) and
per-device-class files override single keys. Dicts and lists are *replaced*, not merged, by a
later group (pyinfra does not deep-merge), so overrides are kept as separate flat keys.
`llamafleet check` treats the names below as the complete set of known keys: a key in
inventory or group data that is neither here nor a pyinfra connector/global key is an error.
`None` means "decided by llamafleet from the device's facts or the plan".

Rendered from the declarations in llamafleet/settings/tunables.py (kind, default, allowed
values and this doc, one place per key): change a key there, then run
`python -m llamafleet.settings.all_py > group_data/all.py`.
"""
'''
RULE_WIDTH = 94  # a section's rule line, as wide as the comments


def literal(value: Any) -> str:
    """A Python literal as group data writes it: double-quoted strings."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    return repr(value)


def render() -> str:
    lines = [HEADER.rstrip("\n")]
    section = None
    for setting in SETTINGS:
        if not setting.in_all_py:
            continue
        if setting.section != section:
            section = setting.section
            title = f"# --- {section} ---"
            lines += ["", title.ljust(RULE_WIDTH, "-")]
        lines.append("")
        lines += [f"# {line}".rstrip() for line in setting.doc.strip().splitlines()]
        lines.append(f"{setting.name} = {literal(setting.default)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
