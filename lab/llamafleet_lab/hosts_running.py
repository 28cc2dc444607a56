"""A running lab's hosts: reboot one, and the status of each (what `lab reboot` and `lab status` do)."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

from llamafleet_lab import find_inits, profiles, sshd
from llamafleet_lab.lifecycle import require_root
from llamafleet_lab.state import LabError, LabState, load_state
from llamafleet_lab.topology import LabHost

REBOOT_TIMEOUT = 30.0


def reboot(name: str, *, state: LabState | None = None) -> dict:
    """Reboot one host. A Linux host: every process but sshd and init dies and runsvdir
    restarts. A phone: every process dies (sshd too), and the Termux:Boot scripts run, at once
    or, with a PIN set, after `lab unlock`. Returns the host's boot status once the boot is done."""
    require_root()
    state = state or load_state()
    host = state.host(name)
    pid = state.init_pid(name)
    if not find_inits.init_alive(pid):
        raise LabError(f"lab host {host.name} is not running (init pid {pid} is gone): run `llamafleet lab down` and `up`")
    before = state.boot_status(name).get("boot_count", 0)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + REBOOT_TIMEOUT
    while time.monotonic() < deadline:
        status = state.boot_status(name)
        if status.get("boot_count", 0) > before:
            return status
        time.sleep(0.05)
    raise LabError(f"{host.name} did not finish rebooting within {REBOOT_TIMEOUT:.0f}s (see {state.log_dir(name)})")


def status(state: LabState | None = None) -> list[dict]:
    """One entry per host: name, kind, address, ssh_port, user, up (sshd answering), profiles.describe."""
    state = state or load_state()

    def describe(host: LabHost) -> dict:
        return {
            "name": host.name,
            "kind": host.kind,
            "address": host.address,
            "ssh_port": host.ssh_port,
            "user": host.user,
            "up": sshd.ssh_answers(host.address, host.ssh_port, timeout=1.0),
            **profiles.describe(host),
        }

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(describe, state.hosts))
