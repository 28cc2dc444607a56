"""What a measurement run printed, and the speeds derived from it (llamafleet.measure_math)."""

from __future__ import annotations

import pytest

from llamafleet.measure_math import MIB_PER_MBIT, MeasureError, layers_to_measure, parse_run, worker_ms_per_mb

# The script's lines (templates/llamafleet/libexec/measure.bash.j2) around llama-server's own
# log lines (src/llama-model.cpp: print_info and load_tensors).
OUTPUT = """load_ms=5321
run1 "predicted_n":16 "predicted_ms":400.0
run2 "predicted_n":16 "predicted_ms":320.0
print_info: n_layer               = 18
load_tensors:   CPU_Mapped model buffer size =   191.30 MiB
load_tensors: RPC0[127.0.0.1:50052] model buffer size =    50.00 MiB
"""


def test_a_run_gives_the_faster_completion_the_buffers_and_the_layers():
    run = parse_run(OUTPUT)
    assert run.ms_per_token == 20.0  # 320 ms / 16 tokens, the faster of the two
    assert (run.rpc_mb, run.cpu_mb, run.load_ms, run.n_layer) == (50.0, 191.3, 5321, 18)


def test_a_failed_run_says_what_the_host_printed():
    with pytest.raises(MeasureError, match="llama-server ended while loading: boom"):
        parse_run("error=llama-server ended while loading: boom\n")
    with pytest.raises(MeasureError, match="no completion timings"):
        parse_run("load_ms=10\nrun1 \nrun2 \n")


def test_a_worker_costs_what_its_run_took_beyond_the_masters_part():
    """Master 0.05 ms/MiB: the 191.3 MiB left on it take 9.565 ms of the 20 ms token, so the
    worker's 50 MiB took 10.435 ms: 0.2087 ms per MiB."""
    run = parse_run(OUTPUT)
    assert worker_ms_per_mb(run, 0.05, 241.3) == pytest.approx(10.435 / 50)
    # Noise that makes the worker look free is floored at a hundredth of the master's speed.
    assert worker_ms_per_mb(run, 1.0, 241.3) == pytest.approx(0.01)


def test_the_layers_a_worker_gets_while_measured_are_bounded_by_ram_and_link():
    # 18 layers + output = 19 slices of 241.3 MiB: 12.7 MiB each. At 20 Mbit/s for 20 s the link
    # sends 47.7 MiB: 3 slices; at 1000 Mbit/s all 19; 30 MiB of usable RAM: 2; never under 1.
    assert 20 * MIB_PER_MBIT * 20 == pytest.approx(47.68, abs=0.01)
    assert layers_to_measure(18, 241.3, 10_000, 20, 20) == 3
    assert layers_to_measure(18, 241.3, 10_000, 1000, 20) == 19
    assert layers_to_measure(18, 241.3, 30, 1000, 20) == 2
    assert layers_to_measure(18, 241.3, 10_000, 0.1, 20) == 1
