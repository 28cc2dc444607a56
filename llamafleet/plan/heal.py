"""What the master serves with when workers are missing: one row per group of workers that can
still hold the model, planned here with the full cluster so the master never has to plan again.

llama-server gives up on a worker it cannot reach (GGML_ABORT) and never reconnects one it
lost (llama.cpp PR #26724 is still open), so the master's launcher (templates/llamafleet/
libexec/llama-server-launch.bash.j2) starts it with the first row whose workers all answer,
and restarts it when a serving worker is lost or a missing one answers again. The rows are
computed from the same capacities (or hand split) as the full plan, so a degraded split keeps
every device within its RAM limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Callable, Sequence

from llamafleet.plan.memory import SPLIT_STEPS, format_split, split_by_capacity

# With up to this many workers every smaller group is planned (2^8 - 2 = 254 rows at most);
# with more, only the groups missing one or two workers (a phone or two away is what happens).
ALL_GROUPS_UP_TO = 8


@dataclass(frozen=True)
class ServingRow:
    """One group of workers the master can serve with: their names (in --rpc order), the
    --rpc endpoints and the -ts proportions llama-server gets for them. `group` is the workers
    it was planned for (those present); with the speed split some of them may hold nothing
    and are not in `workers`. Empty `workers`: the master alone holds the model."""

    workers: tuple[str, ...]
    rpc: str
    tensor_split: str
    group: tuple[str, ...] = ()


# Plans one group of workers (indices): (MiB or proportions per member, score) or None when the
# group cannot hold the model; a lower score is a better row.
GroupPlanner = Callable[[Sequence[int]], "tuple[list[float], tuple] | None"]


def ram_planner(usable_mb: Sequence[float], model_size_mb: float,
                hand_split: Sequence[float] | None = None) -> GroupPlanner:
    """Groups split by usable RAM, or the hand split's proportions of its members rescaled; a
    group where any member's share would exceed its usable RAM (one split step of slack, as the
    full plan allows) is left out. Better: more workers, then more usable RAM."""
    def plan(members: Sequence[int]) -> tuple[list[float], tuple] | None:
        capacities = [usable_mb[i] for i in members]
        if hand_split is not None:
            weights = [hand_split[i] for i in members]
            if sum(weights) <= 0:
                return None
            shares = split_by_capacity(weights)
        else:
            if model_size_mb > sum(capacities):
                return None
            shares = split_by_capacity(capacities)
        slack = model_size_mb / SPLIT_STEPS
        if any(share * model_size_mb > capacity + slack for share, capacity in zip(shares, capacities)):
            return None
        return shares, (-len(members), -sum(capacities))
    return plan


def degraded_rows(names: Sequence[str], endpoints: Sequence[str], plan_group: GroupPlanner) -> list[ServingRow]:
    """Every group of workers smaller than the whole that can hold the model, best first (by
    the planner's score). Members a group's split gives nothing are left out of its row, and a
    row that repeats a better one is dropped."""
    count = len(names)
    sizes = range(count - 1, 0, -1) if count <= ALL_GROUPS_UP_TO else range(count - 1, max(count - 3, 0), -1)
    rows: list[tuple[tuple, ServingRow]] = []
    for size in sizes:
        for members in combinations(range(count), size):
            planned = plan_group(members)
            if planned is None:
                continue
            shares, score = planned
            used = [(i, share) for i, share in zip(members, shares) if share > 0]
            row = ServingRow(tuple(names[i] for i, _ in used), ",".join(endpoints[i] for i, _ in used),
                             format_split(split_by_capacity([share for _, share in used])) if used else "",
                             tuple(names[i] for i in members))
            rows.append((score, row))
    rows.sort(key=lambda entry: entry[0])
    seen: set[tuple[str, ...]] = set()
    best = []
    for _, row in rows:
        if row.workers not in seen:
            seen.add(row.workers)
            best.append(row)
    return best
