"""`llamafleet status` wall time: the default 4-host lab, and 3 vs 8 hosts. Goals: <= 3 s on
4 hosts (median of 5), and sublinear growth (8 hosts / 3 hosts < 8/3).

Each size: a fresh lab and a deploy (one deploy directory for all sizes, so its build cache
compiles each device class once), then `--runs` timed `llamafleet status --json` calls, each a
new process as a user would run it (imports, inventory, facts, plan, one probe per host).

    python bench/status_timing.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import shutil

from common import BIN, REPO, deploy, deploy_dir, lab, lab_down, median, report, require_root, timed

SIZES = {"3 hosts": (1, 2), "4 hosts (default lab)": (2, 2), "8 hosts": (5, 3)}  # (phones, linux)


def status_runs(workdir, runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        result, took = timed([str(BIN / "llamafleet"), "status", "inventory/lab.py", "--json"], cwd=workdir)
        document = json.loads(result.stdout)
        # A run that could not reach a host would be fast for the wrong reason.
        assert all(host["reachable"] for host in document["hosts"]), document
        seconds.append(took)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    require_root()
    workdir = deploy_dir("status")
    cached = REPO / ".llamafleet" / "cache"
    if cached.is_dir():  # binaries the checkout's deploys already built: no compile here
        shutil.copytree(cached, workdir / ".llamafleet" / "cache")
    results, problems = {}, {}
    for label, (phones, linux) in SIZES.items():
        lab(phones=phones, linux=linux)
        try:
            deploy(workdir)
            results[label] = status_runs(workdir, args.runs)
            final, _ = timed([str(BIN / "llamafleet"), "status", "inventory/lab.py", "--json"], cwd=workdir)
            problems[label] = json.loads(final.stdout)["problems"]
        finally:
            lab_down()
    ratio = median(results["8 hosts"]) / median(results["3 hosts"])
    report("status_timing", [
        *((f"status, {label}", f"{median(runs):.2f} s (median of {len(runs)}; {problems[label]} problems shown)")
          for label, runs in results.items()),
        ("ratio 8/3", f"{ratio:.2f}x (linear would be {8 / 3:.2f}x)"),
    ], {"runs": results, "problems": problems, "ratio": ratio})


if __name__ == "__main__":
    main()
