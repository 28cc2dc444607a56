"""Inference through the lab cluster: tokens/s of one fixed completion, direct vs tunnel, and
llama-server's model load time with and without rpc-server's -c cache on a second start.

    python bench/inference.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request

from common import INVENTORY, deploy, deploy_dir, lab, lab_down, median, report, require_root

PROMPT = "The three primary colours are"


def completion_rate(workdir, runs: int) -> list[float]:
    from llamafleet.serving.secrets import secrets_location
    from llamafleet.verify_cli import complete

    key = (secrets_location(workdir / INVENTORY) / "api-key").read_text().strip()
    rates = []
    for _ in range(runs):
        answer = complete("http://198.18.0.11:8080", key, PROMPT, n_predict=64)
        rates.append(answer["timings"]["predicted_per_second"])
    return rates


def load_seconds() -> float:
    """Restart llama-server and time until /health is ok (tensors sent to every worker)."""
    from llamafleet_lab import lab_exec

    lab_exec("linux1", "SVDIR=/etc/service sv restart llama-server")
    started = time.monotonic()
    while time.monotonic() - started < 600:
        try:
            with urllib.request.urlopen("http://198.18.0.11:8080/health", timeout=2) as response:
                if json.loads(response.read()).get("status") == "ok":
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("llama-server did not come back in 600 s")


def measure(workdir, runs: int) -> tuple[list, dict]:
    """On a deployed lab cluster (phones tunnelled): tokens/s tunnel vs direct, load times."""
    tunnel = completion_rate(workdir, runs)
    deploy(workdir, "--data", "rpc_transport=direct", "--data", "rpc_allow_insecure=true")
    direct = completion_rate(workdir, runs)
    no_cache = [load_seconds() for _ in range(3)]
    deploy(workdir, "--data", "rpc_cache=true")  # back to tunnels, workers with -c
    first_cached = load_seconds()  # fills the workers' caches
    cached = [load_seconds() for _ in range(3)]
    cached_tunnel = completion_rate(workdir, runs)
    deploy(workdir)  # back to the defaults
    rows = [
        (f"tokens/s, phones tunnelled (median of {len(tunnel)})", f"{median(tunnel):.1f}  {['%.1f' % r for r in tunnel]}"),
        (f"tokens/s, phones direct (median of {len(direct)})", f"{median(direct):.1f}  {['%.1f' % r for r in direct]}"),
        ("tunnel cost", f"{(1 - median(tunnel) / median(direct)) * 100:.1f} % of direct tokens/s"),
        (f"tokens/s, tunnelled again after restarts (median of {len(cached_tunnel)})", f"{median(cached_tunnel):.1f}"),
        ("model load, no cache (median of 3)", f"{median(no_cache):.1f} s  {['%.1f' % r for r in no_cache]}"),
        ("model load, -c cache, first start", f"{first_cached:.1f} s"),
        ("model load, -c cache, warm (median of 3)", f"{median(cached):.1f} s  {['%.1f' % r for r in cached]}"),
    ]
    data = {"tunnel_tps": tunnel, "direct_tps": direct, "tunnel_again_tps": cached_tunnel,
            "load_no_cache_s": no_cache, "load_cache_first_s": first_cached, "load_cache_warm_s": cached}
    return rows, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    require_root()
    lab()
    try:
        workdir = deploy_dir("inference")
        deploy(workdir)  # phones tunnelled (the default)
        rows, data = measure(workdir, args.runs)
    finally:
        lab_down()
    report("inference", rows, data)


if __name__ == "__main__":
    main()
