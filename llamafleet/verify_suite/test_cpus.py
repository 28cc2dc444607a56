"""Where each worker's rpc-server runs: its big cores when the plan pins it (taskset), every CPU
the device allows otherwise. What must hold comes from verify_suite/cpus.py; each worker's
CPUs are listed at the end of the run."""

from __future__ import annotations

from llamafleet.verify_suite.cpus import cpu_problems, cpus_command, parse_cpus


def test_worker_runs_on_its_planned_cpus(worker, summary):
    planned = worker.planned
    seen = parse_cpus(worker.host.run(cpus_command(planned.binary)).stdout)
    plan = (f"pinned to {planned.cpu_pin}" if planned.cpu_pin
            else f"not pinned: {planned.cpu_pin_reason}" if planned.cpu_pin_reason else "not pinned")
    summary(f"{worker.name}: {seen.describe()} (plan: {plan})")
    problems = cpu_problems(seen, planned.cpu_pin)
    assert not problems, f"{worker.name}: " + "; ".join(problems)
