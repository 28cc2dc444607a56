"""P4: a second deploy sends no model bytes.

Counts the bytes the controller sends to each lab host (tx counter of the host's veth on the
bridge side) during a cold deploy and during a second deploy.

    python bench/p4_model_bytes.py
"""

from __future__ import annotations

import argparse
import json
import subprocess

from common import deploy, deploy_dir, lab, lab_down, report, require_root


def tx_bytes(state) -> dict[str, int]:
    links = json.loads(subprocess.run(["ip", "-s", "-j", "link", "show"], capture_output=True, text=True).stdout)
    by_name = {link["ifname"]: link["stats64"]["tx"]["bytes"] for link in links if "stats64" in link}
    return {host.name: by_name.get(host.veth, 0) for host in state.hosts if host.kind != "outsider"}


def report_bytes(model_size: int, before: dict, middle: dict, after: dict) -> None:
    """Bytes received per host in the cold deploy (before -> middle) and the second (-> after)."""
    cold = {name: middle[name] - before[name] for name in before}
    second = {name: after[name] - middle[name] for name in before}
    rows = [("model size", f"{model_size / 2**20:.1f} MiB")]
    for name in before:
        rows.append((f"{name}: cold / second deploy", f"{cold[name] / 2**20:8.1f} MiB / {second[name] / 2**10:8.1f} KiB"))
    largest_second = max(second.values())
    rows.append(("model bytes in the second deploy",
                 "0 (every host received < 1 % of the model)" if largest_second < model_size / 100 else f"{largest_second} (!)"))
    report("p4_model_bytes", rows, {"model_bytes": model_size, "cold_tx": cold, "second_tx": second})


def model_size() -> int:
    from llamafleet_lab.assets import model_path

    return model_path().stat().st_size


def main() -> None:
    # Every benchmark takes the lab over (down, up, deploy): `--help` must not start one.
    argparse.ArgumentParser(description=__doc__).parse_args()
    require_root()
    size = model_size()
    state = lab()
    try:
        workdir = deploy_dir("p4")
        before = tx_bytes(state)
        deploy(workdir)
        middle = tx_bytes(state)
        deploy(workdir)
        after = tx_bytes(state)
    finally:
        lab_down()
    report_bytes(size, before, middle, after)


if __name__ == "__main__":
    main()
