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
from typing import Sequence

from llamafleet.plan.memory import SPLIT_STEPS, format_split, split_by_capacity

# With up to this many workers every smaller group is planned (2^8 - 2 = 254 rows at most);
# with more, only the groups missing one or two workers (a phone or two away is what happens).
ALL_GROUPS_UP_TO = 8


@dataclass(frozen=True)
class ServingRow:
    """One group of workers the master can serve with: their names (in --rpc order), the
    --rpc endpoints and the -ts proportions llama-server gets for them."""

    workers: tuple[str, ...]
    rpc: str
    tensor_split: str


def degraded_rows(
    names: Sequence[str],
    endpoints: Sequence[str],
    usable_mb: Sequence[float],
    model_size_mb: float,
    hand_split: Sequence[float] | None = None,
) -> list[ServingRow]:
    """Every group of workers smaller than the whole that can hold the model, best first:
    more workers first, then more usable RAM. The split of a group is by usable RAM, or the
    hand split's proportions of its members rescaled; a group where any member's share would
    exceed its usable RAM (one split step of slack, as the full plan allows) is left out."""
    count = len(names)
    sizes = range(count - 1, 0, -1) if count <= ALL_GROUPS_UP_TO else range(count - 1, max(count - 3, 0), -1)
    rows: list[tuple[int, float, ServingRow]] = []
    for size in sizes:
        for members in combinations(range(count), size):
            capacities = [usable_mb[i] for i in members]
            if hand_split is not None:
                weights = [hand_split[i] for i in members]
                if sum(weights) <= 0:
                    continue
                shares = split_by_capacity(weights)
            else:
                if model_size_mb > sum(capacities):
                    continue
                shares = split_by_capacity(capacities)
            slack = model_size_mb / SPLIT_STEPS
            if any(share * model_size_mb > capacity + slack for share, capacity in zip(shares, capacities)):
                continue
            row = ServingRow(tuple(names[i] for i in members), ",".join(endpoints[i] for i in members),
                             format_split(shares))
            rows.append((size, sum(capacities), row))
    rows.sort(key=lambda entry: (-entry[0], -entry[1]))
    return [row for _, _, row in rows]
