"""The firewall files and restore lines, rendered from templates/ for a sample plan.

The expectations are the policy in plain terms (README, tasks/network.py): a worker reachable
beyond loopback admits RPC from the master alone, the master's API port admits the master and
`api_allowed_sources`, loopback is admitted, everything else on a protected port is dropped, and
no other port is touched; INPUT jumps to llamafleet's chain as its first rule; what the services
restore is the file the deploy wrote.
"""

from __future__ import annotations

import shutil

import pytest
from test_plan import host

from llamafleet import templates
from llamafleet.plan import make_plan
from llamafleet.serving import firewall
from llamafleet.serving.firewall import CHAIN, IPTABLES_RULES_FILE, NFT_RULES_FILE, policy_for

MASTER_IP, BOARD_IP = "198.18.0.10", "198.18.0.12"
API_SOURCES = ["198.18.0.0/28", "203.0.113.7"]


@pytest.fixture(scope="module")
def plan():
    """A Linux master, a Linux board (direct, on its address) and a phone (tunnel, on loopback)."""
    return make_plan([
        host("box", 16000, llama_role="master", ssh_hostname=MASTER_IP),
        host("board", 4000, ssh_hostname=BOARD_IP),
        host("phone1", 8000, platform="termux", little=4, ssh_hostname="198.18.0.21"),
    ], 3000)


def planned(plan, name: str):
    return next(entry for entry in plan.hosts if entry.name == name)


def policy_of(plan, name: str) -> firewall.FirewallPolicy:
    return policy_for(planned(plan, name), planned(plan, "box"), 8080, API_SOURCES)


def test_a_worker_admits_rpc_from_the_master_only(plan):
    rules = firewall.iptables_rules(policy_of(plan, "board"))
    port = planned(plan, "board").rpc_port
    assert rules == [
        f"-A {CHAIN} -i lo -p tcp -m tcp --dport {port} -j ACCEPT",
        f"-A {CHAIN} -s {MASTER_IP}/32 -p tcp -m tcp --dport {port} -j ACCEPT",
        f"-A {CHAIN} -p tcp -m tcp --dport {port} -j DROP",
    ]
    nft = firewall.nft_rules_file(policy_of(plan, "board"))
    assert f"ip saddr {{ {MASTER_IP} }} tcp dport {port} accept" in nft
    assert nft.index(f"ip saddr {{ {MASTER_IP} }}") < nft.index(f"tcp dport {port} drop")


def test_the_master_admits_itself_and_the_allowed_sources_to_the_api(plan):
    rules = firewall.iptables_rules(policy_of(plan, "box"))
    admitted = [rule.split()[3] for rule in rules if " -s " in rule]
    assert admitted == [f"{MASTER_IP}/32", "198.18.0.0/28", "203.0.113.7/32"]
    assert all("--dport 8080 " in rule for rule in rules) and rules[-1].endswith("-j DROP")
    assert firewall.nft_policy_signature(policy_of(plan, "box")) == [
        [8080, sorted([f"{MASTER_IP}/32", "198.18.0.0/28", "203.0.113.7/32"])]
    ]


def test_a_tunnelled_worker_needs_no_rule(plan):
    assert policy_of(plan, "phone1").rules == []


@pytest.mark.parametrize("name", ["box", "board"])
def test_the_files_are_managed_replace_only_our_chain_or_table_and_render_the_same_twice(plan, name):
    policy = policy_of(plan, name)
    rules_file = firewall.iptables_restore_file(policy)
    assert rules_file.startswith("# Managed by llamafleet")
    assert rules_file.splitlines()[1:3] == ["*filter", f":{CHAIN} - [0:0]"] and rules_file.endswith("COMMIT\n")
    assert all(line.startswith((f"-A {CHAIN} ", "#", "*", ":", "COMMIT")) for line in rules_file.splitlines())
    nft_file = firewall.nft_rules_file(policy)
    assert nft_file.startswith("# Managed by llamafleet")
    # Declared, deleted, declared again: `nft -f` replaces the table whether it existed or not.
    assert nft_file.splitlines()[1:4] == ["table inet llamafleet", "delete table inet llamafleet", "table inet llamafleet {"]
    assert (firewall.iptables_restore_file(policy), firewall.nft_rules_file(policy)) == (rules_file, nft_file)


def test_the_iptables_restore_lines_reload_the_file_then_put_the_jump_first():
    lines = firewall.restore_commands("iptables")
    assert lines == [
        f"iptables-restore -w --noflush {IPTABLES_RULES_FILE}",
        f"iptables -w -S INPUT | grep -m1 '^-A ' | grep -qx -- '-A INPUT -j {CHAIN}' || "
        f"{{ while iptables -w -D INPUT -j {CHAIN} 2>/dev/null; do :; done; iptables -w -I INPUT 1 -j {CHAIN}; }}",
    ]
    # The line the deploy runs for a jump pushed down is the services' own.
    assert firewall.jump_first_command() == lines[1]
    assert firewall.jump_is_first(CHAIN) in firewall.IptablesChain().command()


def test_the_nft_restore_line_loads_the_file():
    assert firewall.restore_commands("nftables") == [f"nft -f {NFT_RULES_FILE}"]


def test_an_edited_template_decides_the_rules_the_deploy_compares(plan, tmp_path, monkeypatch):
    """A user's template adds a source: the wanted rules follow it, so the next deploy finds the
    live chain (or table) as wanted instead of rewriting it every time."""
    shutil.copytree(templates.TEMPLATES, tmp_path / "templates")
    for relative, old, new in [
        ("etc/iptables/llamafleet.rules.j2", "-j DROP", "-j DROP\n-A {{ chain }} -s 192.0.2.9/32 -p tcp -m tcp --dport 22 -j ACCEPT"),
        ("etc/nftables.d/llamafleet.nft.j2", "    tcp dport {{ rule.port }} drop", "    ip saddr 192.0.2.9 tcp dport 22 accept\n    tcp dport {{ rule.port }} drop"),
    ]:
        path = tmp_path / "templates" / relative
        path.write_text(path.read_text().replace(old, new))
    monkeypatch.setattr(templates, "TEMPLATES", tmp_path / "templates")
    policy = policy_of(plan, "board")
    assert firewall.iptables_rules(policy)[-1] == f"-A {CHAIN} -s 192.0.2.9/32 -p tcp -m tcp --dport 22 -j ACCEPT"
    assert [22, ["192.0.2.9/32"]] in firewall.nft_policy_signature(policy)
