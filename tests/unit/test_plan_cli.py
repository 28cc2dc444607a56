"""`llamafleet plan` end to end, and gathering facts through pyinfra's API."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import types
from pathlib import Path

import pytest
from pyinfra.api import FactBase

from llamafleet import validate_cli
from llamafleet.gather import GatherError, gather_facts, plan_fact_classes

INVENTORIES = Path(__file__).resolve().parents[1] / "data" / "inventories"
FACTS = INVENTORIES / "good.facts.json"


def run_cli(argv: list[str]) -> int:
    """Run one llamafleet sub-command through the parser validate_cli registers."""
    parser = argparse.ArgumentParser(prog="llamafleet")
    validate_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_plan_json_from_recorded_facts(capsys):
    assert run_cli(["plan", str(INVENTORIES / "good.py"), "--facts", str(FACTS), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    hosts = {entry["name"]: entry for entry in plan["hosts"]}
    assert [entry["name"] for entry in plan["hosts"]] == ["box", "board", "phone1", "phone2"]
    assert (hosts["box"]["role"], hosts["box"]["rank"]) == ("master", 0)
    assert hosts["board"]["connect"] == "198.18.0.31:50052" and hosts["board"]["transport"] == "direct"
    assert hosts["phone1"]["connect"] == "127.0.0.1:50053" and hosts["phone1"]["transport"] == "tunnel"
    assert hosts["phone2"]["address"] == "127.0.0.1" and hosts["phone2"]["rpc_port"] == 50054
    assert hosts["phone1"]["march"] == "armv8.2-a+dotprod+fp16" and hosts["phone1"]["threads"] == 4
    # usable: board 4000×0.7−500 = 2300, phone1 5100, phone2 3700 (of 11100)
    assert plan["master"]["tensor_split"] == "0.207,0.46,0.333"
    assert plan["master"]["rpc"] == "198.18.0.31:50052,127.0.0.1:50053,127.0.0.1:50054"
    assert plan["master"]["api_url"] == "http://198.18.0.10:8080"
    assert plan["model_size_mb"] == 1200  # model_size_mb from the inventory's group data


def test_plan_table(capsys):
    assert run_cli(["plan", str(INVENTORIES / "good.py"), "--facts", str(FACTS)]) == 0
    table = capsys.readouterr().out
    assert "198.18.0.31:50052" in table and "-ts 0.207,0.46,0.333" in table
    assert "phone2" in table and "20.7%" in table


def test_plan_that_cannot_fit_exits_2_with_a_suggestion(tmp_path, capsys):
    facts = json.loads(FACTS.read_text())
    for name in ("board", "phone1", "phone2"):
        facts[name]["MemInfo"]["total_mb"] = 1000  # 1000 × 0.7 − 500 = 200 MB each
    small = tmp_path / "small.json"
    small.write_text(json.dumps(facts))
    assert run_cli(["plan", str(INVENTORIES / "good.py"), "--facts", str(small)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "cluster: model: 1200 MB does not fit the workers' usable RAM (600 MB in total)" in err
    # The model's name carries its quantisation (tiny-Q8_0.gguf): a smaller one is named.
    # 1200 × 3.91 / 8.5 ≈ 552 MB ≤ 600 MB.
    assert "suggestion: use a smaller quantisation: Q3_K_M of this model is about 552 MB" in err


def test_plan_runs_check_first(capsys):
    assert run_cli(["plan", str(INVENTORIES / "bad_two_masters.py"), "--facts", str(FACTS)]) == 2
    assert "board: llama_role: second master" in capsys.readouterr().err


def test_plan_without_facts_for_a_host(tmp_path, capsys):
    facts = json.loads(FACTS.read_text())
    del facts["phone2"]
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(facts))
    assert run_cli(["plan", str(INVENTORIES / "good.py"), "--facts", str(partial)]) == 2
    assert capsys.readouterr().err == (
        f"phone2: facts: not in {partial} (it has facts of: box, board, phone1); record them with "
        f"`llamafleet plan INVENTORY --record {partial}`, or set ram_mb\n")


# --- gathering through pyinfra ------------------------------------------------------------------


class ProcMemInfo(FactBase):
    """Test stand-in for llamafleet.facts.MemInfo: MemTotal/MemAvailable in MB."""

    def command(self) -> str:
        return "cat /proc/meminfo || true"

    def process(self, output):
        values = {}
        for line in output:
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                values[key] = int(rest.split()[0]) // 1024
        return {"total_mb": values.get("MemTotal"), "available_mb": values.get("MemAvailable")}


class Uname(FactBase):
    """Test stand-in for the arch part of llamafleet.facts.CpuProfile."""

    def command(self) -> str:
        return "uname -m || true"

    def process(self, output):
        return {"arch": output[0].strip() if output else None}


def _closed_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_gather_reads_facts_through_pyinfra(tmp_path):
    # @local runs the fact commands on this machine through pyinfra's local connector.
    inventory = tmp_path / "inv.py"
    inventory.write_text('hosts = [("@local", {"llama_role": "master"})]\n')
    gathered = gather_facts(inventory, fact_classes={"MemInfo": ProcMemInfo, "CpuProfile": Uname})
    assert gathered.errors == {}
    [local] = gathered.hosts
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kb = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
    assert local.facts["MemInfo"]["total_mb"] == total_kb // 1024
    import platform

    assert local.facts["CpuProfile"]["arch"] == platform.machine()
    assert local.data["llama_role"] == "master" and local.data["rpc_port_base"] == 50052


def test_gather_reads_the_cpu_profile_with_the_hosts_cpu_table(tmp_path):
    """The plan's facts go through the host's llama_cpu_table: a good file gives the profile,
    a missing one is this host's error (`llamafleet check` names it before a plan reads it)."""
    from llamafleet.facts import CpuProfile

    table = tmp_path / "cpu.yaml"
    table.write_text("cores:\n  - {implementer: 0x43, part: 0x0a2, name: thunderxt81}\n")
    inventory = tmp_path / "inv.py"
    inventory.write_text(f'hosts = [("@local", {{"llama_role": "master", "llama_cpu_table": "{table}"}})]\n')
    gathered = gather_facts(inventory, fact_classes={"CpuProfile": CpuProfile})
    assert gathered.errors == {} and gathered.hosts[0].facts["CpuProfile"]["logical_cpus"] >= 1
    missing = tmp_path / "inv_missing.py"
    missing.write_text(f'hosts = [("@local", {{"llama_role": "master", "llama_cpu_table": "{tmp_path}/no.yaml"}})]\n')
    gathered = gather_facts(missing, fact_classes={"CpuProfile": CpuProfile})
    assert "CpuTableError" in gathered.errors["@local"] and "no.yaml: no such file" in gathered.errors["@local"]


def test_gather_reports_a_host_it_cannot_reach(tmp_path):
    port = _closed_loopback_port()
    inventory = tmp_path / "inv.py"
    inventory.write_text(
        f'hosts = ["@local", ("ghost", {{"ssh_hostname": "127.0.0.1", "ssh_port": {port}, '
        '"ssh_look_for_keys": False, "ssh_allow_agent": False})]\n'
    )
    gathered = gather_facts(inventory, fact_classes={"MemInfo": ProcMemInfo})
    assert list(gathered.errors) == ["ghost"]
    assert gathered.errors["ghost"].startswith("cannot connect")
    assert gathered.hosts[0].facts["MemInfo"]["total_mb"] > 0
    assert gathered.hosts[1].facts == {}


def test_fact_classes_are_found_in_facts_submodules(tmp_path, monkeypatch):
    package_dir = tmp_path / "facts"
    package_dir.mkdir()
    (package_dir / "device.py").write_text(
        "class CpuProfile: pass\nclass MemInfo: pass\nclass DevicePlatform: pass\n"
    )
    package = types.ModuleType("llamafleet.facts")
    package.__path__ = [str(package_dir)]
    monkeypatch.setitem(sys.modules, "llamafleet.facts", package)
    monkeypatch.delitem(sys.modules, "llamafleet.facts.device", raising=False)
    classes = plan_fact_classes()
    assert sorted(classes) == ["CpuProfile", "DevicePlatform", "MemInfo"]
    assert classes["MemInfo"].__module__ == "llamafleet.facts.device"


def test_missing_fact_classes_are_named(tmp_path, monkeypatch):
    package = types.ModuleType("llamafleet.facts")
    package.__path__ = [str(tmp_path)]
    package.MemInfo = object
    monkeypatch.setitem(sys.modules, "llamafleet.facts", package)
    with pytest.raises(GatherError, match="no CpuProfile, DevicePlatform"):
        plan_fact_classes()
