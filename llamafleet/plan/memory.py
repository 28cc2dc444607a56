"""The model's size and how it is split across the workers' RAM.

Memory model (all in MiB, written "MB" as in group_data/all.py):
  usable   = total RAM × rpc_ram_fraction − rpc_overhead_mb   (what a worker may hold in tensors)
  share    = the worker's fraction of the model × model size
  expected = share + rpc_overhead_mb;  headroom = total RAM − expected
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

MIB = 1024 * 1024

# Below this, model_size_mb is taken for a size in GB (or GiB) typed into a MiB key. The
# smallest GGUF language models are tens of MiB (15M parameters at 8.5 bits each, Q8_0, are
# about 15 MiB; the demo's Gemma 3 270M, 253 MB, is 241 MiB), while the models phones and
# small boards run, 1 to 9.99 GB, written in GB are 1 to 9.99.
PLAUSIBLE_MODEL_MB = 10

# Tensor split proportions are rounded to thousandths (what llama-server's -ts needs, no more).
SPLIT_STEPS = 1000

# Approximate bits per weight of common GGUF quantisations, largest first (llama.cpp's
# quantize table). Q4_0_4_4 and friends are gone upstream: never suggest them.
QUANT_BITS = {
    "F16": 16.0,
    "Q8_0": 8.5,
    "Q6_K": 6.56,
    "Q5_K_M": 5.69,
    "Q5_0": 5.5,
    "Q4_K_M": 4.85,
    "Q4_0": 4.5,
    "Q3_K_M": 3.91,
    "Q2_K": 2.96,
}


def model_size_from_data(data: Mapping[str, Any]) -> float | None:
    """Model size in MiB: the size of model_file on the controller, else model_size_mb."""
    model_file = data.get("model_file")
    if model_file and os.path.isfile(os.path.expanduser(model_file)):
        return os.path.getsize(os.path.expanduser(model_file)) / MIB
    size = data.get("model_size_mb")
    return float(size) if size else None


def model_size_problem(size_mb: float) -> str | None:
    """Why a model_size_mb value cannot be a model's size in MiB (None: it can)."""
    if size_mb >= PLAUSIBLE_MODEL_MB:
        return None
    return (f"is implausible for a model: model_size_mb is in MiB: {size_mb:g} GB is about "
            f"{size_mb * 1e9 / MIB:.0f} ({size_mb:g} GiB is {size_mb * 1024:.0f}); values under "
            f"{PLAUSIBLE_MODEL_MB} are refused, GGUF language models are tens of MiB or more")


def format_split(shares: list[float]) -> str:
    """"0.5,0.25,0.25": proportions as llama-server's -ts takes them."""
    return ",".join(f"{share:.3f}".rstrip("0").rstrip(".") or "0" for share in shares)


def split_by_capacity(capacities: list[float]) -> list[float]:
    """Proportions of the model per worker, proportional to capacity, summing exactly to 1.

    Rounded to thousandths with the largest-remainder method, so the printed -ts adds up.
    """
    total = sum(capacities)
    exact = [capacity / total * SPLIT_STEPS for capacity in capacities]
    steps = [int(value) for value in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - steps[i], reverse=True)
    for i in by_remainder[: SPLIT_STEPS - sum(steps)]:
        steps[i] += 1
    return [step / SPLIT_STEPS for step in steps]


def quantisation_hint(model_size_mb: float, capacity_mb: float, model_name: str = "") -> str:
    """Suggest a smaller quantisation that fits capacity_mb, from the model's name when it
    carries a quantisation tag (e.g. "...-Q8_0.gguf"), else as a size to aim for."""
    target = max(capacity_mb, 0.0)
    def named(tag: str) -> bool:
        return re.search(rf"(?<![A-Za-z0-9]){tag}(?![A-Za-z0-9])", model_name, re.I) is not None

    current = next((tag for tag in QUANT_BITS if named(tag)), None)
    if current:
        for tag, bits in QUANT_BITS.items():
            estimate = model_size_mb * bits / QUANT_BITS[current]
            if bits < QUANT_BITS[current] and estimate <= target:
                return (
                    f"use a smaller quantisation: {tag} of this model is about {estimate:.0f} MB "
                    f"(now {current}, {model_size_mb:.0f} MB; the workers can hold {target:.0f} MB)"
                )
    return (
        f"use a model or quantisation of at most {target:.0f} MB (now {model_size_mb:.0f} MB; "
        f"e.g. Q4_K_M is about {QUANT_BITS['Q4_K_M'] / QUANT_BITS['Q8_0']:.0%} of Q8_0), "
        "or add devices"
    )
