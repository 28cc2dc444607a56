"""`/proc/meminfo` → {"total_mb", "available_mb"} (pure function)."""

from __future__ import annotations


def parse_meminfo(text: str) -> dict:
    """Total and available memory in MB (1 MB = 1024 kB, as the kernel's kB are KiB).

    Kernels before 3.14 have no MemAvailable; then free + buffers + page cache stands in for
    it (what `free` did before). Missing values are None, never a guess of 0."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        fields = rest.split()
        if sep and fields and fields[0].isdigit():
            values[key.strip()] = int(fields[0])

    def mb(kb: int | None) -> int | None:
        return kb // 1024 if kb is not None else None

    available = values.get("MemAvailable")
    if available is None and "MemFree" in values:
        available = values["MemFree"] + values.get("Buffers", 0) + values.get("Cached", 0)
    return {"total_mb": mb(values.get("MemTotal")), "available_mb": mb(available)}
