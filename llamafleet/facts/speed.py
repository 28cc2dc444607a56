"""The SpeedRecord fact: what `llamafleet plan --measure` measured on a device (llamafleet.measure)."""

from __future__ import annotations

import math

from llamafleet.facts.record import DeviceRecord

# The record's lines (templates/llamafleet/etc/speed.j2): `key=value`, `#` comments.
_NUMBERS = ("ms_per_mb", "measured_mb", "link_mbit")
_INTEGERS = ("n_layer", "threads")


def parse_speed_record(lines: list[str]) -> dict | None:
    """The record as the plan reads it, or None when there is none or it holds no speed (a
    record that lost its ms_per_mb, or one with a value that is not a number, plans by RAM)."""
    values: dict = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        value = value.strip()
        try:
            if key in _NUMBERS:
                values[key] = float(value)
            elif key in _INTEGERS:
                values[key] = int(value)
            else:
                values[key] = value
        except ValueError:
            return None
    numbers = [values[key] for key in (*_NUMBERS, *_INTEGERS) if key in values]
    if any(not math.isfinite(number) or number <= 0 for number in numbers):
        return None  # a hand-edited inf, nan, 0 or negative figure: not a measurement
    return values if "ms_per_mb" in values else None


class SpeedRecord(DeviceRecord):
    """The speed measured on a device, or None (never measured, or the record was deleted):

    .. code:: python

        {"role": "worker", "device_class": "x86_64 x86-64-v3 t2", "ms_per_mb": 0.42,
         "measured_mb": 241.3, "link_mbit": 94.1, "threads": 2, "build": "3f2a9c1e7b0d",
         "model_sha256": "…", "measured_at": "2026-12-03T10:00:00Z"}

    + path: the record (llamafleet.layout.Paths.speed_record)
    """

    def process(self, output: list[str]) -> dict | None:
        return parse_speed_record(list(output))


def read_speed_record(host) -> dict | None:
    """The record of `host`, at the path its layout gives."""
    from llamafleet.facts.reading import read_fact
    from llamafleet.layout import device_paths

    return read_fact(host, SpeedRecord, path=device_paths(host).speed_record)
