"""Reading a host's live firewall for the verify suite, whichever backend holds llamafleet's rules.

Where to look is the plan's decision (the backend the deploy chose); what the rules must be comes
from oracles.expected_rules. Each backend is read with its own tool, as it prints its rules:
`iptables -S`, `nft -j list table`, `ufw status`, `firewall-cmd --list-rich-rules`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llamafleet.plan.firewall import backend_in_use
from llamafleet.serving.firewall import CHAIN, NFT_TABLE, FirewallBackend
from llamafleet.verify_suite.oracles import Rule, input_jump_problems, parse_iptables_rules, parse_nft_table
from llamafleet.verify_suite.oracles_native import (
    parse_rich_rules,
    parse_ufw_status,
    rich_order_problems,
    rich_rules_as_rules,
    ufw_llamafleet_rules,
    ufw_order_problems,
    without_loopback,
)


@dataclass
class LiveFirewall:
    """llamafleet's live rules as (source, port, target) Rules, what the policy's rules must be
    compared with (loopback's rule left out where the tool accepts loopback itself), problems
    with the rules beyond the comparison, and problems with where they stand (evaluated first)."""

    rules: list[Rule]
    expected: list[Rule]
    problems: list[str] = field(default_factory=list)
    placement: list[str] = field(default_factory=list)


def firewall_backend(node) -> str | None:
    """Which firewall holds llamafleet's rules, chosen as the deploy chose it (the plan's
    backend, else what the host has). This picks where to look, not what must be there."""
    fact = FirewallBackend()
    return backend_in_use(node.planned.firewall,
                          lambda: fact.process(node.host.run(fact.command()).stdout.splitlines()))


def _run(node, command: str) -> str:
    result = node.host.run(command)
    assert result.rc == 0, f"{node.name}: `{command}` failed: {result.stderr.strip()}"
    return result.stdout


def _iptables(node, expected: list[Rule]) -> LiveFirewall:
    chain = node.host.run(f"iptables -w -S {CHAIN}")
    assert chain.rc == 0, f"{node.name}: no {CHAIN} chain: {chain.stderr.strip()}"
    entry = _run(node, "iptables -w -S INPUT")
    return LiveFirewall(parse_iptables_rules(chain.stdout.splitlines(), CHAIN), expected,
                        placement=input_jump_problems(entry.splitlines(), CHAIN))


def _nftables(node, expected: list[Rule]) -> LiveFirewall:
    table = node.host.run(f"nft -j list table inet {NFT_TABLE}")
    assert table.rc == 0, f"{node.name}: no nftables table inet {NFT_TABLE}: {table.stderr.strip()}"
    chains = parse_nft_table(table.stdout)
    hooked = [chain for chain in chains if chain.hook == "input"]
    hook = [] if len(hooked) == 1 else [f"wanted one chain on the input hook, found {[c.name for c in chains]}"]
    # A drop in any input base chain is final, whatever the priorities: no order to check.
    return LiveFirewall([rule for chain in chains for rule in chain.rules], expected, placement=hook)


def _ufw(node, expected: list[Rule]) -> LiveFirewall:
    active, rows = parse_ufw_status(_run(node, "LC_ALL=C ufw status"))
    assert active, f"{node.name}: ufw is not active: its rules are not in force"
    ports = list(dict.fromkeys(rule.port for rule in expected))
    rules, problems = ufw_llamafleet_rules(rows, ports)
    return LiveFirewall(rules, without_loopback(expected), problems, ufw_order_problems(rows, expected))


def _firewalld(node, expected: list[Rule]) -> LiveFirewall:
    state = node.host.run("firewall-cmd --state")
    assert state.stdout.strip() == "running", f"{node.name}: firewalld is not running: {state.stdout}{state.stderr}"
    zone = _run(node, "firewall-cmd --get-default-zone").strip()
    ports = list(dict.fromkeys(rule.port for rule in expected))
    runtime = parse_rich_rules(_run(node, f"firewall-cmd --zone={zone} --list-rich-rules").splitlines(), ports)
    permanent = parse_rich_rules(
        _run(node, f"firewall-cmd --permanent --zone={zone} --list-rich-rules").splitlines(), ports)
    problems = []
    if sorted(rich.text for rich in runtime) != sorted(rich.text for rich in permanent):
        problems.append(f"zone {zone}: the permanent rich rules for ports {ports} differ from the runtime ones "
                        f"(a reload or reboot changes them): runtime {[r.text for r in runtime]}, "
                        f"permanent {[r.text for r in permanent]}")
    return LiveFirewall(rich_rules_as_rules(runtime, ports), without_loopback(expected), problems,
                        rich_order_problems(runtime, expected))


_READERS = {"iptables": _iptables, "nftables": _nftables, "ufw": _ufw, "firewalld": _firewalld}


def live_firewall(node, expected: list[Rule]) -> LiveFirewall:
    """The host's llamafleet rules, from the backend the deploy chose."""
    backend = firewall_backend(node)
    reader = _READERS.get(backend or "")
    assert reader, f"{node.name}: firewall_enabled, but no firewalld, ufw, iptables or nftables (backend {backend!r})"
    return reader(node, expected)
