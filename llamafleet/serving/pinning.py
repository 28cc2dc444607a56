"""A worker pinned to its big cores (PlannedHost.cpu_pin): its service starts the rpc-server
through taskset (util-linux), which sets its own CPU affinity and then execs the rpc-server, so
the supervised pid is the rpc-server's and every thread it starts inherits the mask.

Why not the program's own option: ggml-rpc-server has none, and Android ignores llama.cpp's
--cpu-mask. Why not systemd's CPUAffinity=: one way for runit, termux-services and systemd
alike. A changed pin changes the service's command, so the service restarts with it.

Where the pin does not hold: a kernel before 6.2 sets a process's affinity to its cpuset's CPUs
when it moves to another cpuset or its cpuset's CPUs change (Android sending Termux to the
background and back); 6.2 keeps the mask a process asked for ("sched: Enforce user requested
affinity"). The worker then runs unpinned until it restarts (`status` warns, `verify` fails).
"""

from __future__ import annotations

# taskset's path: absolute, as a systemd unit's ExecStart and a runit run script want it.
LINUX_TASKSET = "/usr/bin/taskset"


def taskset_path(platform: str, prefix: str | None) -> str:
    """Where taskset is: $PREFIX/bin on Termux (its util-linux package), /usr/bin on Linux."""
    if platform == "termux":
        if not prefix:
            raise ValueError("a Termux device without a known $PREFIX: cannot name taskset")
        return f"{prefix}/bin/taskset"
    return LINUX_TASKSET


def pinned_argv(argv: list[str], pin: str | None, platform: str, prefix: str | None = None) -> list[str]:
    """`argv` started on the CPUs `pin` names ("4-7"), or `argv` itself when there is no pin."""
    if not pin:
        return list(argv)
    return [taskset_path(platform, prefix), "-c", pin, *argv]
