"""P2: a cold build of N same-class phones compiles once, whatever N.

For N = 1, 2, 4 phones (plus the lab's master, which the inventory needs): a fresh lab, then the
build tasks only (packages, source, build) on the phones; compiles are counted from the devices'
build logs. Goal: 1 compile for every N, wall time growing only by the copy to the twins.

    python bench/p2_class_builds.py [--phones 1 2 4] [--runs 3]
"""

from __future__ import annotations

import argparse

from common import BIN, deploy_dir, lab, lab_down, median, report, require_root, timed

TASKS = ("tasks/packages.py", "tasks/source.py", "tasks/build.py")


def compiles_on(state) -> int:
    from llamafleet_lab import lab_exec

    total = 0
    for host in state.hosts:
        if host.kind == "phone":
            out = lab_exec(host.name, "grep -c 'llamafleet: compile start' ~/llamafleet/logs/build.log 2>/dev/null || true")
            total += int(out.stdout.strip() or 0)
    return total


def one_run(count: int) -> tuple[int, float]:
    """A fresh lab of `count` phones (and the master), the build tasks on the phones."""
    state = lab(phones=count, linux=1)
    try:
        workdir = deploy_dir(f"p2-{count}")
        result, seconds = timed([str(BIN / "pyinfra"), "-y", "inventory/lab.py", *TASKS, "--limit", "termux"], cwd=workdir)
        if result.returncode != 0:
            raise SystemExit(result.stdout[-3000:])
        return compiles_on(state), seconds
    finally:
        lab_down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phones", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    require_root()
    rows, data = [], {}
    for count in args.phones:
        runs = [one_run(count) for _ in range(args.runs)]
        compiles = [c for c, _ in runs]
        seconds = [s for _, s in runs]
        rows.append((f"{count} phone(s)", f"compiles {compiles}, {median(seconds):.0f} s (median of {len(runs)}: "
                     f"{', '.join('%.0f' % s for s in seconds)})"))
        data[str(count)] = {"compiles": compiles, "seconds": seconds}
    report("p2_class_builds", rows, {"runs": data})


if __name__ == "__main__":
    main()
