"""The verify suite's independent oracles (llamafleet/verify_suite/oracles.py): the expected firewall rules
from inventory inputs, the parsers of what a real kernel prints, and that the comparison
catches the wrong rules a product could write."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from llamafleet.verify_suite import oracles

Rule, ANYWHERE, LOOPBACK, ACCEPT, DROP = oracles.Rule, oracles.ANYWHERE, oracles.LOOPBACK, oracles.ACCEPT, oracles.DROP

MASTER, BOARD, CONTROLLER = "198.18.0.11", "198.18.0.12", "198.18.0.1"


def lab_data() -> dict[str, dict]:
    """The lab's inventory inputs, in inventory order: phones first, then the Linux hosts."""
    common = {"rpc_port_base": 50052, "llama_server_port": 8080, "api_allowed_sources": [CONTROLLER]}
    return {
        "phone1": {**common, "ssh_hostname": "198.18.0.101", "rpc_transport": "tunnel"},
        "phone2": {**common, "ssh_hostname": "198.18.0.102", "rpc_transport": "tunnel"},
        "linux1": {**common, "ssh_hostname": MASTER, "llama_role": "master", "rpc_transport": "direct"},
        "linux2": {**common, "ssh_hostname": BOARD, "cluster_address": BOARD, "rpc_transport": "direct"},
    }


def test_worker_admits_the_master_on_its_rank_port_then_drops():
    assert oracles.expected_rules("linux2", lab_data()) == [
        Rule(LOOPBACK, 50054, ACCEPT), Rule(f"{MASTER}/32", 50054, ACCEPT), Rule(ANYWHERE, 50054, DROP),
    ]


def test_a_worker_keeps_the_port_recorded_on_it():
    """After a phone was inserted before linux2, linux2 still serves on the port its record
    names (README "Add or remove a device"), not on its new place's."""
    data = {"phone0": lab_data()["phone1"], **lab_data()}
    assert oracles.worker_rpc_port(data, "linux2") == 50055  # a first deploy of this inventory
    recorded = {"phone1": 50052, "phone2": 50053, "linux2": 50054}
    assert oracles.worker_rpc_port(data, "linux2", recorded) == 50054
    assert oracles.expected_rules("linux2", data, recorded=recorded)[-1] == Rule(ANYWHERE, 50054, DROP)
    data["linux2"]["rpc_port"] = 6000  # rpc_port still wins
    assert oracles.worker_rpc_port(data, "linux2", recorded) == 6000


def test_master_admits_itself_and_the_allowed_sources_on_the_api_port():
    data = lab_data()
    data["linux1"]["api_allowed_sources"] = [CONTROLLER, "10.0.0.7/24"]
    assert oracles.expected_rules("linux1", data) == [
        Rule(LOOPBACK, 8080, ACCEPT), Rule(f"{MASTER}/32", 8080, ACCEPT), Rule(f"{CONTROLLER}/32", 8080, ACCEPT),
        Rule("10.0.0.0/24", 8080, ACCEPT), Rule(ANYWHERE, 8080, DROP),
    ]


def test_inputs_that_change_the_rules():
    data = lab_data()
    data["linux2"]["rpc_port"] = 6000
    data["linux1"]["cluster_address"] = "10.1.1.1"
    assert oracles.expected_rules("linux2", data)[1] == Rule("10.1.1.1/32", 6000, ACCEPT)
    assert oracles.expected_rules("phone1", data) == []  # tunnelled: listens on loopback only
    data["linux2"]["rpc_bind"] = "127.0.0.1"
    assert oracles.expected_rules("linux2", data) == []
    data["phone1"].update(rpc_transport="direct")  # a phone switched to direct listens on its address
    assert oracles.expected_rules("phone1", data, is_termux=True)[-1] == Rule(ANYWHERE, 50052, DROP)


GOOD_CHAIN = [
    "-N LLAMAFLEET",
    "-A LLAMAFLEET -i lo -p tcp -m tcp --dport 50054 -j ACCEPT",
    f"-A LLAMAFLEET -s {MASTER}/32 -p tcp -m tcp --dport 50054 -j ACCEPT",
    "-A LLAMAFLEET -p tcp -m tcp --dport 50054 -j DROP",
]


def problems(lines: list[str]) -> list[str]:
    live = oracles.parse_iptables_rules(lines, "LLAMAFLEET")
    return oracles.firewall_problems(live, oracles.expected_rules("linux2", lab_data()))


def test_the_right_chain_passes():
    assert oracles.parse_iptables_rules(GOOD_CHAIN, "LLAMAFLEET") == [
        Rule(LOOPBACK, 50054, ACCEPT), Rule(f"{MASTER}/32", 50054, ACCEPT), Rule(ANYWHERE, 50054, DROP),
    ]
    assert problems(GOOD_CHAIN) == []


@pytest.mark.parametrize(
    "wrong, why",
    [
        (GOOD_CHAIN[:3], "no DROP"),
        ([GOOD_CHAIN[0], GOOD_CHAIN[3], GOOD_CHAIN[1], GOOD_CHAIN[2]], "DROP before the ACCEPTs"),
        (GOOD_CHAIN + ["-A LLAMAFLEET -s 198.18.0.250/32 -p tcp -m tcp --dport 50054 -j ACCEPT"], "an ACCEPT after the DROP"),
        ([*GOOD_CHAIN[:2], "-A LLAMAFLEET -s 198.18.0.0/24 -p tcp -m tcp --dport 50054 -j ACCEPT", GOOD_CHAIN[3]], "a wider source"),
        ([*GOOD_CHAIN[:2], "-A LLAMAFLEET -s 198.18.0.12/32 -p tcp -m tcp --dport 50054 -j ACCEPT", GOOD_CHAIN[3]], "another source"),
        ([*GOOD_CHAIN[:2], f"-A LLAMAFLEET ! -s {MASTER}/32 -p tcp -m tcp --dport 50054 -j ACCEPT", GOOD_CHAIN[3]], "a negation"),
        ([line.replace("50054", "50052") for line in GOOD_CHAIN], "the wrong port"),
        (["-A LLAMAFLEET -j ACCEPT", *GOOD_CHAIN[1:]], "a rule for every port"),
        (GOOD_CHAIN[:1], "an empty chain"),
        ([*GOOD_CHAIN[:3], "-A LLAMAFLEET -p tcp -m tcp --dport 50054 -j REJECT --reject-with tcp-reset"], "REJECT, not DROP"),
        ([*GOOD_CHAIN, "-A LLAMAFLEET -p tcp -m tcp --dport 22 -j DROP"], "a rule about SSH"),
        ([GOOD_CHAIN[0], GOOD_CHAIN[2], GOOD_CHAIN[3]], "no loopback"),
        ([*GOOD_CHAIN[:2], f"-A LLAMAFLEET -s {MASTER}/32 -p udp -m udp --dport 50054 -j ACCEPT", GOOD_CHAIN[3]], "UDP"),
    ],
)
def test_a_wrong_chain_is_caught(wrong, why):
    assert problems(wrong), f"not caught: {why}"


def test_the_jump_must_be_inputs_first_rule():
    good = ["-P INPUT ACCEPT", "-A INPUT -j LLAMAFLEET", "-A INPUT -j ACCEPT"]
    assert oracles.input_jump_problems(good, "LLAMAFLEET") == []
    assert oracles.input_jump_problems([good[0], good[2], good[1]], "LLAMAFLEET")
    assert oracles.input_jump_problems(["-P INPUT ACCEPT", "-A INPUT -j ACCEPT"], "LLAMAFLEET")
    assert oracles.input_jump_problems(["-A INPUT -p tcp -j LLAMAFLEET", "-A INPUT -j LLAMAFLEET"], "LLAMAFLEET")


def test_authorized_key_options():
    line = 'restrict,port-forwarding,command="echo \\"a, b\\"; exit 1",permitopen="127.0.0.1:50052" ssh-ed25519 AAAA c'
    assert oracles.authorized_key_options(line) == [
        ("restrict", None), ("port-forwarding", None), ("command", 'echo "a, b"; exit 1'),
        ("permitopen", "127.0.0.1:50052"),
    ]
    assert oracles.authorized_key_options("ssh-ed25519 AAAA owner@laptop") == []
    assert oracles.authorized_key_options('No-Pty,permitopen="h:1",permitopen="h:2" ssh-rsa X') == [
        ("no-pty", None), ("permitopen", "h:1"), ("permitopen", "h:2"),
    ]


# --- against a real kernel, in a scratch network namespace ------------------------------------

needs_root_unshare = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare for a scratch netns"
)


def in_scratch_netns(script: str) -> str:
    result = subprocess.run(["unshare", "--net", "sh", "-ec", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@needs_root_unshare
@pytest.mark.skipif(not shutil.which("iptables"), reason="iptables not installed")
def test_iptables_output_of_a_real_kernel():
    """The rules typed the way an admin would (not from llamafleet's generator), read back
    from the kernel: the parser understands them, and a user's ACCEPT before the jump is seen."""
    output = in_scratch_netns(
        "iptables -w -N LLAMAFLEET; "
        "iptables -w -A LLAMAFLEET -i lo -p tcp --dport 50054 -j ACCEPT; "
        f"iptables -w -A LLAMAFLEET -s {MASTER} -p tcp --dport 50054 -j ACCEPT; "
        "iptables -w -A LLAMAFLEET -p tcp --dport 50054 -j DROP; "
        "iptables -w -A INPUT -j ACCEPT; iptables -w -A INPUT -j LLAMAFLEET; "
        "iptables -w -S LLAMAFLEET; echo ---; iptables -w -S INPUT"
    )
    chain, entry = output.split("---\n")
    assert problems(chain.splitlines()) == []
    assert oracles.input_jump_problems(entry.splitlines(), "LLAMAFLEET"), "a jump after a broad ACCEPT passed"


@needs_root_unshare
@pytest.mark.skipif(not shutil.which("nft"), reason="nft not installed")
def test_nft_output_of_a_real_kernel(tmp_path):
    """nft merges a source into a wider set element that holds it; the oracle compares what is
    admitted, so that passes, and a missing drop does not."""
    table = (
        "table inet llamafleet {\n chain input {\n  type filter hook input priority filter - 10; policy accept;\n"
        '  iif "lo" tcp dport 8080 accept\n'
        f"  ip saddr {{ {MASTER}, {CONTROLLER}, 198.18.0.0/28 }} tcp dport 8080 accept\n"
        "  tcp dport 8080 drop\n }\n}\n"
    )
    (tmp_path / "t.nft").write_text(table)
    chains = oracles.parse_nft_table(in_scratch_netns(f"nft -f {tmp_path / 't.nft'}; nft -j list table inet llamafleet"))
    assert [(chain.name, chain.hook) for chain in chains] == [("input", "input")]
    data = lab_data()
    data["linux1"]["api_allowed_sources"] = [CONTROLLER, "198.18.0.0/28"]
    expected = oracles.expected_rules("linux1", data)
    assert oracles.firewall_problems(chains[0].rules, expected) == []
    without_drop = [rule for rule in chains[0].rules if rule.target != DROP]
    assert oracles.firewall_problems(without_drop, expected)
    data["linux1"]["api_allowed_sources"] = [CONTROLLER]  # the live /28 admits more than this
    assert oracles.firewall_problems(chains[0].rules, oracles.expected_rules("linux1", data))
