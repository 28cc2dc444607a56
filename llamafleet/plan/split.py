"""Which split the plan makes: by hand (llama_tensor_split), by measured speed, or by RAM.

`choose_split` decides it once for the plan, with the master's share (its own CPU's layers,
`master_computes`) and the planner of the groups the master serves with when workers are away
(llamafleet.plan.heal), so the full plan and every degraded row follow the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from llamafleet.plan.heal import GroupPlanner, ram_planner
from llamafleet.plan.memory import split_by_capacity
from llamafleet.plan.shapes import PlanError
from llamafleet.plan.speed import Speed, fastest_first, idle_reason, master_layers, predicted_ms

MEASURE = "run `llamafleet plan --measure INVENTORY` on the deployed cluster"


@dataclass
class Member:
    """One device as the split sees it: name, usable MiB for tensors, measured speed (or None)."""

    name: str
    usable_mb: float
    speed: Speed | None


@dataclass
class SplitChoice:
    """What the plan serves with: `worker_shares` (fractions of the whole model, rank order),
    `master_share` of it on the master's CPU, -ngl, how the split was made, the predicted
    time of a token (speed split), why a worker holds nothing, and the degraded rows' planner."""

    basis: str
    worker_shares: list[float]
    planner: GroupPlanner
    master_share: float = 0.0
    gpu_layers: str = "all"
    predicted_ms: float | None = None
    idle: dict[str, str] = field(default_factory=dict)


def _speed_basis(master_name: str, settings, workers: Sequence[Member], hand: bool) -> bool:
    """True when the split is by speed; PlanError when speed is asked for and not measured."""
    if hand:
        return False
    unmeasured = [worker.name for worker in workers if worker.speed is None]
    if settings.llama_split_by == "speed" and unmeasured:
        raise PlanError([f"{master_name}: llama_split_by: \"speed\", but {', '.join(unmeasured)} "
                         "has no measured speed"], MEASURE + ', or set llama_split_by = "auto"')
    return settings.llama_split_by != "ram" and not unmeasured


def choose_split(master: Member, settings, n_layer: int | None, workers: Sequence[Member], model_mb: float,
                 hand_split: list[float] | None, master_cap_mb: float) -> SplitChoice | None:
    """The split, or None for the RAM split (the caller checks RAM as before). `settings` are
    the master's; `master_cap_mb` is what its CPU may hold besides what it already keeps."""
    computes = settings.master_computes
    if computes and (master.speed is None or not n_layer):
        raise PlanError([f"{master.name}: master_computes: the master's speed and the model's layers "
                         "are not measured"], MEASURE + ", or leave master_computes unset")
    if not _speed_basis(master.name, settings, workers, hand_split is not None):
        if computes:
            raise PlanError([f"{master.name}: master_computes: the master computes only with the speed "
                             "split (llama_split_by and llama_tensor_split decide the split)"],
                            'set llama_split_by = "auto" or "speed", or leave master_computes unset')
        return None
    speeds = [worker.speed.ms_per_mb for worker in workers]  # type: ignore[union-attr]
    # llama.cpp places whole layers, and the output layer (for tied embeddings a copy the file
    # does not count) on the last device: a layer of room is kept on every device.
    layer_mb = model_mb / (n_layer + 1) if n_layer else model_mb / 20
    caps = [max(worker.usable_mb - layer_mb, 0.0) for worker in workers]
    master_cap = max(master_cap_mb - layer_mb, 0.0)
    master_share, gpu_layers = 0.0, "all"
    if computes is not False and master.speed is not None and n_layer:
        held = fastest_first([master.speed.ms_per_mb, *speeds], [master_cap, *caps], model_mb)
        if held is not None and held[0] > 0:
            layers = master_layers(held[0] / model_mb, n_layer)
            # Whole layers: one more on the master when the workers cannot take the rest.
            while layers > 0 and fastest_first(speeds, caps, model_mb * layers / (n_layer + 1)) is None:
                layers -= 1
            master_share = 1 - layers / (n_layer + 1)
            if master_share * model_mb > master_cap + layer_mb:
                return None  # the devices cannot hold it by speed: the RAM split says what to do
            gpu_layers = str(layers) if master_share > 0 else "all"
    offloaded = model_mb * (1 - master_share)
    held = fastest_first(speeds, caps, offloaded) if offloaded > 0 else [0.0] * len(workers)
    if held is None:
        return None  # cannot hold it: the RAM split's refusal says so, with its hint
    shares = [mb / model_mb for mb in held]
    total_ms = predicted_ms(speeds, held) + (master.speed.ms_per_mb * model_mb * master_share if master_share else 0)
    idle = {}
    for worker, mb in zip(workers, held):
        if mb <= 0:
            others = [(other.name, speed, other_mb) for other, speed, other_mb in zip(workers, speeds, held)]
            if master_share:
                others.insert(0, (master.name, master.speed.ms_per_mb, model_mb * master_share))
            idle[worker.name] = idle_reason(worker.name, worker.speed.ms_per_mb, others,  # type: ignore[union-attr]
                                            master.name)

    def plan_group(members: Sequence[int]) -> tuple[list[float], tuple] | None:
        group = fastest_first([speeds[i] for i in members], [caps[i] for i in members], offloaded)
        if group is None:
            return None
        return group, (predicted_ms([speeds[i] for i in members], group),)

    return SplitChoice("speed", shares, plan_group if offloaded > 0 else (lambda members: None),
                       master_share, gpu_layers, round(total_ms, 1), idle)


def ram_choice(usable_mb: Sequence[float], model_mb: float, hand_split: list[float] | None) -> SplitChoice:
    """The RAM split (or the hand split as given), as a SplitChoice."""
    shares = hand_split if hand_split is not None else split_by_capacity(list(usable_mb))
    return SplitChoice("hand" if hand_split is not None else "ram", list(shares),
                       ram_planner(usable_mb, model_mb, hand_split))
