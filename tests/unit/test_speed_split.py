"""The split by measured speed (llamafleet.plan.speed, llamafleet.plan.split) on worked examples.

Figures by hand: box (master) 16000 MB RAM, phone1 8000, board 4000, so usable (× 0.7 − 500)
is 10700, 5100 and 2300 MB. Speeds in ms per token per MiB held: a model of M MiB split with
held_i MiB on device i takes Σ speed_i × held_i ms per token.
"""

from __future__ import annotations

import pytest

from llamafleet.facts.speed import parse_speed_record
from llamafleet.plan import PlanError, make_plan, render_table
from llamafleet.plan.speed import SPEED_FACT, fastest_first, master_layers

from test_plan_worked import cluster


def measured(hosts, speeds: dict, n_layer: int = 23, links: dict | None = None):
    """`hosts` with a SpeedRecord each named in `speeds` (the master's with n_layer)."""
    out = []
    for host in hosts:
        facts = dict(host.facts)
        if host.name in speeds:
            record = {"ms_per_mb": speeds[host.name], "device_class": f"class-{host.name}",
                      "measured_at": "2026-12-03T10:00:00Z"}
            if host.data.get("llama_role") == "master":
                record["n_layer"] = n_layer
            if links and host.name in links:
                record["link_mbit"] = links[host.name]
            facts[SPEED_FACT] = record
        out.append(type(host)(host.name, host.data, facts, host.groups))
    return out


def test_the_record_parses_and_a_broken_one_is_no_record():
    lines = ["# Managed by llamafleet", "role=worker", "ms_per_mb=0.42", "link_mbit=18.5", "threads=2",
             "measured_at=2026-12-03T10:00:00Z"]
    assert parse_speed_record(lines) == {"role": "worker", "ms_per_mb": 0.42, "link_mbit": 18.5, "threads": 2,
                                         "measured_at": "2026-12-03T10:00:00Z"}
    assert parse_speed_record(["ms_per_mb=fast"]) is None
    assert parse_speed_record(["ms_per_mb=0"]) is None
    assert parse_speed_record([]) is None


def test_fastest_first_fills_the_fastest_device_up_to_its_ram():
    # 3000 MiB over speeds 2, 1, 4 with caps 1000, 1500, 5000: the 1-device takes 1500, the
    # 2-device 1000, the 4-device the last 500.
    assert fastest_first([2, 1, 4], [1000, 1500, 5000], 3000) == [1000, 1500, 500]
    assert fastest_first([2, 1], [1000, 1500], 3000) is None


def test_master_layers_counts_the_output_layer():
    # 23 layers + output = 24: a quarter on the master is 6 layers on its CPU, -ngl 18.
    assert master_layers(0.25, 23) == 18
    assert master_layers(0.0, 23) == 24
    assert master_layers(1.0, 23) == 0


def test_the_faster_worker_holds_all_it_may_and_the_slow_one_nothing_with_the_reason():
    """3000 MB in 23 layers + output, 125 MB a layer, master not computing: board (0.1 ms/MiB)
    holds its 2300 usable less a layer of room, 2175; phone1 (0.5) the remaining 825: 0.725 and
    0.275 of the model; 0.1 × 2175 + 0.5 × 825 = 630 ms."""
    hosts = measured(cluster(master_computes=False), {"box": 0.05, "phone1": 0.5, "board": 0.1})
    plan = make_plan(hosts, 3000)
    assert plan.master.split_by == "speed"
    assert [round(worker.split, 3) for worker in plan.workers()] == [0.275, 0.725]
    assert plan.master.tensor_split == "0.275,0.725" and plan.master.gpu_layers == "all"
    assert plan.master.predicted_ms == pytest.approx(630.0)

    # A model board holds alone: phone1 gets nothing, is left out of --rpc, and the plan says why.
    plan = make_plan(hosts, 2000)
    phone1, board = plan.workers()
    assert (phone1.split, board.split) == (0.0, 1.0)
    assert plan.master.rpc == board.connect and plan.master.tensor_split == "1"
    assert any(hint.startswith("phone1 holds nothing: 0.5 ms/token per MiB") and "board 0.1" in hint
               for hint in plan.hints), plan.hints
    # Without phone1 nothing changes; without board, phone1 serves (faster rows first).
    assert [(row.group, row.workers) for row in plan.master.degraded] == [(("board",), ("board",)),
                                                                          (("phone1",), ("phone1",))]
    assert "without board: -ts 1 over phone1" in render_table(plan)


def test_the_master_computes_when_measured_faster_and_its_layers_leave_the_rpc_split():
    """box at 0.05 ms/MiB with 10700 usable but an mmap master keeps the 3000 MiB model mapped:
    7700 MiB for layers, so it takes the whole model: -ngl 0, no worker in --rpc."""
    hosts = measured(cluster(), {"box": 0.05, "phone1": 0.5, "board": 0.1})
    plan = make_plan(hosts, 3000)
    assert plan.master.gpu_layers == "0" and plan.master.rpc == "" and plan.hosts[0].split == 1.0
    table = render_table(plan)
    assert "--rpc (none: the master alone)" in table and "without board: as planned (it holds nothing)" in table
    assert any(hint.startswith("board holds nothing") and "the master's CPU alone is faster" in hint
               for hint in plan.hints), plan.hints
    # With a little master (4000 MB RAM: 2300 usable, "none" load mode since 3000 > 2300) it may
    # hold 2300 less a layer, 2175 of 3000 MiB: 0.725 of 24 layers = 17.4 → 17 on its CPU (never
    # more than it may hold), -ngl 7; board holds the other 7 layers.
    small = [type(h)(h.name, {**h.data, "ram_mb": 4000}, h.facts, h.groups) if h.name == "box" else h for h in hosts]
    plan = make_plan(small, 3000)
    assert plan.master.load_mode == "none" and plan.master.gpu_layers == "7"
    assert plan.hosts[0].split == pytest.approx(17 / 24)
    assert [worker.split for worker in plan.workers()] == [0.0, pytest.approx(7 / 24)]
    assert "-ngl 7" in render_table(plan)


def test_master_computes_asked_without_a_measurement_is_refused_naming_the_key():
    with pytest.raises(PlanError) as error:
        make_plan(cluster(master_computes=True), 3000)
    assert "box: master_computes:" in str(error.value) and "plan --measure" in str(error.value)


def test_split_by_speed_asked_with_a_worker_unmeasured_is_refused_and_auto_falls_back_to_ram():
    hosts = measured(cluster(llama_split_by="speed"), {"box": 0.05, "phone1": 0.5})
    with pytest.raises(PlanError) as error:
        make_plan(hosts, 3000)
    assert 'box: llama_split_by: "speed", but board has no measured speed' in str(error.value)
    plan = make_plan(measured(cluster(), {"box": 0.05, "phone1": 0.5}), 3000)
    assert plan.master.split_by == "ram" and plan.master.gpu_layers == "all"
    assert any("board not measured" in hint for hint in plan.hints)


def test_split_by_ram_when_asked_and_a_hand_split_wins_over_speed():
    speeds = {"box": 0.05, "phone1": 0.5, "board": 0.1}
    assert make_plan(measured(cluster(llama_split_by="ram"), speeds), 3000).master.tensor_split == "0.689,0.311"
    hand = make_plan(measured(cluster(llama_tensor_split=[0.5, 0.5]), speeds), 3000)
    assert hand.master.split_by == "hand" and hand.master.tensor_split == "0.5,0.5"


def test_the_tensor_cache_follows_the_measured_link_unless_set():
    hosts = measured(cluster(master_computes=False), {"box": 0.05, "phone1": 0.5, "board": 0.1},
                     links={"phone1": 20.0, "board": 900.0})
    phone1, board = make_plan(hosts, 3000).workers()
    assert (phone1.rpc_cache, board.rpc_cache) == (True, False)
    assert (phone1.link_mbit, board.link_mbit) == (20.0, 900.0)
    off = [type(h)(h.name, {**h.data, "rpc_cache": False}, h.facts, h.groups) for h in hosts]
    assert [worker.rpc_cache for worker in make_plan(off, 3000).workers()] == [False, False]
    assert [worker.rpc_cache for worker in make_plan(cluster(), 3000).workers()] == [False, False]


def test_a_device_of_a_measured_class_takes_its_speed_but_not_its_link():
    hosts = measured(cluster(master_computes=False), {"box": 0.05, "board": 0.1}, links={"board": 20.0})
    # phone1 shares board's CPU class: its speed is board's, its link unknown (no cache).
    board_class = hosts[2].facts[SPEED_FACT]["device_class"] = "aarch64 armv8.2-a+dotprod t4"
    assert board_class
    plan = make_plan(hosts, 3000)
    phone1 = plan.host("phone1")
    assert plan.master.split_by == "speed" and phone1.ms_per_mb == 0.1 and phone1.speed_from == "board"
    assert phone1.link_mbit is None and phone1.rpc_cache is False


def test_measuring_is_planned_without_the_split_that_needs_the_measurement(monkeypatch):
    """`plan --measure` on an inventory asking for the speed split (and the master computing)
    before anything was measured: the measurement is planned by RAM, not refused."""
    import llamafleet.measure
    from llamafleet.validate_cli import EXIT_OK, _measure

    seen = []
    monkeypatch.setattr(llamafleet.measure, "measure", lambda plan, hosts, say: seen.append(plan))
    hosts = cluster(llama_split_by="speed", master_computes=True)
    assert _measure(hosts, 3000) == EXIT_OK
    assert seen[0].master.split_by == "ram" and [w.name for w in seen[0].workers()] == ["phone1", "board"]


def test_records_of_another_model_or_role_are_not_used():
    """A record of another model (its n_layer would set -ngl) or of the other role (a master's
    figure has no link in it) leaves the device unmeasured: the plan splits by RAM."""
    hosts = measured(cluster(model_sha256="a" * 64), {"box": 0.05, "phone1": 0.5, "board": 0.1})
    for host in hosts:
        host.facts[SPEED_FACT]["model_sha256"] = "a" * 64
        host.facts[SPEED_FACT]["role"] = "master" if host.name == "box" else "worker"
    assert make_plan(hosts, 3000).master.split_by == "speed"
    hosts[2].facts[SPEED_FACT]["model_sha256"] = "b" * 64
    plan = make_plan(hosts, 3000)
    assert plan.master.split_by == "ram" and plan.host("board").ms_per_mb is None
    hosts[2].facts[SPEED_FACT].update(model_sha256="a" * 64, role="master")
    assert make_plan(hosts, 3000).host("board").ms_per_mb is None
