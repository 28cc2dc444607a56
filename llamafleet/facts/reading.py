"""Read a fact once per host and deploy when it cannot change while the deploy runs.

pyinfra 3.10 keeps no fact cache: every `host.get_fact` is an SSH round trip, and a deploy asks
for the CPU, platform and memory of each host from the plan, the paths and the build. Facts
whose class says `same_for_a_deploy = True` are remembered per pyinfra State (one deploy, or
one `plan`/`status` run) and host; the others are read every time, as pyinfra does.
"""

from __future__ import annotations

import json
import weakref
from typing import Any

_remembered: "weakref.WeakKeyDictionary[Any, dict[tuple, Any]]" = weakref.WeakKeyDictionary()


def read_fact(host: Any, cls: type, **arguments) -> Any:
    """`host.get_fact(cls, ...)` with the arguments the fact takes from the host's data
    (CpuProfile: `llama_cpu_table`) unless given; once per deploy for unchanging facts.

    Keyed by the State and the host's name, not the host: inside deploy code `host` is pyinfra's
    context proxy, whose hash follows whichever host is current.
    """
    from_data = getattr(cls, "arguments_from_data", None)
    if not arguments and from_data:
        arguments = from_data(host.data)
    if not getattr(cls, "same_for_a_deploy", False):
        return host.get_fact(cls, **arguments)
    per_state = _remembered.setdefault(host.state, {})
    key = (host.name, cls.__module__, cls.__name__, json.dumps(arguments, sort_keys=True, default=str))
    if key not in per_state:
        per_state[key] = host.get_fact(cls, **arguments)
    return per_state[key]
