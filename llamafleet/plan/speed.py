"""Splitting the model by measured speed: the least time per token within each device's RAM.

With llama.cpp's layer split a token visits every device in turn, so the time of one token is
the sum over the devices of what each one computes: with `ms_per_mb`, the milliseconds one
token costs per MiB of the model a device holds (measured by `llamafleet plan --measure`,
through the worker's link, so a slow link makes a slower device), the time is
Σ ms_per_mb × MiB held. That sum is least when the fastest device holds all it may (its usable
RAM), then the next fastest, and so on: a device whose turn never comes holds nothing, and is
left out of llama-server's --rpc, where it would only add a round trip per token.

`-ts` proportions are taken for proportions of the model's MiB, as the RAM split takes them:
llama.cpp splits by layers (and puts the output layer on the last device), so a device holds
its share to within a layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

# The fact (and key of HostInput.facts) holding a device's measured speed (llamafleet.facts.speed).
SPEED_FACT = "SpeedRecord"

# Below this link speed a worker gets rpc-server's tensor cache (-c) unless rpc_cache says
# otherwise: at 100 Mbit/s a 4 GB share takes over 5 minutes to send, from the cache seconds.
CACHE_BELOW_MBIT = 100.0


@dataclass(frozen=True)
class Speed:
    """A device's measured speed as the plan uses it: `ms_per_mb`, and whose record it is (the
    device's own, or that of a measured device of the same class)."""

    ms_per_mb: float
    measured_on: str
    measured_at: str = ""
    link_mbit: float | None = None


def usable_record(record: Mapping | None, role: str, model_sha256: str | None) -> bool:
    """A record the plan may use for a device of `role` serving the model of `model_sha256`:
    a worker's figure carries its link's round trips and the master's none, so a record counts
    for its own role only; and a record of another model (its n_layer sets -ngl) not at all."""
    if not record or record.get("role", role) != role:
        return False
    measured = str(record.get("model_sha256") or "").lower()
    return not (model_sha256 and measured and measured != "unknown" and measured != model_sha256.lower())


def speed_of(name: str, role: str, facts: Mapping[str, Mapping], device_class: str,
             records: Mapping[str, Mapping | None], model_sha256: str | None) -> Speed | None:
    """The speed of host `name` as `role`: its own record, else the first record (in `records`'
    order) of a device of the same class and role, else None. `records` is every host's
    record by name; records of another model or role are not used (usable_record)."""
    own = (facts or {}).get(SPEED_FACT)
    if usable_record(own, role, model_sha256):
        return Speed(float(own["ms_per_mb"]), name, str(own.get("measured_at", "")), own.get("link_mbit"))
    for other, record in records.items():
        if (other != name and device_class and usable_record(record, role, model_sha256)
                and record.get("device_class") == device_class):
            # A twin's compute speed; its link is its own, not this device's.
            return Speed(float(record["ms_per_mb"]), other, str(record.get("measured_at", "")))
    return None


def fastest_first(ms_per_mb: Sequence[float], caps_mb: Sequence[float], model_mb: float) -> list[float] | None:
    """MiB of the model each device holds for the least time per token (in the order given),
    or None when the devices together cannot hold it. Ties keep the order given."""
    held = [0.0] * len(ms_per_mb)
    left = model_mb
    for i in sorted(range(len(ms_per_mb)), key=lambda i: ms_per_mb[i]):
        take = min(max(caps_mb[i], 0.0), left)
        held[i] = take
        left -= take
    return held if left <= model_mb * 1e-9 else None


def predicted_ms(ms_per_mb: Sequence[float], held_mb: Sequence[float]) -> float:
    """Milliseconds per token of a split: the sum over the devices of speed × MiB held."""
    return sum(speed * held for speed, held in zip(ms_per_mb, held_mb))


def idle_reason(name: str, speed: float, others: Sequence[tuple[str, float, float]], master: str = "") -> str:
    """Why a measured device holds nothing: the faster devices that hold the model between them
    (`others`: name, ms_per_mb, MiB held)."""
    holding = [(other, ms) for other, ms, held in others if held > 0]
    holders = ", ".join(f"{other} {ms:.3g}" for other, ms in holding)
    # The master is never away: when it holds everything, a worker serves only after a new plan.
    when = ("it serves when one of them is away" if any(other != master for other, _ in holding)
            else "the master's CPU alone is faster; master_computes = False would use the workers")
    return (f"{name} holds nothing: {speed:.3g} ms/token per MiB, slower than the devices that "
            f"hold the whole model ({holders}); {when}")


def master_layers(master_share: float, n_layer: int) -> int:
    """llama-server's -ngl when the master's own CPU holds at most `master_share` of the model: llama.cpp
    offloads the last -ngl of its n_layer + 1 layers (the output layer counts as one) and
    computes the first ones on the CPU."""
    layers = n_layer + 1
    # Rounded down: never more on the master than its share (its RAM limit).
    on_master = min(layers, max(0, int(master_share * layers + 1e-9)))
    return layers - on_master
