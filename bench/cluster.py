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
from common import deploy, deploy_dir, lab, lab_down, median, no_changes, report, require_root
from p1_noop_rerun import seeds_rerun
from p4_model_bytes import tx_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed-runs", type=int, default=1)
    parser.add_argument("--completions", type=int, default=5)
    args = parser.parse_args()
    require_root()
    from llamafleet.assets import model_path

    model_size = model_path().stat().st_size
    state = lab()
    try:
        workdir = deploy_dir("cluster")
        before = tx_bytes(state)
        _, cold = deploy(workdir)
        middle = tx_bytes(state)
        noop, after = [], None
        for _ in range(args.runs):
            result, seconds = deploy(workdir)
            if not no_changes(result.stdout + result.stderr):
                raise SystemExit("the re-run changed something: not a no-op\n" + result.stderr[-3000:])
            noop.append(seconds)
            after = after or tx_bytes(state)
        inference_rows, inference_data = inference.measure(workdir, args.completions)
        seeds = [seeds_rerun(state) for _ in range(args.seed_runs)]
    finally:
        lab_down()

    cold_tx = {name: middle[name] - before[name] for name in before}
    second_tx = {name: after[name] - middle[name] for name in before}
    rows = [("model size", f"{model_size / 2**20:.1f} MiB")]
    for name in before:
        rows.append((f"{name}: cold / second deploy", f"{cold_tx[name] / 2**20:8.1f} MiB / {second_tx[name] / 2**10:8.1f} KiB"))
    largest_second = max(second_tx.values())
    rows.append(("model bytes in the second deploy",
                 "0 (every host received < 1 % of the model)" if largest_second < model_size / 100 else f"{largest_second} (!)"))
    report("p4_model_bytes", rows, {"model_bytes": model_size, "cold_tx": cold_tx, "second_tx": second_tx})

    ratio = median(seeds) / median(noop)
    report("p1_noop_rerun", [
        ("cold deploy", f"{cold:.0f} s"),
        (f"llamafleet no-op re-run (median of {len(noop)})", f"{median(noop):.1f} s  {['%.1f' % s for s in noop]}"),
        (f"seeds' rebuild re-run (median of {len(seeds)})", f"{median(seeds):.0f} s  {['%.0f' % s for s in seeds]}"),
        ("ratio", f"{ratio:.0f}x faster (goal >= 50x; no-op goal <= 10 s)"),
    ], {"cold_s": cold, "noop_s": noop, "seeds_s": seeds, "ratio": ratio})

    report("inference", inference_rows, inference_data)


if __name__ == "__main__":
    main()
