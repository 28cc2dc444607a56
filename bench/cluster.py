"""P1, P4 and inference on one lab and one cold deploy (the runs that need a deployed cluster).

One 2-phone, 2-Linux lab: a cold deploy (P4 counts the bytes sent to each host), `--runs` no-op
re-runs (P1; P4 counts the bytes of the first), inference (tunnel vs direct, -c cache), then the
seeds' clean rebuild on every device at once (P1). Writes p1_noop_rerun.json,
p4_model_bytes.json and inference.json, as the separate scripts do.

    python bench/cluster.py [--runs 3] [--seed-runs 1] [--completions 5]
"""

from __future__ import annotations

import argparse

import inference
from common import deploy, deploy_dir, lab, lab_down, report, require_root
from p1_noop_rerun import noop_reruns, report_rerun, seeds_rerun
from p4_model_bytes import model_size, report_bytes, tx_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed-runs", type=int, default=1)
    parser.add_argument("--completions", type=int, default=5)
    args = parser.parse_args()
    require_root()
    size = model_size()
    state = lab()
    try:
        workdir = deploy_dir("cluster")
        before = tx_bytes(state)
        _, cold = deploy(workdir)
        middle = tx_bytes(state)
        after = {}
        noop = noop_reruns(workdir, args.runs, after_first=lambda: after.update(tx_bytes(state)))
        inference_rows, inference_data = inference.measure(workdir, args.completions)
        seeds = [seeds_rerun(state) for _ in range(args.seed_runs)]
    finally:
        lab_down()
    report_bytes(size, before, middle, after)
    report_rerun(cold, noop, seeds)
    report("inference", inference_rows, inference_data)


if __name__ == "__main__":
    main()
