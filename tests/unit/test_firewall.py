"""Firewall rules: generated for exactly the protected ports, and read back from a live kernel."""

from __future__ import annotations

import json
import shutil

import pytest
from scratch import in_scratch_netns, needs_root_netns

from llamafleet.serving.firewall import (
    CHAIN,
    IPTABLES_RULES_FILE,
    FirewallPolicy,
    IptablesChain,
    NftTable,
    PortRule,
    iptables_restore_file,
    iptables_rules,
    nft_policy_signature,
    restore_commands,
    nft_rules_file,
)

POLICY = FirewallPolicy([
    PortRule(50052, ("198.18.0.21",), "RPC"),
    PortRule(8080, ("198.18.0.21", "198.18.0.0/28"), "API"),
])


def test_each_port_accepts_its_sources_and_loopback_then_drops():
    rules = iptables_rules(POLICY)
    assert rules[:3] == [
        f"-A {CHAIN} -i lo -p tcp -m tcp --dport 50052 -j ACCEPT",
        f"-A {CHAIN} -s 198.18.0.21/32 -p tcp -m tcp --dport 50052 -j ACCEPT",
        f"-A {CHAIN} -p tcp -m tcp --dport 50052 -j DROP",
    ]
    assert f"-A {CHAIN} -s 198.18.0.0/28 -p tcp -m tcp --dport 8080 -j ACCEPT" in rules
    # Nothing about other ports (SSH stays as the user had it).
    assert all("--dport 22 " not in rule for rule in rules)


def test_restore_file_declares_only_our_chain():
    text = iptables_restore_file(POLICY)
    assert text.count(":") >= 1 and f":{CHAIN} - [0:0]" in text
    assert ":INPUT" not in text and text.rstrip().endswith("COMMIT")


def test_iptables_fact_parses_chain_and_jump():
    fact = IptablesChain()
    output = ["-N LLAMAFLEET", "-A LLAMAFLEET -p tcp -m tcp --dport 1 -j DROP", "JUMP"]
    assert fact.process(output) == {
        "rules": ["-A LLAMAFLEET -p tcp -m tcp --dport 1 -j DROP"], "exists": True, "jump": True, "first": False,
    }
    assert fact.process([*output, "FIRST"])["first"] is True
    assert fact.process(["NO-CHAIN"]) == {"rules": [], "exists": False, "jump": False, "first": False}
    assert fact.process(["NO-IPTABLES"]) is None




@needs_root_netns
@pytest.mark.skipif(not shutil.which("iptables-restore"), reason="iptables not installed")
def test_iptables_rules_round_trip_through_a_real_kernel(tmp_path):
    """What we generate is what `iptables -S` prints back: the fact compares like with like."""
    rules_file = tmp_path / "rules"
    rules_file.write_text(iptables_restore_file(POLICY))
    result = in_scratch_netns(f"iptables-restore -w --noflush {rules_file} && iptables -w -S {CHAIN}")
    assert result.returncode == 0, result.stderr
    live = IptablesChain().process(result.stdout.splitlines())
    assert live["rules"] == iptables_rules(POLICY)


@needs_root_netns
@pytest.mark.skipif(not shutil.which("iptables-restore"), reason="iptables not installed")
def test_restore_puts_the_jump_first_even_after_a_users_accept(tmp_path):
    """A user's `-A INPUT -j ACCEPT`, our jump pushed below it (`-I INPUT 1` of the user's rule):
    the services' restore lines move the jump back to the top, once, and the fact says so."""
    rules_file = tmp_path / "rules"
    rules_file.write_text(iptables_restore_file(POLICY))
    restore = "; ".join(restore_commands("iptables")).replace(IPTABLES_RULES_FILE, str(rules_file))
    fact = IptablesChain().command()
    result = in_scratch_netns(
        f"iptables -w -N {CHAIN}; iptables -w -A INPUT -j {CHAIN}; iptables -w -I INPUT 1 -j ACCEPT; "
        f"echo BEFORE; {fact}; echo AFTER; {restore}; {restore}; {fact}; iptables -w -S INPUT"
    )
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.split("BEFORE", 1)[1].split("AFTER", 1)
    assert "JUMP" in before and "FIRST" not in before  # the probe sees a pushed-down jump
    assert "FIRST" in after
    rules = [line for line in after.splitlines() if line.startswith("-A INPUT")]
    assert rules == [f"-A INPUT -j {CHAIN}", "-A INPUT -j ACCEPT"]  # first, once; the user's rule kept


@needs_root_netns
@pytest.mark.skipif(not shutil.which("nft"), reason="nft not installed")
def test_nft_table_round_trip_through_a_real_kernel(tmp_path):
    rules_file = tmp_path / "table.nft"
    rules_file.write_text(nft_rules_file(POLICY))
    # Applied twice: the file must replace the table, not fail or duplicate rules.
    result = in_scratch_netns(f"nft -f {rules_file} && nft -f {rules_file} && nft -j list table inet llamafleet")
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)
    assert NftTable().process(result.stdout.splitlines()) == nft_policy_signature(POLICY)


def test_nft_fact_reports_absent_table_as_empty():
    assert NftTable().process(["{}"]) == []
    assert NftTable().process(["NO-NFT"]) is None
