"""The firewall operations and facts doing their job, in a real kernel where one is at hand.

The rule (iptables(8), nft(8)): the kernel walks INPUT from its first rule and the first ACCEPT
wins, so a host's broad `-A INPUT -p tcp -j ACCEPT` (ufw, docker, a hand-made rule) placed before
the jump to LLAMAFLEET would open the RPC port to everyone. The jump must be INPUT's first rule:
`-I INPUT 1` (or `-I INPUT`, which means position 1), never `-A INPUT`, which appends. nftables:
llamafleet's own base chain hooks input at a priority below `filter` (0), so it runs before the
usual filter chains.

The other expectations come from what the module promises (its docstring): only llamafleet's own
chain or table changes, commands only for a difference, the rules kept in a file the services
restore from at start; and from the documented order of the FirewallBackend fact.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from scratch import FakeHost, in_scratch_netns, needs_root_netns
from pyinfra.context import ctx_host, ctx_state

from llamafleet.serving import firewall
from llamafleet.serving.firewall import FirewallPolicy, PortRule

POLICY = FirewallPolicy([PortRule(50052, ("198.18.0.10",), "RPC")])
# What `iptables -S LLAMAFLEET` prints for POLICY, written out.
POLICY_RULES = [
    "-A LLAMAFLEET -i lo -p tcp -m tcp --dport 50052 -j ACCEPT",
    "-A LLAMAFLEET -s 198.18.0.10/32 -p tcp -m tcp --dport 50052 -j ACCEPT",
    "-A LLAMAFLEET -p tcp -m tcp --dport 50052 -j DROP",
]


def run_operation(operation, facts: dict, **kwargs) -> tuple[list[str], list[str]]:
    fake = FakeHost("board", facts)
    with ctx_state.use(object()), ctx_host.use(fake):
        commands = [command.get_raw_value() for command in operation._inner(**kwargs)]
    return commands, fake.noops


def inserts_first_into_input(command: str) -> bool:
    """`iptables [-w] -I INPUT [1] -j LLAMAFLEET`: an insert at INPUT's position 1."""
    argv = [word for word in command.split() if word != "-w"]
    return argv in (["iptables", "-I", "INPUT", "1", "-j", "LLAMAFLEET"], ["iptables", "-I", "INPUT", "-j", "LLAMAFLEET"])


# --- (c) the jump to LLAMAFLEET is INPUT's first rule ------------------------------------------


def test_a_missing_jump_is_inserted_first_not_appended():
    live = {"rules": POLICY_RULES, "exists": True, "jump": False}
    commands, _ = run_operation(firewall.iptables_chain, {"IptablesChain": live}, policy=POLICY)
    assert len(commands) == 1 and inserts_first_into_input(commands[0]), commands
    assert not any("-A INPUT" in command for command in commands)


def _nft_priority(text: str) -> int:
    """The hook priority of the table's input chain; `filter` is 0 (nft(8), PRIORITY)."""
    match = re.search(r"type filter hook input priority (filter|-?\d+)(?: ([+-]) (\d+))?;", text)
    assert match, text
    base = 0 if match.group(1) == "filter" else int(match.group(1))
    if match.group(2):
        base += int(match.group(3)) * (1 if match.group(2) == "+" else -1)
    return base


def test_the_nft_chain_runs_before_the_filter_chains_and_accepts_the_rest():
    text = firewall.nft_rules_file(POLICY)
    assert _nft_priority(text) < 0
    assert re.search(r"hook input priority [^;]+; policy accept;", text)




@needs_root_netns
@pytest.mark.skipif(not shutil.which("iptables-restore"), reason="iptables not installed")
def test_after_a_restart_the_jump_comes_before_the_hosts_broad_accept(tmp_path):
    """In a kernel whose INPUT already accepts all TCP, the service's restore lines (run twice,
    as at two restarts) put exactly one jump, as INPUT's first rule."""
    rules_file = tmp_path / "llamafleet.rules"
    rules_file.write_text(firewall.iptables_restore_file(POLICY))
    restore = "\n".join(line.replace(firewall.IPTABLES_RULES_FILE, str(rules_file))
                        for line in firewall.restore_commands("iptables"))
    result = in_scratch_netns(
        "set -e\niptables -w -A INPUT -p tcp -j ACCEPT\n"
        f"{restore}\n{restore}\niptables -w -S INPUT\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "-P INPUT ACCEPT",
        "-A INPUT -j LLAMAFLEET",
        "-A INPUT -p tcp -j ACCEPT",
    ]


@needs_root_netns
@pytest.mark.skipif(not shutil.which("nft"), reason="nft not installed")
def test_the_nft_chain_hooks_input_before_filter_in_a_real_kernel(tmp_path):
    rules_file = tmp_path / "table.nft"
    rules_file.write_text(firewall.nft_rules_file(POLICY))
    result = in_scratch_netns(f"nft -f {rules_file} && nft -j list chain inet llamafleet input")
    assert result.returncode == 0, result.stderr
    chain = next(item["chain"] for item in json.loads(result.stdout)["nftables"] if "chain" in item)
    assert (chain["type"], chain["hook"], chain["policy"]) == ("filter", "input", "accept")
    assert chain["prio"] < 0


# --- the iptables operation, its commands run for real ------------------------------------------


def in_netns(tmp_path, setup: str, commands: list[str], after: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script.sh"
    script.write_text("set -e\n" + setup + "\n" + "\n".join(commands) + "\n" + after + "\n")
    return in_scratch_netns(f"sh {script}")


@needs_root_netns
@pytest.mark.skipif(not shutil.which("iptables-restore"), reason="iptables not installed")
def test_a_first_deploy_creates_the_chain_keeps_its_file_and_jumps_first(tmp_path):
    rules_file = tmp_path / "etc" / "iptables" / "llamafleet.rules"
    live = {"rules": [], "exists": False, "jump": False, "first": False}
    commands, noops = run_operation(firewall.iptables_chain, {"IptablesChain": live}, policy=POLICY,
                                    rules_file=str(rules_file))
    assert noops == []
    result = in_netns(tmp_path, "iptables -w -A INPUT -p tcp -j ACCEPT", commands,
                      "iptables -w -S LLAMAFLEET; echo --; iptables -w -S INPUT")
    assert result.returncode == 0, result.stderr
    chain, inputs = result.stdout.split("--\n")
    assert chain.splitlines() == ["-N LLAMAFLEET", *POLICY_RULES]
    assert inputs.splitlines() == ["-P INPUT ACCEPT", "-A INPUT -j LLAMAFLEET", "-A INPUT -p tcp -j ACCEPT"]
    # The kept file restores the same chain on its own (what the services do at start).
    again = in_scratch_netns(f"iptables-restore -w --noflush {rules_file} && iptables -w -S LLAMAFLEET")
    assert again.stdout.splitlines() == ["-N LLAMAFLEET", *POLICY_RULES]


@needs_root_netns
@pytest.mark.skipif(not shutil.which("iptables-restore"), reason="iptables not installed")
def test_a_jump_pushed_down_is_moved_back_to_the_top(tmp_path):
    live = {"rules": POLICY_RULES, "exists": True, "jump": True, "first": False}
    commands, _ = run_operation(firewall.iptables_chain, {"IptablesChain": live}, policy=POLICY,
                                rules_file=str(tmp_path / "rules"))
    (tmp_path / "in.rules").write_text(firewall.iptables_restore_file(POLICY))
    # The chain as deployed, then something (a firewall tool's restart) put its ACCEPT above the jump.
    setup = (f"iptables-restore -w --noflush {tmp_path}/in.rules\n"
             "iptables -w -A INPUT -p tcp -j ACCEPT\niptables -w -A INPUT -j LLAMAFLEET")
    result = in_netns(tmp_path, setup, commands, "iptables -w -S INPUT")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["-P INPUT ACCEPT", "-A INPUT -j LLAMAFLEET", "-A INPUT -p tcp -j ACCEPT"]


@needs_root_netns
@pytest.mark.skipif(not shutil.which("iptables"), reason="iptables not installed")
def test_the_chain_fact_reads_a_real_kernel(tmp_path):
    fact = firewall.IptablesChain()
    absent = in_scratch_netns(fact.command())
    assert fact.process(absent.stdout.splitlines()) == {"rules": [], "exists": False, "jump": False, "first": False}
    rules = tmp_path / "in.rules"
    rules.write_text(firewall.iptables_restore_file(POLICY))
    present = in_scratch_netns(f"iptables-restore -w --noflush {rules}; iptables -w -I INPUT 1 -j LLAMAFLEET; "
                                f"iptables -w -A INPUT -p tcp -j ACCEPT; {fact.command()}")
    assert fact.process(present.stdout.splitlines()) == {
        "rules": POLICY_RULES, "exists": True, "jump": True, "first": True,
    }


def test_nothing_is_run_when_the_chain_is_as_wanted():
    live = {"rules": POLICY_RULES, "exists": True, "jump": True, "first": True}
    commands, noops = run_operation(firewall.iptables_chain, {"IptablesChain": live}, policy=POLICY)
    assert commands == [] and len(noops) == 1


def test_a_chain_that_differs_is_replaced_from_the_file():
    live = {"rules": POLICY_RULES[:1], "exists": True, "jump": True, "first": True}
    commands, noops = run_operation(firewall.iptables_chain, {"IptablesChain": live}, policy=POLICY,
                                    rules_file="/srv/fw/llamafleet.rules")
    assert noops == []
    assert commands[0] == "mkdir -p /srv/fw"
    assert commands[-1] == "iptables-restore -w --noflush /srv/fw/llamafleet.rules"


def test_a_host_without_iptables_is_refused_by_name():
    with pytest.raises(ValueError) as caught:
        run_operation(firewall.iptables_chain, {"IptablesChain": None}, policy=POLICY)
    assert str(caught.value) == "board: firewall_backend: iptables is not installed on this host"


@pytest.mark.parametrize("backend, operation", [("iptables", "iptables_chain"), ("nftables", "nftables_table")])
def test_the_file_a_deploy_writes_is_the_one_the_services_restore(backend, operation):
    facts = {"IptablesChain": {"rules": [], "exists": False, "jump": False}, "NftTable": []}
    commands, _ = run_operation(getattr(firewall, operation), facts, policy=POLICY)
    written = next(c for c in commands if c.startswith("printf ")).rsplit(" > ", 1)[1]
    assert os.path.isabs(written)
    assert firewall.restore_commands(backend)[0].endswith(f" {written}")


def test_an_empty_policy_protects_nothing_and_breaks_nothing():
    assert firewall.iptables_rules(firewall.FirewallPolicy()) == []
    assert "dport" not in firewall.nft_rules_file(firewall.FirewallPolicy())


# --- the nftables operation -------------------------------------------------------------------------


@needs_root_netns
@pytest.mark.skipif(not shutil.which("nft"), reason="nft not installed")
def test_the_nft_table_is_written_kept_and_read_back(tmp_path):
    rules_file = tmp_path / "etc" / "nftables.d" / "llamafleet.nft"
    commands, noops = run_operation(firewall.nftables_table, {"NftTable": []}, policy=POLICY, rules_file=str(rules_file))
    assert noops == []
    fact = firewall.NftTable()
    result = in_netns(tmp_path, "true", commands, fact.command())
    assert result.returncode == 0, result.stderr
    assert fact.process(result.stdout.splitlines()) == [[50052, ["198.18.0.10/32"]]]
    assert rules_file.is_file()
    absent = in_scratch_netns(fact.command())
    assert fact.process(absent.stdout.splitlines()) == []


def test_nothing_is_run_when_the_table_is_as_wanted():
    commands, noops = run_operation(firewall.nftables_table, {"NftTable": [[50052, ["198.18.0.10/32"]]]}, policy=POLICY)
    assert commands == [] and len(noops) == 1
    commands, noops = run_operation(firewall.nftables_table, {"NftTable": [[50052, ["198.18.0.99/32"]]]}, policy=POLICY)
    assert commands[-1].startswith("nft -f ") and noops == []


def test_a_host_without_nft_is_refused_by_name():
    with pytest.raises(ValueError) as caught:
        run_operation(firewall.nftables_table, {"NftTable": None}, policy=POLICY)
    assert str(caught.value) == "board: firewall_backend: nft is not installed on this host"


def test_the_nft_fact_reads_pretty_json_and_rules_with_counters():
    """`nft -j` output split over lines, and a rule whose counter comes before its matches."""
    table = {"nftables": [
        {"metainfo": {"json_schema_version": 1}},
        {"table": {"family": "inet", "name": "llamafleet"}},
        {"rule": {"expr": [
            {"counter": {"packets": 0, "bytes": 0}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                       "right": {"set": ["198.18.0.10", {"prefix": {"addr": "198.18.0.0", "len": 28}}]}}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
            {"accept": None},
        ]}},
        {"rule": {"expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
            {"drop": None},
        ]}},
    ]}
    lines = json.dumps(table, indent=2).splitlines()
    assert firewall.NftTable().process(lines) == [[8080, ["198.18.0.0/28", "198.18.0.10/32"]]]


# --- which firewall a host has ----------------------------------------------------------------------


def fake_programs(tmp_path, **programs: str) -> dict:
    """A PATH with only these programs (shell bodies) besides the basic tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in programs.items():
        path = bin_dir / name.replace("_", "-")
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


@pytest.mark.parametrize(
    "programs, expected",
    [
        ({}, None),
        ({"iptables": "exit 0"}, "iptables"),
        ({"nft": "exit 0"}, "nftables"),
        ({"iptables": "exit 0", "nft": "exit 0"}, "iptables"),
        ({"ufw": "echo 'Status: active'", "iptables": "exit 0"}, "ufw"),
        ({"ufw": "echo 'Status: inactive'", "iptables": "exit 0"}, "iptables"),
        ({"firewall_cmd": "exit 0", "nft": "exit 0"}, "firewalld"),
        ({"firewall_cmd": "echo 'not running'; exit 252", "nft": "exit 0"}, "nftables"),
    ],
    ids=["none", "iptables", "nftables", "both", "ufw-active", "ufw-inactive", "firewalld-running", "firewalld-stopped"],
)
def test_the_backend_fact_names_the_most_specific_firewall(tmp_path, programs, expected):
    fact = firewall.FirewallBackend()
    result = subprocess.run(["sh", "-c", fact.command()], capture_output=True, text=True,
                            env=fake_programs(tmp_path, **programs))
    assert result.returncode == 0, result.stderr
    assert fact.process(result.stdout.splitlines()) == expected


def test_the_backend_fact_without_output_is_none():
    assert firewall.FirewallBackend().process([]) is None
    assert firewall.FirewallBackend().process(["none"]) is None


@pytest.mark.parametrize("detected", ["ufw", "firewalld", "iptables", "nftables", None])
def test_each_firewall_holds_llamafleets_rules_itself(detected):
    """ufw and firewalld hosts get rules made with the tool, not a chain or table beside it."""
    assert firewall.effective_backend(detected) == detected


def test_an_unknown_backend_name_is_no_backend():
    assert firewall.effective_backend("pf") is None


@pytest.mark.parametrize("backend", ["ufw", "firewalld"])
def test_no_restore_lines_for_a_tool_that_restores_its_own_rules(backend):
    with pytest.raises(ValueError):
        firewall.restore_commands(backend)
