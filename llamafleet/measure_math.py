"""What one measurement run printed, and the speeds derived from it (llamafleet.measure).

A run is llama-server on the master with the last `-ngl` layers on one worker (or none) and
the rest on the master's CPU. With the master's own speed known from a run with -ngl 0
(`ms_per_mb` = its time per token / the model's MiB), a worker holding B MiB in that run costs
(time per token − master's speed × (model − B)) / B per MiB: round trips over its link are in
that figure, as they are in every token it will serve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Mbit/s (10^6 bits) to MiB/s.
MIB_PER_MBIT = 1e6 / 8 / (1024 * 1024)

_BUFFER = re.compile(r"(\S+) model buffer size =\s*([\d.]+) MiB")
# -ngl counts n_layer_all + 1 layers; llama.cpp prints n_layer_all where a model has layers
# beyond n_layer (next-token prediction ones), else n_layer alone.
_LAYERS = re.compile(r"n_layer(?:_all)?\s+=\s*(\d+)")
_RUN = re.compile(r'^run\d+ "predicted_n": *(\d+) "predicted_ms": *([\d.e+-]+)', re.M)


class MeasureError(Exception):
    """A measurement that did not give a figure: what the host printed."""


@dataclass(frozen=True)
class RunResult:
    """One run: ms per generated token (the faster of its completions), MiB held by the RPC
    devices and by the CPU, load time, and the model's layer count."""

    ms_per_token: float
    rpc_mb: float
    cpu_mb: float
    load_ms: int
    n_layer: int | None


def parse_run(output: str) -> RunResult:
    """The script's output (templates/llamafleet/libexec/measure.bash.j2), or MeasureError."""
    error = re.search(r"^error=(.*)$", output, re.M)
    if error:
        raise MeasureError(error.group(1).strip())
    runs = [float(ms) / int(n) for n, ms in _RUN.findall(output) if int(n) > 0]
    if not runs:
        raise MeasureError(f"no completion timings in: {' '.join(output.split())[:300]}")
    rpc = sum(float(size) for name, size in _BUFFER.findall(output) if name.startswith("RPC"))
    cpu = sum(float(size) for name, size in _BUFFER.findall(output) if not name.startswith("RPC"))
    load = re.search(r"^load_ms=(\d+)$", output, re.M)
    layers = [int(count) for count in _LAYERS.findall(output)]
    return RunResult(min(runs), rpc, cpu, int(load.group(1)) if load else 0, max(layers) if layers else None)


def layers_to_measure(n_layer: int, model_mb: float, usable_mb: float, link_mbit: float,
                      load_seconds: float) -> int:
    """How many of the model's n_layer + 1 layers (the output layer counts) a worker gets
    while measured: as many as its usable RAM holds and its link sends in `load_seconds`,
    at least one. Layers are taken as equal slices of the model (the output layer is often
    larger: then the load takes longer than planned, not more RAM than usable)."""
    layer_mb = model_mb / (n_layer + 1)
    budget = min(usable_mb, link_mbit * MIB_PER_MBIT * load_seconds)
    return max(1, min(n_layer + 1, int(budget // layer_mb)))


def worker_ms_per_mb(run: RunResult, master_ms_per_mb: float, model_mb: float) -> float:
    """A worker's ms per token per MiB from a run where it held run.rpc_mb (see the module).
    Never below a hundredth of the master's: timing noise must not make a device free."""
    if run.rpc_mb <= 0:
        raise MeasureError("the worker held no tensors (no RPC buffer in llama-server's log)")
    rest = master_ms_per_mb * max(model_mb - run.rpc_mb, 0.0)
    return max((run.ms_per_token - rest) / run.rpc_mb, master_ms_per_mb / 100)
