"""P5: a no-op re-run on 8 hosts vs 3 hosts. Goal: <= 1.5x.

Each size: a fresh lab, a cold deploy, then the median of `--runs` no-op re-runs.

    python bench/p5_noop_scaling.py [--runs 3]
"""

from __future__ import annotations

import argparse

from common import deploy, deploy_dir, lab, lab_down, median, report, require_root
from p1_noop_rerun import noop_reruns

SIZES = {"3 hosts": (1, 2), "8 hosts": (5, 3)}  # (phones, linux): linux1 is the master


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    require_root()
    results = {}
    for label, (phones, linux) in SIZES.items():
        lab(phones=phones, linux=linux)
        try:
            workdir = deploy_dir(f"p5-{phones + linux}")
            deploy(workdir)
            results[label] = noop_reruns(workdir, args.runs)
        finally:
            lab_down()
    ratio = median(results["8 hosts"]) / median(results["3 hosts"])
    report("p5_noop_scaling", [
        *((f"no-op re-run, {label}", f"{median(runs):.1f} s (median of {len(runs)})") for label, runs in results.items()),
        ("ratio 8/3", f"{ratio:.2f}x (goal <= 1.5x)"),
    ], {"runs": results, "ratio": ratio})


if __name__ == "__main__":
    main()
