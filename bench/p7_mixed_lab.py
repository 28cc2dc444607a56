"""P7, the heterogeneous lab: tokens/s with the speed split against the RAM split (goal: >= 1.5x
faster), the master computing on against off, and the model's load time over the slow link
with and without rpc-server's -c cache.

    python bench/p7_mixed_lab.py [--runs 3] [--loads 3]

One lab, `--profile mixed` (lab/llamafleet_lab/profiles.py): linux1 (master) and linux2 at the
machine's full speed, phone1 at 50 % of one CPU on a 100 Mbit/s link, phone2 at 25 % on a
20 Mbit/s link. Each side is a deploy of an inventory derived from the lab's, with the side's
data keys on every host, then one restart of llama-server (nothing a deploy set off is still
pending), a warm-up and `--runs` completions of the same 64 tokens (llama-server's
predicted_per_second), once llama-server runs with the planned --rpc and -ts:

1. RAM split, the master not computing: llama_split_by = "ram", master_computes = False.
2. speed split, the master not computing: one `llamafleet plan --measure` first (it records
   each device's speed on the device), then llama_split_by = "speed", master_computes = False.
3. speed split, the master computing: as 2, with master_computes = True.
4. model load over the slow link: linux1 and phone2 only, RAM split and the master not
   computing (every tensor llama-server sends a worker crosses phone2's link), rpc_cache =
   False, then True. A load is the seconds from `sv restart llama-server` on linux1 until
   /health answers 200, `--loads` times a side. With -c, phone2's cache is emptied first: the
   first load fills it (reported apart), the median is of the loads after it. rpc-server
   caches only tensors over 10 MiB (ggml-rpc's HASH_THRESHOLD): the size of phone2's cache
   is reported with the loads.

Sides 1-3 keep rpc_cache = False: only the split and the master's share change between them.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
import urllib.request

from common import BIN, REPO, deploy, deploy_dir, lab, lab_down, median, report, require_root, timed
from p6_arm_phone import rates

MASTER = "linux1"
SLOW = "phone2"
HEALTH = "http://198.18.0.11:8080/health"
MASTER_LOG = "/var/log/llamafleet/llama-server/current"  # runit's svlogd on a Linux master
# A load over phone2's 20 Mbit/s link without -c takes minutes (the whole model crosses it).
LOAD_SECONDS = 900
# The launcher re-admits a worker that answers again after two looks 2 s apart: a healthy
# llama-server that still runs without the plan's workers this long will stay so.
MISMATCH_SECONDS = 60
DERIVED = '''"""The mixed lab, {what} (bench/p7_mixed_lab.py)."""
from llamafleet_lab import inventory_groups

_extra = {extra!r}
_groups = inventory_groups()
termux = [(name, {{**data, **_extra}}) for name, data in _groups["termux"] if name in {hosts!r}]
linux = [(name, {{**data, **_extra}}) for name, data in _groups["linux"] if name in {hosts!r}]
'''
EVERY = ("linux1", "linux2", "phone1", "phone2")
# (file name, label, data on every host) of parts 1-3, in the order they run.
SPLIT_SIDES = [
    ("ram", "RAM split, master not computing", {"llama_split_by": "ram", "master_computes": False}),
    ("speed", "speed split, master not computing", {"llama_split_by": "speed", "master_computes": False}),
    ("speed-master", "speed split, master computing", {"llama_split_by": "speed", "master_computes": True}),
]
SLOW_LINK = {"llama_split_by": "ram", "master_computes": False}


def inventory(workdir, name: str, what: str, hosts: tuple[str, ...], extra: dict) -> str:
    path = f"inventory/p7-{name}.py"
    (workdir / path).write_text(DERIVED.format(what=what, extra=extra, hosts=hosts))
    return path


def llamafleet(workdir, *argv: str):
    result, seconds = timed([str(BIN / "llamafleet"), *argv], cwd=workdir)
    if result.returncode != 0:
        sys.exit(f"llamafleet {' '.join(argv)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return result, seconds


def planned(workdir, path: str) -> dict:
    """The master's part of `llamafleet plan --json` (what the deploy configured), and its hints."""
    document = json.loads(llamafleet(workdir, "plan", "--json", path)[0].stdout)
    return {**document["master"], "hints": document.get("hints", [])}


def server() -> tuple[int | None, dict]:
    """The master's running llama-server: its pid and its --rpc and -ts ((None, {}) when none runs)."""
    from llamafleet_lab import lab_exec

    lines = lab_exec(MASTER, "ps -C llama-server -o pid=,args=").stdout.split("\n")
    found = [line.split() for line in lines if line.strip()]
    if not found:
        return None, {}
    words = found[0]
    return int(words[0]), {flag: words[i + 1] for i, flag in enumerate(words[:-1]) if flag in ("--rpc", "-ts")}


def shares(split: str) -> list[float] | None:
    try:
        values = [float(value) for value in re.split(r"[,/]", split)]
    except ValueError:
        return None
    total = sum(values)
    return [value / total for value in values] if total > 0 else None


def as_planned(args: dict, plan: dict) -> bool:
    """Whether llama-server runs with the plan's workers and shares (the launcher serves with
    fewer workers when one did not answer; -ts may be written 1,3 or 0.25,0.75). A master that
    holds the whole model runs without --rpc and -ts."""
    if not plan["rpc"]:
        return "--rpc" not in args and "-ts" not in args
    ours, theirs = shares(args.get("-ts", "")), shares(plan["tensor_split"])
    if args.get("--rpc") != plan["rpc"] or ours is None or theirs is None or len(ours) != len(theirs):
        return False
    return all(abs(a - b) < 0.005 for a, b in zip(ours, theirs))


def healthy() -> bool:
    try:
        with urllib.request.urlopen(HEALTH, timeout=2) as response:
            return response.status == 200
    except OSError:  # refused while it starts, HTTP 503 while it loads
        return False


def load_seconds() -> float:
    """Restart the master's llama-server (its supervisor starts the launcher again, which waits
    for the workers, then llama-server loads the model and sends every worker its tensors) and
    time until /health answers 200. The old pid gone first: sv's own wait may time out."""
    from llamafleet_lab import lab_exec

    old, _ = server()
    started = time.monotonic()
    lab_exec(MASTER, "SVDIR=/etc/service sv restart llama-server")
    gone = old is None
    while time.monotonic() - started < LOAD_SECONDS:
        gone = gone or server()[0] != old
        if gone and healthy():
            return time.monotonic() - started
        time.sleep(0.2)
    sys.exit(f"llama-server on {MASTER} did not answer /health within {LOAD_SECONDS} s of its restart "
             f"(its launcher's log: {MASTER_LOG} on {MASTER})")


def settle(label: str, plan: dict) -> dict:
    """Restart llama-server once and wait until it serves as planned; return its --rpc and -ts.
    The launcher serves without a worker that did not answer and restarts llama-server with it
    within seconds of its answering again; one that serves otherwise for MISMATCH_SECONDS is
    measured as it is, with a warning."""
    load_seconds()
    deadline, mismatch = time.monotonic() + LOAD_SECONDS, None
    while time.monotonic() < deadline:
        _, args = server()
        serving = healthy()
        if serving and as_planned(args, plan):
            return args
        mismatch = (mismatch or time.monotonic()) if serving else None
        if mismatch and time.monotonic() - mismatch > MISMATCH_SECONDS:
            print(f"  WARNING {label}: llama-server serves with --rpc {args.get('--rpc')} -ts {args.get('-ts')}, "
                  f"the plan says --rpc {plan['rpc']} -ts {plan['tensor_split']} (a worker that did not "
                  f"answer? see {MASTER_LOG} on {MASTER})", flush=True)
            return args
        time.sleep(2)
    sys.exit(f"{label}: llama-server on {MASTER} did not serve within {LOAD_SECONDS} s "
             f"(its launcher's log: {MASTER_LOG} on {MASTER})")


def deploy_side(workdir, path: str, label: str) -> tuple[float, dict, dict]:
    """Deploy `path` (a failed deploy stops the run, naming it); its deploy seconds, plan and
    the running llama-server's --rpc and -ts."""
    print(f"{label}: deploying {path}", flush=True)
    _, seconds = deploy(workdir, inventory=path)
    plan = planned(workdir, path)
    for hint in plan["hints"]:  # why a device gets a small share or none
        print(f"  plan: {hint}", flush=True)
    return seconds, plan, settle(label, plan)


def fmt(values: list[float], digits: int = 1) -> str:
    return ", ".join(f"{value:.{digits}f}" for value in values)


def table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    print(f"\n== {title}")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    print(flush=True)


def split_sides(workdir, runs: int) -> tuple[list, dict]:
    """Parts 1-3: tokens/s per side, the measurement between sides 1 and 2."""
    rows, data = [], {"sides": []}
    for number, (name, label, keys) in enumerate(SPLIT_SIDES, 1):
        path = inventory(workdir, name, label, EVERY, {**keys, "rpc_cache": False})
        if name == "speed":
            print(f"measuring: llamafleet plan --measure {path}", flush=True)
            measured, seconds = llamafleet(workdir, "plan", "--measure", path)
            print(measured.stdout, flush=True)
            data["measure"] = {"seconds": seconds, "output": measured.stdout}
        deployed, plan, args = deploy_side(workdir, path, f"side {number}")
        tps = rates(workdir, path, runs)
        print(f"  side {number}: {fmt(tps)} tok/s", flush=True)
        rows.append((f"{number}. {label} (median of {len(tps)})",
                     f"{median(tps):.1f} tok/s  [{fmt(tps)}]  -ts {args.get('-ts')}  --rpc {args.get('--rpc')}"))
        data["sides"].append({"side": number, "label": label, "data": keys, "deploy_s": deployed, "tps": tps,
                              "planned": plan, "running": args, "as_planned": as_planned(args, plan)})
    table("P7 tokens/s by split (parts 1-3)", rows)
    return rows, data


def cache_kib(host) -> int:
    from llamafleet_lab import lab_exec

    used = lab_exec(host.name, f"du -sk {host.home}/llamafleet/cache 2>/dev/null || echo 0").stdout.split()
    return int(used[0]) if used else 0


def slow_link(workdir, state, loads: int) -> tuple[list, dict]:
    """Part 4: load times through phone2 alone, without then with rpc-server's -c."""
    from llamafleet_lab import lab_exec

    phone = state.host(SLOW)
    rows = [(f"{SLOW}'s link (profile)", f"{phone.link_mbit} Mbit/s each way, {phone.cpu_percent} % of one CPU")]
    data = {"link_mbit": phone.link_mbit, "cpu_percent": phone.cpu_percent}
    for cache in (False, True):
        label = f"{MASTER} + {SLOW}, rpc_cache={cache}"
        path = inventory(workdir, f"slow-{'cache' if cache else 'nocache'}", label, (MASTER, SLOW),
                         {**SLOW_LINK, "rpc_cache": cache})
        deployed, plan, args = deploy_side(workdir, path, label)
        side = {"deploy_s": deployed, "planned": plan, "running": args, "as_planned": as_planned(args, plan)}
        if cache:
            # Files only: rpc-server keeps its cache directories and writes into them.
            cache_dir = f"{phone.home}/llamafleet/cache"
            lab_exec(SLOW, f"[ ! -d {cache_dir} ] || find {cache_dir} -type f -delete", check=True)
            side["first_s"] = load_seconds()
            print(f"  {label}: first load (fills the cache) {side['first_s']:.1f} s", flush=True)
        side["loads_s"] = [load_seconds() for _ in range(loads)]
        side["cache_kib"] = cache_kib(phone)
        print(f"  {label}: loads {fmt(side['loads_s'])} s, {SLOW}'s cache {side['cache_kib']} KiB", flush=True)
        data["cache" if cache else "no_cache"] = side
        if cache:
            rows.append((f"-c, first load (fills {SLOW}'s cache)", f"{side['first_s']:.1f} s"))
        rows.append((f"{'-c, later loads' if cache else 'no -c'} (median of {loads})",
                     f"{median(side['loads_s']):.1f} s  [{fmt(side['loads_s'])}]  -ts {args.get('-ts')}, "
                     f"{SLOW}'s cache {side['cache_kib'] / 1024:.1f} MiB"))
    data["speedup"] = median(data["no_cache"]["loads_s"]) / median(data["cache"]["loads_s"])
    rows.append(("no -c / -c", f"{data['speedup']:.1f}x"))
    table("P7 model load over the slow link (part 4)", rows)
    return rows, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="completions per side of parts 1-3 (default 3)")
    parser.add_argument("--loads", type=int, default=3, help="model loads per side of part 4 (default 3)")
    args = parser.parse_args()
    require_root()
    state = lab(profile="mixed")
    try:
        workdir = deploy_dir("mixed-lab")
        cached = REPO / ".llamafleet" / "cache"
        if cached.is_dir():  # binaries the checkout's deploys already built: no compile here
            shutil.copytree(cached, workdir / ".llamafleet" / "cache")
        profile = {host.name: {"cpu_percent": host.cpu_percent, "link_mbit": host.link_mbit}
                   for host in state.hosts if host.name in EVERY}
        split_rows, split_data = split_sides(workdir, args.runs)
        load_rows, load_data = slow_link(workdir, state, args.loads)
    finally:
        lab_down()
    tps = [median(side["tps"]) for side in split_data["sides"]]
    speed, master = tps[1] / tps[0], tps[2] / tps[1]
    report("p7_mixed_lab", [
        *split_rows,
        ("speed split / RAM split, master off", f"{speed:.2f}x (goal >= 1.5x: {'met' if speed >= 1.5 else 'not met'})"),
        ("master computing on / off, speed split", f"{master:.2f}x"),
        *load_rows,
    ], {"profile": profile, **split_data, "speed_over_ram": speed, "master_on_over_off": master, "slow_link": load_data})


if __name__ == "__main__":
    main()
