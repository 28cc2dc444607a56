"""The master's llama-server launcher: serve with the workers that answer, heal when one leaves.

The launcher (templates/llamafleet/libexec/llama-server-launch.bash.j2) is what the master's
service runs: it picks the first planned group of workers whose rpc-servers all answer a
HELLO, execs llama-server with that group's --rpc and -ts, and keeps a watcher beside it that
kills llama-server (the supervisor starts the launcher again) when the ssh process of a
tunnelled worker's forward ends (llama-server's connection went with it), or when a worker
that did not answer at start answers again. The groups come from the plan
(llamafleet.plan.heal), so no split is worked out on the device.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from llamafleet.plan import Plan
from llamafleet.plan.heal import ServingRow
from llamafleet.serving.probes import RPC_HELLO_ANSWER_SIZE, rpc_hello_printf
from llamafleet.serving.tunnels import local_forward

LAUNCHER_TEMPLATE = "llamafleet/libexec/llama-server-launch.bash.j2"


@dataclass(frozen=True)
class HealTimes:
    """How long the launcher waits and how often it probes (seconds).

    full_wait: at start, how long to wait for every worker before serving with fewer (a phone
    that is rebooting may take this long to answer; the watcher re-admits it later anyway).
    give_up: the launcher exits after this (the supervisor starts it again). probe: the bound
    on one HELLO. interval: between looks of the watcher; a missing worker is re-admitted
    after two answers in a row.
    """

    full_wait: int = 10
    give_up: int = 120
    probe: int = 3
    interval: int = 2


def launcher_context(plan: Plan, *, bash: str, manager: str, argv: list[str],
                     times: HealTimes = HealTimes()) -> dict:
    """The template's values for the master of `plan`; `argv` is llama-server's command line
    without --rpc and -ts (the launcher adds the chosen group's)."""
    workers = [worker for worker in plan.workers() if worker.connect]
    # The whole plan's row: the workers in its --rpc (the speed split may leave some out).
    whole = ServingRow(tuple(worker.name for worker in plan.serving()), plan.master.rpc, plan.master.tensor_split)
    return {
        "bash": bash,
        "manager": manager,
        "rows": [whole, *plan.master.degraded],
        "endpoints": [(worker.name, str(worker.connect)) for worker in workers],
        # The -L argument of each tunnelled worker's ssh: the launcher watches that process.
        "forwards": [(worker.name, local_forward(int(worker.rpc_port))) for worker in workers
                     if worker.transport == "tunnel"],
        "command": shlex.join(argv),
        "full_wait_seconds": times.full_wait,
        "wait_seconds": times.give_up,
        "probe_seconds": times.probe,
        "hello_request": rpc_hello_printf(),
        "hello_answer_size": RPC_HELLO_ANSWER_SIZE,
        "probe_interval_seconds": times.interval,
        "quote": shlex.quote,
    }
