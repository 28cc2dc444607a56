"""The CpuRefusals fact: the ISA features a device's CPU refused (llamafleet.cpu.refused)."""

from __future__ import annotations

from llamafleet.facts.record import DeviceRecord


def parse_refusals(lines: list[str]) -> dict[str, dict]:
    """The record's lines (templates/llamafleet/etc/cpu-refused.j2) as feature -> details; `#`
    comments, blank and short lines are skipped. A feature listed twice keeps its first line
    (the first refusal is the one that counts; later lines only repeat it)."""
    refusals: dict[str, dict] = {}
    for line in lines:
        fields = line.split(None, 3)
        if len(fields) < 3 or fields[0].startswith("#") or fields[0] in refusals:
            continue
        refusals[fields[0]] = {"date": fields[1], "reason": fields[2], "flags": fields[3].strip() if len(fields) > 3 else ""}
    return refusals


class CpuRefusals(DeviceRecord):
    """The features recorded as refused by this device's CPU, by name ({} when none):

    .. code:: python

        {"i8mm": {"date": "2026-12-03T10:00:00Z", "reason": "sigill",
                  "flags": "-march=armv8.2-a+dotprod+fp16+i8mm -mtune=cortex-a76"}}

    + path: the record (llamafleet.layout.Paths.cpu_refused)
    """

    def process(self, output: list[str]) -> dict:
        return parse_refusals(list(output))

    @staticmethod
    def default() -> dict:
        # No output (no record) is no refusal, not an unknown: the plan compares it as {}.
        return {}


def read_refusals(host) -> dict:
    """The refusals of `host`, at the path its layout gives."""
    from llamafleet.facts.reading import read_fact
    from llamafleet.layout import device_paths

    return read_fact(host, CpuRefusals, path=device_paths(host).cpu_refused) or {}
