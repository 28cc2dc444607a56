"""The types (kinds) a setting's value may have, and numeric ranges.

A kind names itself in the sentence `llamafleet check` prints ("must be an integer, not str
'22'"); None ("decided by llamafleet") is accepted by every kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Kind:
    """An accepted type of a data value; None ("decided by llamafleet") is always accepted."""

    name: str
    accepts: Callable[[Any], bool]


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


STR = Kind("a string", lambda v: isinstance(v, str))
INT = Kind("an integer", is_int)
NUMBER = Kind("a number", is_number)
BOOL = Kind("True or False", lambda v: isinstance(v, bool))
DICT = Kind("a dict", lambda v: isinstance(v, dict))
LIST_STR = Kind("a list of strings", lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v))
LIST_NUMBER = Kind("a list of numbers", lambda v: isinstance(v, list) and all(is_number(i) for i in v))


@dataclass(frozen=True)
class Range:
    """Bounds of a number; None = unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True

    def contains(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (value == self.low and not self.low_inclusive)):
            return False
        if self.high is not None and (value > self.high or (value == self.high and not self.high_inclusive)):
            return False
        return True

    def describe(self) -> str:
        """"at least 1", "more than 0", "in (0, 0.95]"."""
        if self.high is None:
            return f"{'at least' if self.low_inclusive else 'more than'} {self.low:g}"
        left, right = ("[" if self.low_inclusive else "("), ("]" if self.high_inclusive else ")")
        return f"in {left}{self.low:g}, {self.high:g}{right}"


AT_LEAST_0 = Range(0)
AT_LEAST_1 = Range(1)
MORE_THAN_0 = Range(0, low_inclusive=False)
TCP_PORT = Range(1, 65535)
