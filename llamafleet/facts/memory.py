"""The MemInfo fact: /proc/meminfo in MB."""

from __future__ import annotations

from pyinfra.api import FactBase

from llamafleet.cpu.meminfo import parse_meminfo


class MemInfo(FactBase[dict]):
    """Memory of the device in MB (MemAvailable estimated on kernels older than 3.14):

    .. code:: python

        {"total_mb": 7612, "available_mb": 3120}
    """

    # Read once per host and deploy (llamafleet.facts.reading): it cannot change meanwhile.
    same_for_a_deploy = True

    def command(self) -> str:
        return "cat /proc/meminfo 2>/dev/null; true"

    def process(self, output: list[str]) -> dict:
        return parse_meminfo("\n".join(output))
