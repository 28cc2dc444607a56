"""P3: what a worker compiles (ggml-rpc-server only) vs. the seeds' "build all targets".

Both from a clean build directory on one lab Linux host, same source, same compiler, no ccache,
-j = the machine's cores. Goal: the worker build >= 12x cheaper.

    python bench/p3_worker_compile.py [--runs 3] [--seed-runs 1]
"""

from __future__ import annotations

import argparse
import os
import time

from common import deploy_dir, lab, lab_down, median, report, require_root, timed, BIN

COMMON = "-G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_RPC=ON -DGGML_NATIVE=OFF -DLLAMA_OPENSSL=OFF"
WORKER = f"{COMMON} -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
SEEDS = "-G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_RPC=ON -DLLAMA_OPENSSL=OFF"


def clean_build(host: str, src: str, args: str, target: str | None) -> float:
    from llamafleet_lab import lab_exec

    jobs = os.cpu_count() or 2
    target_arg = f"--target {target}" if target else ""
    script = (
        f"set -e; rm -rf /tmp/p3; cmake -S {src} -B /tmp/p3 {args} >/dev/null; "
        f"CCACHE_DISABLE=1 cmake --build /tmp/p3 {target_arg} -j {jobs} >/dev/null; rm -rf /tmp/p3"
    )
    started = time.monotonic()
    result = lab_exec(host, script, timeout=10800)
    if result.returncode != 0:
        raise SystemExit(f"build failed on {host}: {result.stderr[-2000:]}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="worker builds (about 1 min each)")
    parser.add_argument("--seed-runs", type=int, default=1, help="each builds every target (about 10 min on 2 cores)")
    args = parser.parse_args()
    require_root()
    lab()
    try:
        # Put the source on linux2 the way llamafleet does (packages + source tasks only).
        workdir = deploy_dir("p3")
        result, _ = timed([str(BIN / "pyinfra"), "-y", "inventory/lab.py", "tasks/packages.py", "tasks/source.py",
                           "--limit", "linux2"], cwd=workdir)
        if result.returncode != 0:
            raise SystemExit(result.stdout[-3000:])
        src = "/opt/llamafleet/src/llama.cpp"
        worker = [clean_build("linux2", src, WORKER, "ggml-rpc-server") for _ in range(args.runs)]
        seeds = [clean_build("linux2", src, SEEDS, None) for _ in range(args.seed_runs)]
    finally:
        lab_down()
    ratio = median(seeds) / median(worker)
    report("p3_worker_compile", [
        (f"worker build: ggml-rpc-server only (median of {len(worker)})", f"{median(worker):.0f} s  {['%.0f' % s for s in worker]}"),
        (f"seeds: all targets (median of {len(seeds)})", f"{median(seeds):.0f} s  {['%.0f' % s for s in seeds]}"),
        ("ratio", f"{ratio:.1f}x cheaper (goal >= 12x)"),
    ], {"worker_s": worker, "seeds_all_s": seeds, "ratio": ratio})


if __name__ == "__main__":
    main()
