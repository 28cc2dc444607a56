"""`llamafleet plan --record FILE` writes the facts it read in the format `--facts FILE` reads
(llamafleet.facts_file), and what `--facts` cannot plan with is named by file, host and key."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from llamafleet import gather, validate_cli
from llamafleet.gather import Gathered
from llamafleet.inventory_data import load_inventory
from llamafleet.plan import HostInput

INVENTORIES = Path(__file__).resolve().parents[1] / "data" / "inventories"
INVENTORY = str(INVENTORIES / "good.py")
FACTS = json.loads((INVENTORIES / "good.facts.json").read_text())


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="llamafleet")
    validate_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def live_facts() -> dict:
    """What gathering from good.py's hosts returns: the recorded facts plus the port records
    (phone1 deployed before at 50052, the others never)."""
    facts = json.loads(json.dumps(FACTS))
    for name in facts:
        facts[name]["RpcPortRecord"] = None
    facts["phone1"]["RpcPortRecord"] = {"rpc_port": 50052, "rpc_port_base": 50052, "since": "2026-01-01T10:00:00Z"}
    return facts


@pytest.fixture
def fake_gather(monkeypatch):
    """`plan` without --facts gathers these facts instead of connecting."""
    facts = live_facts()

    def gather_facts(path, group_data_dir=None):
        return Gathered([HostInput(h.name, h.data, facts[h.name], h.groups) for h in load_inventory(path, group_data_dir)])

    monkeypatch.setattr(gather, "gather_facts", gather_facts)
    return facts


def test_record_then_plan_from_the_record_gives_the_same_plan(tmp_path, capsys, fake_gather):
    record = tmp_path / "lab.facts.json"
    assert run_cli(["plan", INVENTORY, "--record", str(record), "--json"]) == 0
    live = json.loads(capsys.readouterr().out)
    # The file is the facts read, host by host in inventory order, nothing else.
    saved = json.loads(record.read_text())
    assert saved == fake_gather and list(saved) == ["box", "board", "phone1", "phone2"]
    assert run_cli(["plan", INVENTORY, "--facts", str(record), "--json"]) == 0
    offline = json.loads(capsys.readouterr().out)
    assert offline == live
    # The port record took part: phone1 keeps 50052, board and phone2 are new (lowest free).
    assert [(h["name"], h["rpc_port"]) for h in offline["hosts"][1:]] == [
        ("phone1", 50052), ("board", 50053), ("phone2", 50054)]


def test_record_and_facts_together_are_refused(capsys):
    with pytest.raises(SystemExit):
        run_cli(["plan", INVENTORY, "--record", "a.json", "--facts", "b.json"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_an_unwritable_record_file_is_named(tmp_path, capsys, fake_gather):
    target = tmp_path / "no" / "such" / "dir.json"
    assert run_cli(["plan", INVENTORY, "--record", str(target)]) == 2
    assert capsys.readouterr().err == f"cluster: record: {target}: No such file or directory\n"


def plan_with(tmp_path, capsys, facts) -> str:
    path = tmp_path / "facts.json"
    path.write_text(facts if isinstance(facts, str) else json.dumps(facts))
    assert run_cli(["plan", INVENTORY, "--facts", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    return err.replace(str(path), "FILE")


def edited(change) -> dict:
    facts = json.loads(json.dumps(FACTS))
    change(facts)
    return facts


def test_meminfo_present_without_its_total_is_named_as_such(tmp_path, capsys):
    def no_total(facts):
        facts["phone2"]["MemInfo"] = {"total_kb": 6144000, "available_mb": 3000}

    assert plan_with(tmp_path, capsys, edited(no_total)) == (
        "phone2: facts: MemInfo.total_mb: not in FILE (its MemInfo there has: total_kb, available_mb); "
        "record it again, or set ram_mb\n")


def test_a_missing_meminfo_names_the_facts_the_host_has(tmp_path, capsys):
    assert plan_with(tmp_path, capsys, edited(lambda facts: facts["board"].pop("MemInfo"))) == (
        "board: facts: MemInfo: not in FILE (its facts there: CpuProfile, DevicePlatform); "
        "record it again, or set ram_mb\n")


@pytest.mark.parametrize("change, line", [
    (lambda f: f["board"]["MemInfo"].update(total_mb="4000"),
     "board: facts: MemInfo.total_mb: '4000' is not a positive number in FILE (its MemInfo there has: "
     "total_mb, available_mb); record it again, or set ram_mb"),
    (lambda f: f.update(board=[1]), "board: facts: expected an object of facts by name in FILE, got list"),
    (lambda f: f["board"].update(CpuProfile="x"), "board: facts: CpuProfile: expected an object in FILE, got str 'x'"),
    (lambda f: f["board"].update(RpcPortRecord={"rpc_port": 70000}),
     "board: facts: RpcPortRecord.rpc_port: 70000 in FILE is not a TCP port (1..65535)"),
])
def test_each_unusable_fact_is_named_by_host_and_key(tmp_path, capsys, change, line):
    assert plan_with(tmp_path, capsys, edited(change)) == line + "\n"


@pytest.mark.parametrize("content, line", [
    ("[]", "cluster: facts: FILE: expected a JSON object of host name -> facts, got list"),
    ("{", "cluster: facts: FILE: not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
])
def test_a_file_that_is_not_an_object_of_hosts_is_named(tmp_path, capsys, content, line):
    assert plan_with(tmp_path, capsys, content) == line + "\n"


def test_a_missing_facts_file_is_named(tmp_path, capsys):
    missing = tmp_path / "none.json"
    assert run_cli(["plan", INVENTORY, "--facts", str(missing)]) == 2
    assert capsys.readouterr().err == f"cluster: facts: {missing}: cannot read the facts file: No such file or directory\n"


def test_a_host_planned_from_ram_mb_needs_no_recorded_facts(tmp_path, capsys):
    """Offline planning from data: a host with ram_mb may be missing from the file."""
    inventory = tmp_path / "inv.py"
    inventory.write_text((INVENTORIES / "good.py").read_text().replace(
        '"198.18.0.22"', '"198.18.0.22", "ram_mb": 6000'))
    (tmp_path / "group_data").symlink_to(INVENTORIES / "group_data")
    facts = edited(lambda f: f.pop("phone2"))
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(facts))
    assert run_cli(["plan", str(inventory), "--facts", str(path), "--json"]) == 0, capsys.readouterr().err
    plan = json.loads(capsys.readouterr().out)
    assert next(h for h in plan["hosts"] if h["name"] == "phone2")["ram_mb"] == 6000


def test_a_plan_of_a_meminfo_without_its_total_says_so():
    """Read live, not from a file: the plan's own refusal says the fact was there."""
    from llamafleet.plan import PlanError, make_plan

    master = HostInput("box", {"llama_role": "master"}, {"MemInfo": {"total_mb": 16000}})
    worker = HostInput("w", {}, {"MemInfo": {"available_mb": 300}})
    with pytest.raises(PlanError) as caught:
        make_plan([master, worker], 100)
    assert caught.value.reasons == [
        "w: ram_mb: RAM unknown (the MemInfo fact has no total_mb, only available_mb, and no ram_mb in data)"]
