"""A setting's declaration: its name, kind, default, doc and the values it allows, in one place.

Every rule `llamafleet check` applies to one value alone (its kind, range, choices, pattern)
comes from here, and so does every default: group_data/all.py is rendered from the
declarations (llamafleet.settings.all_py), the typed settings the plan and the tasks read are
filled from them (llamafleet.settings.typed).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from llamafleet.settings.kinds import Kind, Range, is_number

Problem = Callable[[str], "str | None"]


def suggest(word: str, candidates: Iterable[str]) -> str:
    """"; did you mean 'x'?" for the closest candidate, or ""."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class Setting:
    """One data key.

    + name: the key, as written in inventory and group data
    + kind: the type its value takes (None is always accepted: "decided by llamafleet")
    + default: the value a host has unless data sets one (group_data/all.py shows it)
    + doc: what it means, for group_data/all.py (a comment there, one line or a few)
    + choices / range: the values it allows
    + pattern: a rule for a string value (or, for a list, for every item), from
      llamafleet.settings.patterns: returns the end of a sentence, or None when fine
    + owner: "llamafleet" (documented in group_data/all.py) or "pyinfra" (pyinfra's own key,
      which llamafleet checks further or reads: not in all.py)
    + section: the heading it stands under in group_data/all.py (set by `declare`)
    """

    name: str
    kind: Kind
    default: Any = None
    doc: str = ""
    choices: tuple[str, ...] = ()
    range: Range | None = None
    pattern: Problem | None = None
    owner: str = "llamafleet"
    section: str = ""

    @property
    def in_all_py(self) -> bool:
        return self.owner == "llamafleet"

    def kind_problem(self, value: Any) -> str:
        return f"must be {self.kind.name}, not {type(value).__name__} {value!r}"

    def problems(self, value: Any) -> list[str]:
        """What is wrong with a value of this key, each a whole message naming the value ([]:
        nothing). A value of the wrong kind gets that one message and nothing more."""
        if value is None:
            return []
        if not self.kind.accepts(value):
            return [self.kind_problem(value)]
        return self.value_problems(value)

    def value_problems(self, value: Any) -> list[str]:
        """Range, choices and pattern of a value of the right kind."""
        if value is None:
            return []
        found = []
        if self.range and is_number(value) and not self.range.contains(value):
            found.append(f"{value!r} is out of range: must be {self.range.describe()}")
        if self.choices and value not in self.choices:
            found.append(f"{value!r} is not one of {', '.join(self.choices)}{suggest(value, self.choices)}")
        if self.pattern:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and (problem := self.pattern(item)):
                    found.append(f"{item!r} {problem}")
        return found


def declare(*items: str | Setting) -> tuple[Setting, ...]:
    """Settings in the order group_data/all.py shows them; a string starts a new section."""
    section, settings = "", []
    for item in items:
        if isinstance(item, str):
            section = item
        else:
            settings.append(replace(item, section=section))
    names = [setting.name for setting in settings]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"settings declared twice: {', '.join(twice)}")
    return tuple(settings)
