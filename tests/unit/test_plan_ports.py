"""Stable RPC ports and ranks (llamafleet.plan.ports): a worker keeps the port recorded on it at
its first deploy while devices are inserted anywhere in the inventory or removed; new workers get
the lowest free port; rpc_port wins; conflicts are refused naming host and key.

Each case deploys twice in words: a first plan, its ports "recorded" on the devices (as
tasks/ports.py writes them), then a plan of the changed inventory with those records."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamafleet.facts.ports import parse_port_record
from llamafleet.plan import PORT_RECORD_FACT, HostInput, PlanError, make_plan
from llamafleet.templates import render

INVENTORIES = Path(__file__).resolve().parents[1] / "data" / "inventories"
MODEL = {"model_url": "https://example.invalid/m-Q4_0.gguf"}
FIRST = "2026-01-01T10:00:00Z"
LATER = "2026-03-01T10:00:00Z"


def worker(name: str, record: dict | None = None, ram: int = 8000, **data) -> HostInput:
    facts = {"MemInfo": {"total_mb": ram}, "DevicePlatform": {"platform": "linux", "home": "/root"}}
    if record is not None:
        facts[PORT_RECORD_FACT] = record
    return HostInput(name, {"ssh_hostname": f"{name}.lan", **MODEL, **data}, facts)


MASTER = HostInput("box", {"ssh_hostname": "box.lan", "llama_role": "master", **MODEL},
                   {"MemInfo": {"total_mb": 16000}, "DevicePlatform": {"platform": "linux", "home": "/root"}})


def plan_of(*workers: HostInput, master: HostInput = MASTER):
    return make_plan([master, *workers], 1000)


def ports(plan) -> dict[str, int]:
    return {host.name: host.rpc_port for host in plan.workers()}


def order(plan) -> list[str]:
    return [host.name for host in plan.workers()]


def deployed(plan, since: str = FIRST) -> dict[str, dict]:
    """What the deploy records on each worker (tasks/ports.py): its port, base and since when."""
    return {host.name: {"rpc_port": host.rpc_port, "rpc_port_base": 50052, "since": host.rpc_port_since or since}
            for host in plan.workers()}


def redeploy(records: dict[str, dict], *names: str, since: str = LATER, **data_by_name) -> object:
    """A plan of workers `names` (inventory order), each with its record when it has one."""
    return plan_of(*(worker(name, records.get(name), **data_by_name.get(name, {})) for name in names))


@pytest.fixture
def first():
    """A first deploy of a, b, c: no records, ports from rpc_port_base in inventory order."""
    plan = plan_of(worker("a"), worker("b"), worker("c"))
    assert ports(plan) == {"a": 50052, "b": 50053, "c": 50054}
    assert [h.rank for h in plan.workers()] == [1, 2, 3]
    assert all(h.rpc_port_since is None for h in plan.workers())  # new ports: the deploy dates them
    return deployed(plan)


@pytest.mark.parametrize("names", [("new", "a", "b", "c"), ("a", "new", "b", "c"), ("a", "b", "c", "new")],
                         ids=["front", "middle", "end"])
def test_a_device_inserted_anywhere_moves_no_other_worker(first, names):
    plan = redeploy(first, *names)
    assert ports(plan) == {"a": 50052, "b": 50053, "c": 50054, "new": 50055}
    # The others keep their ranks and place in --rpc; the newcomer comes last (by port).
    assert order(plan) == ["a", "b", "c", "new"]
    assert plan.master.rpc == "a.lan:50052,b.lan:50053,c.lan:50054,new.lan:50055"
    # The kept ports keep their date, so a second deploy rewrites no record.
    assert [h.rpc_port_since for h in plan.workers()] == [FIRST, FIRST, FIRST, None]


def test_a_removed_worker_frees_its_port_for_the_next_new_one(first):
    plan = redeploy(first, "a", "c")
    assert ports(plan) == {"a": 50052, "c": 50054}
    assert order(plan) == ["a", "c"] and plan.master.rpc == "a.lan:50052,c.lan:50054"
    # A new device takes the lowest free port, b's, and its place by port.
    records = {**first, **deployed(plan)}
    records.pop("b")
    plan = redeploy(records, "d", "a", "c")
    assert ports(plan) == {"a": 50052, "c": 50054, "d": 50053}
    assert order(plan) == ["a", "d", "c"]


def test_two_new_hosts_at_once_take_the_lowest_free_ports_in_inventory_order(first):
    del first["b"]  # b was removed: 50053 is free
    plan = redeploy(first, "y", "a", "x", "c")
    assert ports(plan) == {"a": 50052, "c": 50054, "y": 50053, "x": 50055}
    assert order(plan) == ["a", "y", "c", "x"]


def test_explicit_rpc_port_wins_and_new_workers_avoid_it(first):
    plan = redeploy(first, "a", "b", "c", "new", b={"rpc_port": 6000}, new={"rpc_port": 50055})
    assert ports(plan) == {"a": 50052, "b": 6000, "c": 50054, "new": 50055}
    assert order(plan) == ["b", "a", "c", "new"]  # ranked by port
    plan = redeploy(first, "a", "b", "c", "new", "other", b={"rpc_port": 6000}, new={"rpc_port": 50053})
    # b's old port is asked for by `new`: b moved to 6000 by its own rpc_port, so no conflict;
    # `other` gets the lowest port nobody holds.
    assert ports(plan) == {"a": 50052, "b": 6000, "c": 50054, "new": 50053, "other": 50055}


def test_a_worker_setting_its_own_recorded_port_keeps_the_records_date(first):
    plan = redeploy(first, "a", "b", b={"rpc_port": 50053})
    assert plan.host("b").rpc_port == 50053 and plan.host("b").rpc_port_since == FIRST


def test_an_explicit_port_that_another_worker_holds_is_refused_naming_both(first):
    with pytest.raises(PlanError) as caught:
        redeploy(first, "a", "b", "c", "new", new={"rpc_port": 50053})
    assert caught.value.reasons == [
        f"new: rpc_port: 50053 is b's RPC port (recorded on b since {FIRST}); two workers cannot share it"]
    assert "set rpc_port on one of the two hosts" in caught.value.suggestion


def test_of_two_records_of_one_port_the_later_holds_it(first):
    # b was taken out without `llamafleet remove`; d got its port; b comes back with its old record.
    d_record = {"rpc_port": 50053, "rpc_port_base": 50052, "since": LATER}
    plan = redeploy({**first, "d": d_record}, "b", "a", "c", "d")
    assert ports(plan) == {"a": 50052, "d": 50053, "c": 50054, "b": 50055}
    assert plan.host("b").rpc_port_since is None and plan.host("d").rpc_port_since == LATER


def test_a_new_rpc_port_base_numbers_its_workers_afresh(first):
    plan = redeploy(first, "a", "b", "c", b={"rpc_port_base": 51000})
    assert ports(plan) == {"a": 50052, "b": 51000, "c": 50054}
    assert plan.host("b").rpc_port_since is None


def test_a_masters_record_and_a_record_without_a_port_are_ignored(first):
    master = HostInput(MASTER.name, MASTER.data, {**MASTER.facts, PORT_RECORD_FACT: {"rpc_port": 50052}})
    plan = plan_of(worker("a"), worker("b", {"since": FIRST}), master=master)
    assert ports(plan) == {"a": 50052, "b": 50053}


def test_the_hand_split_follows_rank_order(first):
    master = HostInput(MASTER.name, {**MASTER.data, "llama_tensor_split": [0.5, 0.3, 0.2]}, MASTER.facts)
    records = {**first}
    del records["a"]
    plan = plan_of(worker("new"), worker("b", records["b"]), worker("c", records["c"]), master=master)
    # new takes a's freed 50052: it is rank 1 and gets the first proportion.
    assert order(plan) == ["new", "b", "c"]
    assert [h.split for h in plan.workers()] == [0.5, 0.3, 0.2]


def _deploy_plan(limit: list[str] | None, facts: dict) -> dict:
    """The plan deploy.py makes (llamafleet.serving.cluster.current_plan) on good.py, as
    `pyinfra --limit` sets pyinfra's State up; each host's facts come from `facts`."""
    from pyinfra.api import Config, State
    from pyinfra.context import ctx_inventory, ctx_state

    from llamafleet.inventory_data import make_pyinfra_inventory
    from llamafleet.serving import cluster

    state = State(check_for_changes=False)
    with ctx_state.use(state):
        inventory = make_pyinfra_inventory(INVENTORIES / "good.py")
        hosts = [inventory.get_host(name) for name in limit] if limit else None
        state.init(inventory, Config(), initial_limit=hosts)
        with ctx_inventory.use(inventory):
            read = []
            original = cluster.host_facts
            cluster.host_facts = lambda target: read.append(target.name) or facts[target.name]
            try:
                plan = cluster.current_plan().to_dict()
            finally:
                cluster.host_facts = original
                cluster._PLAN_CACHE.pop(id(inventory), None)
    assert sorted(read) == ["board", "box", "phone1", "phone2"], "a host's facts were not read"
    return plan


def test_a_limited_run_plans_every_host_as_a_full_run_does():
    """`--limit phone2` loads phone2's task files only, but the plan reads every host's facts
    and records: phone2 cannot take another's port, and no split or port of the others moves."""
    import json

    facts = json.loads((INVENTORIES / "good.facts.json").read_text())
    facts["board"][PORT_RECORD_FACT] = {"rpc_port": 50053, "rpc_port_base": 50052, "since": FIRST}
    facts["phone1"][PORT_RECORD_FACT] = {"rpc_port": 50052, "rpc_port_base": 50052, "since": FIRST}
    limited, full = _deploy_plan(["phone2"], facts), _deploy_plan(None, facts)
    assert limited == full
    assert [(h["name"], h["rpc_port"]) for h in limited["hosts"][1:]] == [
        ("phone1", 50052), ("board", 50053), ("phone2", 50054)]


def test_the_record_the_deploy_writes_is_the_one_the_plan_reads():
    text = render("llamafleet/etc/rpc-port.j2", rpc_port=50053, rpc_port_base=50052, since=FIRST)
    assert text.startswith("# Managed by llamafleet")
    assert parse_port_record(text.splitlines()) == {"rpc_port": 50053, "rpc_port_base": 50052, "since": FIRST}
    plan = plan_of(worker("a"), worker("b", parse_port_record(text.splitlines())))
    assert ports(plan) == {"a": 50052, "b": 50053} and plan.host("b").rpc_port_since == FIRST


@pytest.mark.parametrize("lines", [[], ["rpc_port=x"], ["# rpc_port=50052"], ["since=2026"]])
def test_no_record_or_a_record_without_a_port_is_none(lines):
    assert parse_port_record(lines) is None


def test_the_record_is_read_through_pyinfra_where_the_layout_puts_it(tmp_path):
    """gather_facts reads each host's record from <llamafleet_dir>/etc/rpc-port (@local runs the
    fact's command on this machine); a host without one reads None."""
    from llamafleet.facts import MemInfo
    from llamafleet.gather import gather_facts

    base = tmp_path / "lf"
    (base / "etc").mkdir(parents=True)
    (base / "etc" / "rpc-port").write_text(
        render("llamafleet/etc/rpc-port.j2", rpc_port=50060, rpc_port_base=50052, since=FIRST))
    inventory = tmp_path / "inv.py"
    inventory.write_text(f'hosts = [("@local", {{"llama_role": "master", "llamafleet_dir": "{base}"}})]\n')
    gathered = gather_facts(inventory, fact_classes={"MemInfo": MemInfo})
    assert gathered.errors == {}
    assert gathered.hosts[0].facts[PORT_RECORD_FACT] == {"rpc_port": 50060, "rpc_port_base": 50052, "since": FIRST}
    (base / "etc" / "rpc-port").unlink()
    assert gather_facts(inventory, fact_classes={"MemInfo": MemInfo}).hosts[0].facts[PORT_RECORD_FACT] is None


def test_a_limited_run_with_a_host_that_does_not_answer_says_which(tmp_path):
    """Its recorded port is unknown, so a new worker could take it: the plan stops, naming it."""
    import socket

    from pyinfra.api import Config, State
    from pyinfra.context import ctx_inventory, ctx_state

    from llamafleet.inventory_data import make_pyinfra_inventory
    from llamafleet.serving import cluster

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inventory_file = tmp_path / "inv.py"
    inventory_file.write_text(
        'hosts = [("@local", {"llama_role": "master"}), ("ghost", {"ssh_hostname": "127.0.0.1", '
        f'"ssh_port": {port}, "ssh_look_for_keys": False, "ssh_allow_agent": False}})]\n')
    state = State(check_for_changes=False)
    with ctx_state.use(state):
        inventory = make_pyinfra_inventory(inventory_file)
        state.init(inventory, Config(), initial_limit=[inventory.get_host("@local")])
        with ctx_inventory.use(inventory):
            try:
                with pytest.raises(PlanError) as caught:
                    cluster.current_plan()
            finally:
                cluster._PLAN_CACHE.pop(id(inventory), None)
    [reason] = caught.value.reasons
    assert reason.startswith("ghost: facts: cannot connect (") and reason.endswith("the plan reads every host, with --limit too")
