"""Run a command inside a lab host, as that host's user, without SSH.

`nsenter` joins the namespaces of the host's init (mount, UTS, network, PID); on a phone,
`setpriv` then becomes the app user and the command gets Termux's environment, exactly what
an SSH session on the phone gets, Android's netlink denial and the phone's cgroup: it stands for
a command typed in the Termux app (Doze freezes it, the phantom process killer counts it). On a
host with a CPU share (profiles.py) the command runs in the host's cpu cgroup: as slow as the device.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from llamafleet_lab import android_edge, termux
from llamafleet_lab import hostsetup, profiles, systemd_host
from llamafleet_lab.hostsetup import LINUX_ENV
from llamafleet_lab.state import LabError, LabState, load_state
from llamafleet_lab.topology import LabHost


def exec_argv(host: LabHost, init_pid: int, command: Sequence[str], *, root: bool = False) -> list[str]:
    """The machine-side argv that runs `command` in `host` (as its user unless `root`)."""
    as_app_user = host.is_phone and not root
    if host.boots_systemd:
        # Every namespace of the container's systemd (`init_pid` is that process here): what
        # `machinectl shell` gives on a registered container.
        env = dict(LINUX_ENV)
        return profiles.in_cpu_cgroup(host, ["nsenter", "-t", str(init_pid), "-a", "--", "/usr/bin/env", "-i",
                                             f"--chdir={host.home}", *(f"{key}={value}" for key, value in env.items()), *command])
    workdir = host.home if (as_app_user or not host.is_phone) else "/"
    # A phone's cgroup namespace too: its processes read Android-like paths in /proc/self/cpuset.
    argv = ["nsenter", "-t", str(init_pid), "-m", "-u", "-n", "-p", *(["-C"] if host.is_phone else []), "--"]
    if as_app_user:
        # Android's netlink denial applies to every app process (android_edge.py).
        cgroups = (hostsetup.freezer_cgroup(host), hostsetup.app_cpuset(host))
        edge = [sys.executable, "-I", "-S", android_edge.__file__]
        for cgroup in cgroups:
            edge += ["--cgroup", str(cgroup)]
        argv = [*edge, "--", *argv]
        argv += ["setpriv", f"--reuid={host.uid}", f"--regid={host.gid}", "--init-groups", "--"]
        env = termux.termux_env(host)
    else:
        env = dict(LINUX_ENV)
    if os.environ.get("TERM"):
        env["TERM"] = os.environ["TERM"]
    # env -i: nothing of the caller's environment leaks in; env searches the new PATH, so a
    # phone's `sh` is $PREFIX/bin/sh as in a Termux session. env -C changes directory inside
    # the host (nsenter's --wd would resolve the path on the machine).
    return profiles.in_cpu_cgroup(host, argv + [
        "/usr/bin/env", "-i", f"--chdir={workdir}", *(f"{key}={value}" for key, value in env.items()), *command
    ])


def entry_pid(state: LabState, name: str) -> int:
    """The process whose namespaces are the host's: its init, or a systemd host's systemd."""
    if state.host(name).boots_systemd:
        pid = systemd_host.container_pid(state.boot_status(name))
        if not pid:
            raise LabError(f"{name}: its systemd is not running (rebooting?): try again in a few seconds")
        return pid
    return state.init_pid(name)


def lab_exec(
    name: str,
    command: Sequence[str] | str,
    *,
    root: bool = False,
    input: str | None = None,
    timeout: float | None = 120,
    capture: bool = True,
    check: bool = False,
    state: LabState | None = None,
) -> subprocess.CompletedProcess:
    """Run `command` (argv list, or a string for `sh -c`) in lab host `name`.

    Returns the CompletedProcess (text output when `capture`); its returncode is the
    command's. Raises LabNotUp/LabError for a lab that is not up or an unknown host.
    """
    state = state or load_state()
    host = state.host(name)
    argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
    return subprocess.run(
        exec_argv(host, entry_pid(state, name), argv, root=root),
        input=input,
        capture_output=capture,
        text=True,
        timeout=timeout,
        check=check,
    )
