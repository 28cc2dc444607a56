"""The ARM phone (Tensor G2 under qemu-user, cortex-a76 model): per flag class, the worker's
build time, its self-test result, and tokens/s of the cluster through it, against the same
worker built natively on an x86_64 phone.

    python bench/p6_arm_phone.py [--runs 3]

One lab: linux1 (master), phone1 (x86_64, this machine's CPU), phone2 (ARM). Each side is the
master with one worker (an inventory without the other phone). Per flag class the ARM phone is
deployed with `llama_cpu_arch` set (none = the table's choice); tokens/s is llama-server's
predicted_per_second of one fixed 64-token completion, `--runs` times.
"""

from __future__ import annotations

import argparse
import re
import time

from common import deploy, deploy_dir, lab_down, median, report, require_root

PROMPT = "The three primary colours are"
ONLY = '''"""The lab with the master and {phone} only (bench/p6_arm_phone.py)."""
from llamafleet_lab import inventory_groups

_groups = inventory_groups()
termux = [(name, {{**data, **{extra}}}) for name, data in _groups["termux"] if name == "{phone}"]
linux = [entry for entry in _groups["linux"]]
'''
# (label, llama_cpu_arch for the ARM phone): the table's rung, the ladder's last rung, and an
# over-reach the emulated CPU refuses (the self-test meets SIGILL, the deploy builds one step down).
CLASSES = [
    ("table: armv8.2-a+dotprod+fp16", None),
    ("forced armv8-a (no dotprod, no fp16)", "armv8-a"),
    ("forced armv8.2-a+dotprod+fp16+i8mm", "armv8.2-a+dotprod+fp16+i8mm"),
]


def rates(workdir, inventory: str, runs: int) -> list[float]:
    from llamafleet.serving.secrets import secrets_location
    from llamafleet.verify_cli import complete

    key = (secrets_location(workdir / inventory) / "api-key").read_text().strip()
    # Warm up: after a worker's new build, llama-server restarts and loads the model again.
    deadline = time.monotonic() + 600
    while True:
        try:
            complete("http://198.18.0.11:8080", key, PROMPT, n_predict=8, timeout=600)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(3)
    return [complete("http://198.18.0.11:8080", key, PROMPT, n_predict=64, timeout=600)["timings"]["predicted_per_second"]
            for _ in range(runs)]


def build_log(phone: str) -> str:
    from llamafleet_lab import lab_exec

    return lab_exec(phone, "cat ~/llamafleet/logs/build.log 2>/dev/null || true").stdout


def build_seconds(before: str, after: str) -> float:
    """Seconds of the compiles a deploy added to build.log ("compile done KEY in Ns")."""
    added = after[len(before):] if after.startswith(before) else after
    return float(sum(int(value) for value in re.findall(r"compile done \S+ in (\d+)s", added)))


def self_test(output: str) -> str:
    lines = output.splitlines()
    died = [line.split("] ", 1)[-1].strip() for line in lines if "died of SIGILL" in line]
    passed = any("ggml-selftest: ok" in line for line in lines)
    if died:
        return f"SIGILL ({died[0]}), then " + ("ok one step down" if passed else "the installed build kept")
    return "ok" if passed else "not run (nothing built)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    require_root()
    from llamafleet_lab import down, up

    down()
    up(phones=2, linux=1, socs={"phone2": "google-tensor-g2"})
    rows, data = [], {"classes": []}
    try:
        workdir = deploy_dir("arm-phone")
        (workdir / "inventory/native.py").write_text(ONLY.format(phone="phone1", extra="{}"))
        deploy(workdir, inventory="inventory/native.py")
        native = rates(workdir, "inventory/native.py", args.runs)
        print(f"  native: {native} tok/s", flush=True)
        rows.append((f"x86_64 phone1, native (median of {len(native)})", f"{median(native):.1f} tok/s  {native}"))
        data["native_tps"] = native
        for label, arch in CLASSES:
            extra = "{}" if arch is None else "{'llama_cpu_arch': '%s'}" % arch
            (workdir / "inventory/arm.py").write_text(ONLY.format(phone="phone2", extra=extra))
            before = build_log("phone2")
            result, seconds = deploy(workdir, inventory="inventory/arm.py")
            built = build_seconds(before, build_log("phone2"))
            tested = self_test(result.stdout + result.stderr)
            tps = rates(workdir, "inventory/arm.py", args.runs)
            print(f"  {label}: build {built:.0f} s, self-test {tested}, {tps} tok/s", flush=True)
            rows.append((f"ARM phone2, {label}", f"build {built:.0f} s, self-test {tested!r}, "
                         f"{median(tps):.1f} tok/s {tps} ({median(native) / median(tps):.1f}x slower than native)"))
            data["classes"].append({"class": label, "llama_cpu_arch": arch, "build_s": built, "deploy_s": seconds,
                                    "self_test": tested, "tps": tps})
    finally:
        lab_down()
    report("p6_arm_phone", rows, data)


if __name__ == "__main__":
    main()
