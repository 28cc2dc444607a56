"""Retiring llamafleet's rules from a firewall backend the host no longer uses
(llamafleet/serving/firewall_retire.py): only what is there, only llamafleet's, and in a real
kernel the old chain and table are really gone while the host's own rules stay."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from scratch import FakeHost, in_scratch_netns, needs_root_netns
from pyinfra.context import ctx_host, ctx_state

from llamafleet.plan.shapes import FirewallPolicy, PortRule
from llamafleet.serving import firewall, firewall_firewalld, firewall_retire, firewall_ufw

POLICY = FirewallPolicy([PortRule(50054, ("198.18.0.11",), "RPC from the master")])
NOTHING = {"iptables_chain": False, "iptables_jumps": 0, "iptables_file": False, "nft_table": False,
           "nft_file": False, "ufw": False, "firewalld_record": False}
RPC = "llamafleet: RPC from the master"


def run_retire(keep: str, **facts) -> tuple[list[str], list[str]]:
    fake = FakeHost("board", {"FirewallTraces": NOTHING, **facts})
    with ctx_state.use(object()), ctx_host.use(fake):
        commands = [c.get_raw_value() for c in firewall_retire.retire_other_backends._inner(keep=keep)]
    return commands, fake.noops


@pytest.mark.parametrize("keep", ["iptables", "nftables", "ufw", "firewalld"])
def test_a_host_with_no_traces_gets_no_command(keep):
    assert run_retire(keep) == ([], [f"no llamafleet rules outside {keep}"])


def test_a_host_moved_to_ufw_loses_the_chain_its_jumps_and_file():
    traces = {**NOTHING, "iptables_chain": True, "iptables_jumps": 2, "iptables_file": True}
    commands, _ = run_retire("ufw", FirewallTraces=traces)
    assert commands == [
        "iptables -w -D INPUT -j LLAMAFLEET", "iptables -w -D INPUT -j LLAMAFLEET",
        "iptables -w -F LLAMAFLEET", "iptables -w -X LLAMAFLEET", f"rm -f {firewall.IPTABLES_RULES_FILE}",
    ]
    # The backend in use keeps its own.
    assert run_retire("iptables", FirewallTraces=traces)[0] == []


def test_a_host_moved_to_firewalld_loses_the_table_and_its_file():
    traces = {**NOTHING, "nft_table": True, "nft_file": True}
    assert run_retire("firewalld", FirewallTraces=traces)[0] == [
        "nft delete table inet llamafleet", f"rm -f {firewall.NFT_RULES_FILE}"]
    assert run_retire("nftables", FirewallTraces=traces)[0] == []


def test_a_host_back_on_iptables_deletes_only_llamafleets_ufw_rules():
    live = firewall_ufw.UfwRules().process([
        "Added user rules (see 'ufw status' for running firewall):",
        f"ufw allow from 198.18.0.11 to any port 50054 proto tcp comment '{RPC}'",
        f"ufw deny 50054/tcp comment '{RPC}'",
        "ufw allow 22/tcp",
        "ufw limit 2222/tcp comment 'SSH port'",
    ])
    commands, _ = run_retire("iptables", FirewallTraces={**NOTHING, "ufw": True}, UfwRules=live)
    assert commands == [
        f"ufw delete allow proto tcp from 198.18.0.11 to any port 50054 comment '{RPC}'",
        f"ufw delete deny proto tcp from any to any port 50054 comment '{RPC}'",
    ]
    assert run_retire("ufw", FirewallTraces={**NOTHING, "ufw": True}, UfwRules=live)[0] == []


def _firewalld(running: bool, zone: str = "public") -> dict:
    rules = firewall_firewalld.wanted_rules(POLICY)
    record = firewall_firewalld.record_text(POLICY, zone).splitlines()
    lines = (["@zone public", "@runtime", *rules, "@permanent", rules[1]] if running else ["@stopped"])
    return firewall_firewalld.FirewalldRichRules().process([*lines, "@record", *record])


def test_a_host_back_on_nftables_removes_the_recorded_rich_rules_and_the_record():
    traces = {**NOTHING, "firewalld_record": True}
    accept, reject = firewall_firewalld.wanted_rules(POLICY)
    commands, _ = run_retire("nftables", FirewallTraces=traces, FirewalldRichRules=_firewalld(True))
    # Only where present: the permanent configuration lost the accept already.
    assert commands == [
        f"firewall-cmd --permanent --zone=public '--remove-rich-rule={reject}'",
        f"firewall-cmd --zone=public '--remove-rich-rule={accept}' '--remove-rich-rule={reject}'",
        f"rm -f {firewall_firewalld.RECORD_FILE}",
    ]
    # Recorded in a zone that is no longer the default one: removed from that zone.
    commands, _ = run_retire("nftables", FirewallTraces=traces, FirewalldRichRules=_firewalld(True, "home"))
    assert commands[0].startswith("firewall-cmd --permanent --zone=home ")


def test_a_stopped_firewalld_keeps_its_record_for_a_later_deploy():
    traces = {**NOTHING, "firewalld_record": True}
    assert run_retire("iptables", FirewallTraces=traces, FirewalldRichRules=_firewalld(False))[0] == []


def test_the_traces_fact_reads_flags_and_the_jump_count():
    fact = firewall_retire.FirewallTraces()
    assert fact.process(["iptables_chain", "iptables_jumps 1", "nft_file", "ufw"]) == {
        **NOTHING, "iptables_chain": True, "iptables_jumps": 1, "nft_file": True, "ufw": True}
    assert fact.process([]) == NOTHING


def test_the_traces_command_finds_nothing_without_the_tools(tmp_path):
    fact = firewall_retire.FirewallTraces()
    command = fact.command(record_file=str(tmp_path / "absent"))
    result = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, env={"PATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert fact.process(result.stdout.splitlines()) == NOTHING
    (tmp_path / "record").write_text("zone public\n")
    present = subprocess.run(["/bin/sh", "-c", fact.command(record_file=str(tmp_path / "record"))],
                             capture_output=True, text=True, env={"PATH": str(tmp_path)})
    assert fact.process(present.stdout.splitlines())["firewalld_record"] is True


def _kernel_commands(commands: list[str]) -> str:
    """The commands that change the kernel: a test never removes files outside its tmp_path."""
    return "\n".join(c for c in commands if not c.startswith("rm "))


@needs_root_netns
@pytest.mark.skipif(not shutil.which("iptables-restore"), reason="iptables not installed")
def test_in_a_real_kernel_the_chain_goes_and_the_hosts_rules_stay(tmp_path):
    rules = tmp_path / "llamafleet.rules"
    rules.write_text(firewall.iptables_restore_file(POLICY))
    setup = (f"iptables -w -A INPUT -p tcp --dport 22 -j ACCEPT; iptables-restore -w --noflush {rules}; "
             "iptables -w -I INPUT 1 -j LLAMAFLEET; iptables -w -A INPUT -j LLAMAFLEET")
    fact = firewall_retire.FirewallTraces()
    found = in_scratch_netns(f"{setup}; {fact.command(record_file=str(tmp_path / 'none'))}")
    traces = fact.process(found.stdout.splitlines())
    assert (traces["iptables_chain"], traces["iptables_jumps"]) == (True, 2)
    commands, _ = run_retire("ufw", FirewallTraces=traces)
    result = in_scratch_netns(f"{setup}\n{_kernel_commands(commands)}\niptables -w -S")
    assert result.returncode == 0, result.stderr
    assert "LLAMAFLEET" not in result.stdout
    assert "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT" in result.stdout.splitlines()


@needs_root_netns
@pytest.mark.skipif(not shutil.which("nft"), reason="nft not installed")
def test_in_a_real_kernel_the_table_goes(tmp_path):
    table = tmp_path / "llamafleet.nft"
    table.write_text(firewall.nft_rules_file(POLICY))
    fact = firewall_retire.FirewallTraces()
    found = in_scratch_netns(f"nft -f {table}; {fact.command(record_file=str(tmp_path / 'none'))}")
    traces = fact.process(found.stdout.splitlines())
    assert traces["nft_table"] is True
    commands, _ = run_retire("firewalld", FirewallTraces=traces)
    result = in_scratch_netns(f"nft -f {table}\n{_kernel_commands(commands)}\nnft list tables")
    assert result.returncode == 0, result.stderr
    assert "llamafleet" not in result.stdout
