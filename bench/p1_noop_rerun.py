"""P1: a no-op re-run of the full deploy vs. the seeds' procedure re-run.

The seeds' way to "re-run" a cluster is to rebuild by hand on every device: `rm -rf build`,
configure, build the same targets (`-j4`, no ccache), all devices at once. llamafleet's re-run
reads facts, finds nothing to do and changes nothing. Goal: <= 10 s and >= 50x faster.

    python bench/p1_noop_rerun.py [--runs 3] [--seed-runs 1]
"""

from __future__ import annotations

import argparse
import concurrent.futures

from common import deploy, deploy_dir, lab, lab_down, median, no_changes, report, require_root

# llama.cpp's CMake uses ccache when it finds it (GGML_CCACHE defaults to ON), and llamafleet
# installs ccache on every device: without turning it off, the seeds' second and third rebuilds
# were answered from the first one's cache (11 and 13 s instead of 656 s).
SEED_BUILD = (
    "set -e; export CCACHE_DISABLE=1; src={src}; rm -rf /tmp/seed-build; "
    "cmake -S $src -B /tmp/seed-build -DBUILD_SHARED_LIBS=ON -DGGML_RPC=ON -DGGML_CCACHE=OFF >/dev/null; "
    "cmake --build /tmp/seed-build --config Release --target {target} -j4 >/dev/null; rm -rf /tmp/seed-build"
)


def seeds_rerun(state) -> float:
    """All devices rebuild their targets from scratch at once, as the guides have users do."""
    from llamafleet_lab import lab_exec

    jobs = []
    for host in state.hosts:
        if host.kind == "outsider":
            continue
        base = f"{host.home}/llamafleet" if host.kind == "phone" else "/opt/llamafleet"
        target = "llama-server" if host.name == "linux1" else "ggml-rpc-server"
        # TMPDIR-safe scratch dir per platform: phones cannot write /tmp.
        script = SEED_BUILD.format(src=f"{base}/src/llama.cpp", target=target)
        if host.kind == "phone":
            script = script.replace("/tmp/seed-build", f"{host.home}/seed-build")
            # The guides' Termux build: CMake's default generator wants `make`, which a phone
            # has only once installed (its PATH is $PREFIX/bin alone); the compiler is clang.
            # Installed before the clock starts: the figure is the build's.
            prepared = lab_exec(host.name, "pkg install -y make >/dev/null", timeout=600)
            if prepared.returncode != 0:
                raise RuntimeError(f"{host.name}: pkg install make failed: {prepared.stderr[-500:]}")
            script = "export CC=clang CXX=clang++; " + script
        jobs.append((host.name, script))

    def build(job):
        name, script = job
        result = lab_exec(name, script, timeout=7200)
        if result.returncode != 0:
            raise RuntimeError(f"{name}: seeds' build failed: {result.stderr[-1500:]}")

    import time

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        list(pool.map(build, jobs))
    return time.monotonic() - started


def noop_reruns(workdir, runs: int, after_first=None) -> list[float]:
    """Wall times of `runs` re-runs of the deploy, each checked to change nothing."""
    seconds_each = []
    for _ in range(runs):
        result, seconds = deploy(workdir)
        if not no_changes(result.stdout + result.stderr):
            raise SystemExit("the re-run changed something: not a no-op\n" + (result.stdout + result.stderr)[-3000:])
        seconds_each.append(seconds)
        if after_first and len(seconds_each) == 1:
            after_first()
    return seconds_each


def report_rerun(cold: float, noop: list[float], seeds: list[float]) -> None:
    ratio = median(seeds) / median(noop)
    report("p1_noop_rerun", [
        ("cold deploy", f"{cold:.0f} s"),
        (f"llamafleet no-op re-run (median of {len(noop)})", f"{median(noop):.1f} s  {['%.1f' % s for s in noop]}"),
        (f"seeds' rebuild re-run (median of {len(seeds)})", f"{median(seeds):.0f} s  {['%.0f' % s for s in seeds]}"),
        ("ratio", f"{ratio:.0f}x faster (goal >= 50x; no-op goal <= 10 s)"),
    ], {"cold_s": cold, "noop_s": noop, "seeds_s": seeds, "ratio": ratio})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed-runs", type=int, default=1, help="each is a full clean rebuild (~10 min on 2 cores)")
    args = parser.parse_args()
    require_root()
    state = lab()
    try:
        workdir = deploy_dir("p1")
        _, cold = deploy(workdir)
        noop = noop_reruns(workdir, args.runs)
        seeds = [seeds_rerun(state) for _ in range(args.seed_runs)]
    finally:
        lab_down()
    report_rerun(cold, noop, seeds)


if __name__ == "__main__":
    main()
