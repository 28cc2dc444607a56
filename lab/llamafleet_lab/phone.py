"""What a phone's owner (or adb) does to a lab phone from outside: screen, PIN, unlock,
Android settings; and the lab-side reads of what the app cannot see (its wake lock).

Each stands for something a real phone has and Termux cannot change:
- the screen (`lab screen HOST on|off`): Doze only starts with the screen off; a lab phone's
  screen is on after `lab up` (its owner is setting it up);
- a screen lock (`lab pin HOST on|off`) and the first unlock after a reboot (`lab unlock HOST`),
  before which Android sends no BOOT_COMPLETED and Termux:Boot runs nothing (termux-boot README);
- the cpuset Android holds the app to (`lab cpuset HOST top-app|background`): a background app
  runs on the little cores (termux-app #5086);
- `adb shell settings put global settings_enable_monitor_phantom_procs false` and friends
  (`lab setprop HOST KEY VALUE`), which Android reads back as getprop values.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from llamafleet_lab import hostsetup, profiles, termux
from llamafleet_lab.state import LabError, LabState, load_state


def _phone_dir(state: LabState, name: str) -> Path:
    host = state.host(name)
    if not host.is_phone:
        raise LabError(f"{name} is not a phone")
    return state.host_dir(name)


def set_screen(name: str, on: bool, state: LabState | None = None) -> None:
    state = state or load_state()
    (_phone_dir(state, name) / "screen").write_text("on\n" if on else "off\n")


def set_pin(name: str, on: bool, state: LabState | None = None) -> None:
    state = state or load_state()
    pin = _phone_dir(state, name) / "pin"
    if on:
        pin.write_text("lab PIN set: Termux:Boot waits for the first unlock after a reboot\n")
    elif pin.exists():
        pin.unlink()


def unlock(name: str, state: LabState | None = None) -> None:
    state = state or load_state()
    _phone_dir(state, name)
    os.kill(state.init_pid(name), signal.SIGUSR2)


# Android's cpusets an app may be in (/dev/cpuset/...): in front, all CPUs; in the background,
# the little cores (the lab: the first half of the machine's CPUs).
CPUSETS = ("top-app", "foreground", "background")


def set_cpuset(name: str, cpuset: str, state: LabState | None = None) -> None:
    """Move the phone's app to another Android cpuset (its processes see the new name in
    /proc/self/cpuset and the CPUs in their affinity)."""
    state = state or load_state()
    _phone_dir(state, name)
    if cpuset not in CPUSETS:
        raise LabError(f"unknown cpuset {cpuset!r}: one of {', '.join(CPUSETS)}")
    host = state.host(name)
    current = hostsetup.app_cpuset(host)
    every = (current.parent / "cpuset.cpus").read_text().strip()
    first, _, last = every.partition("-")
    little = f"{first}-{(int(first) + int(last or first)) // 2}" if last else first
    (current / "cpuset.cpus").write_text(little if cpuset == "background" else every)
    if current.name != cpuset:
        current.rename(current.parent / cpuset)


def set_property(name: str, key: str, value: str, state: LabState | None = None) -> None:
    state = state or load_state()
    path = hostsetup.storage_path(_phone_dir(state, name), termux.PROPERTIES_FILE)
    properties = termux.read_properties(path)
    properties[key] = value
    termux.write_properties(path, properties)


def wake_lock(name: str, state: LabState | None = None) -> str:
    """The Termux app's wake lock as Android knows it: "held", "released" or "" (none since boot)."""
    state = state or load_state()
    record = hostsetup.storage_path(_phone_dir(state, name), termux.WAKE_LOCK_FILE)
    return record.read_text().strip()


# The lab's own cgroup trees: the phones' freezer and cpuset ones, every profiled host's cpu one.
LAB_CGROUP_ROOTS = (hostsetup.FREEZER_ROOT, hostsetup.CPUSET_ROOT, profiles.CPU_ROOT)


def remove_cgroups() -> list[str]:
    """Thaw and delete the lab's cgroups (after their processes are gone), children first. A
    frozen process takes no SIGKILL, so `lab down` thaws before it kills, and again here."""
    problems = []
    thaw_all()
    for root in LAB_CGROUP_ROOTS:
        if not root.is_dir():
            continue
        for cgroup in sorted((path for path in root.rglob("*") if path.is_dir()), key=lambda p: -len(p.parts)) + [root]:
            try:
                cgroup.rmdir()
            except OSError as error:
                problems.append(f"cgroup {cgroup}: {error.strerror}")
    return problems


def thaw_all() -> None:
    root = hostsetup.FREEZER_ROOT
    if root.is_dir():
        for cgroup in root.iterdir():
            state_file = cgroup / "freezer.state"
            if state_file.exists():
                state_file.write_text("THAWED")


def cgroup_leftovers() -> list[str]:
    return [f"cgroup {root}" for root in LAB_CGROUP_ROOTS if root.is_dir()]
