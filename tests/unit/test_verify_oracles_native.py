"""The verify suite's oracles for ufw and firewalld hosts (llamafleet/verify_suite/oracles_native.py,
live_firewall.py): what `ufw status` and `firewall-cmd --list-rich-rules` print, read into the
same Rules as the kernel's, and that the checks catch the wrong rules a product could leave.

`ufw status` rows are laid out as ufw 0.36 formats them (backend_iptables.py get_status:
"%-26s %-12s%-26s%s%s" for To, Action, From, attributes, " # comment"; IPv4 rules, then IPv6
ones marked "(v6)"); the rich rules as firewall-cmd(1) lists them.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from llamafleet.plan.shapes import FirewallPlan, FirewallPolicy
from llamafleet.verify_suite import live_firewall, oracles, oracles_native as native

Rule, ANYWHERE, LOOPBACK, ACCEPT, DROP = oracles.Rule, oracles.ANYWHERE, oracles.LOOPBACK, oracles.ACCEPT, oracles.DROP
MASTER, PORT = "198.18.0.11", 50054
EXPECTED = [Rule(LOOPBACK, PORT, ACCEPT), Rule(f"{MASTER}/32", PORT, ACCEPT), Rule(ANYWHERE, PORT, DROP)]
RPC = "llamafleet: RPC from the master"


def row(to: str, action: str, source: str, comment: str = "") -> str:
    return ("%-26s %-12s%-26s%s%s" % (to, action + " ", source, "", f" # {comment}" if comment else "")).rstrip()


def status(*rows: str, active: bool = True) -> str:
    if not active:
        return "Status: inactive\n"
    header = "%-26s %-12s%s\n" % ("To", "Action", "From") + "%-26s %-12s%s\n" % ("--", "------", "----")
    return "Status: active\n\n" + header + "\n".join(rows) + "\n"


OURS = [row(f"{PORT}/tcp", "ALLOW", MASTER, RPC), row(f"{PORT}/tcp", "DENY", "Anywhere", RPC)]
USERS = [row("22/tcp", "ALLOW", "Anywhere"), row("2222/tcp", "LIMIT", "Anywhere", "SSH port")]
V6 = [row("22/tcp (v6)", "ALLOW", "Anywhere (v6)"), row(f"{PORT}/tcp (v6)", "DENY", "Anywhere (v6)", RPC)]


def ufw_check(text: str) -> tuple[list[str], list[str]]:
    """(rule problems, order problems) as the verify suite reports them for a ufw host."""
    active, rows = native.parse_ufw_status(text)
    assert active
    rules, problems = native.ufw_llamafleet_rules(rows, [PORT])
    return (problems + oracles.firewall_problems(rules, native.without_loopback(EXPECTED)),
            native.ufw_order_problems(rows, EXPECTED))


def test_ufw_with_llamafleets_rules_first_passes():
    assert ufw_check(status(*OURS, *USERS, *V6)) == ([], [])


def test_ufw_rows_are_read_as_rules():
    active, rows = native.parse_ufw_status(status(*OURS, *USERS, *V6))
    assert active and [r.rule for r in rows if r.ours and not r.v6] == [Rule(f"{MASTER}/32", PORT, ACCEPT),
                                                                      Rule(ANYWHERE, PORT, DROP)]
    assert rows[3].rule == Rule(ANYWHERE, 2222, "LIMIT") and not rows[3].ours
    assert native.parse_ufw_status(status(active=False)) == (False, [])


@pytest.mark.parametrize("rows, rule_problem, order_problem", [
    # The master moved and the rule did not follow.
    ([row(f"{PORT}/tcp", "ALLOW", "198.18.0.99", RPC), OURS[1]], "admits ['198.18.0.99/32']", None),
    # The deny is missing: the port is open to everyone under a default of allow.
    ([OURS[0]], "wanted one DROP from anywhere", "no llamafleet DENY"),
    # A user's allow from anywhere, evaluated first: the deny never applies to it.
    ([USERS[0].replace("22/tcp", f"{PORT}/tcp"), *OURS], None, "ufw evaluates"),
    # A user's allow of a whole network for every port, evaluated first.
    ([row("Anywhere", "ALLOW", "10.0.0.0/8"), *OURS], None, "ufw evaluates"),
    # llamafleet's allow after its own deny: the master is dropped.
    ([OURS[1], OURS[0]], "rules after the DROP never apply", "allow comes after its DENY"),
    # IPv6 on, but the port not denied there.
    ([*OURS, V6[0]], "no IPv6 DENY", None),
])
def test_wrong_ufw_rules_are_caught(rows, rule_problem, order_problem):
    problems, order = ufw_check(status(*rows, *USERS))
    assert (rule_problem is None) == (problems == []), problems
    assert rule_problem is None or rule_problem in " ".join(problems)
    assert (order_problem is None) == (order == []), order
    assert order_problem is None or order_problem in " ".join(order)


# --- firewalld -----------------------------------------------------------------------------------

ACCEPT_RULE = f'rule priority="-32768" family="ipv4" source address="{MASTER}/32" port port="{PORT}" protocol="tcp" accept'
REJECT_RULE = f'rule priority="-32767" port port="{PORT}" protocol="tcp" reject'
USERS_RICH = [
    'rule family="ipv4" source address="192.168.0.0/24" service name="tftp" log prefix="tftp" level="info" limit value="1/m" accept',
    'rule protocol value="ah" accept',
    'rule family="ipv4" source address="192.168.2.4" drop',
]


def rich_check(lines: list[str]) -> tuple[list[str], list[str]]:
    rules = native.parse_rich_rules(lines, [PORT])
    live = native.rich_rules_as_rules(rules, [PORT])
    return oracles.firewall_problems(live, native.without_loopback(EXPECTED)), native.rich_order_problems(rules, EXPECTED)


def test_firewalld_with_llamafleets_rich_rules_passes():
    # Listed reject first: firewalld orders by priority, not by listing.
    assert rich_check([*USERS_RICH, REJECT_RULE, ACCEPT_RULE]) == ([], [])


@pytest.mark.parametrize("lines, rule_problem, order_problem", [
    ([REJECT_RULE.replace('priority="-32767" ', ""), ACCEPT_RULE], None, "not below 0"),
    # Equal priorities have no defined order (listed accept first, so only the order check sees it).
    ([ACCEPT_RULE, REJECT_RULE.replace("-32767", "-32768")], None, "not below the reject's"),
    ([REJECT_RULE, ACCEPT_RULE.replace(MASTER, "198.18.0.99")], "admits ['198.18.0.99/32']", None),
    ([ACCEPT_RULE], "wanted one DROP from anywhere", "no rich rule rejects it"),
    ([REJECT_RULE, ACCEPT_RULE, 'rule priority="-32768" family="ipv4" source address="10.0.0.0/8" accept'],
     "admits", None),
    ([REJECT_RULE, ACCEPT_RULE, f'rule priority="-32768" port port="{PORT}" protocol="tcp" log accept'],
     "not understood", None),
])
def test_wrong_rich_rules_are_caught(lines, rule_problem, order_problem):
    problems, order = rich_check(lines)
    assert (rule_problem is None) == (problems == []), problems
    assert rule_problem is None or rule_problem in " ".join(problems)
    assert (order_problem is None) == (order == []), order
    assert order_problem is None or order_problem in " ".join(order)


# --- reading a host, from the backend the plan chose ----------------------------------------------


class FakeShell:
    def __init__(self, outputs: dict[str, str]):
        self.outputs, self.ran = outputs, []

    def run(self, command: str):
        self.ran.append(command)
        if command not in self.outputs:
            return SimpleNamespace(rc=1, stdout="", stderr=f"no such command here: {command}")
        return SimpleNamespace(rc=0, stdout=self.outputs[command], stderr="")


def node(backend: str, outputs: dict[str, str]):
    plan = FirewallPlan(FirewallPolicy(), backend=backend)
    return SimpleNamespace(name="board", planned=SimpleNamespace(firewall=plan), host=FakeShell(outputs))


def test_a_ufw_host_is_read_with_ufw_status():
    host = node("ufw", {"LC_ALL=C ufw status": status(*OURS, *USERS, *V6)})
    live = live_firewall.live_firewall(host, EXPECTED)
    assert live.expected == EXPECTED[1:] and live.rules == EXPECTED[1:] and live.placement == []
    inactive = node("ufw", {"LC_ALL=C ufw status": status(active=False)})
    with pytest.raises(AssertionError, match="ufw is not active"):
        live_firewall.live_firewall(inactive, EXPECTED)


def test_a_firewalld_host_is_read_in_its_default_zone_runtime_and_permanent():
    outputs = {
        "firewall-cmd --state": "running\n", "firewall-cmd --get-default-zone": "home\n",
        "firewall-cmd --zone=home --list-rich-rules": "\n".join([*USERS_RICH, ACCEPT_RULE, REJECT_RULE]) + "\n",
        "firewall-cmd --permanent --zone=home --list-rich-rules": "\n".join([REJECT_RULE, ACCEPT_RULE]) + "\n",
    }
    live = live_firewall.live_firewall(node("firewalld", outputs), EXPECTED)
    assert (live.rules, live.problems, live.placement) == (EXPECTED[1:], [], [])
    outputs["firewall-cmd --permanent --zone=home --list-rich-rules"] = ACCEPT_RULE + "\n"
    live = live_firewall.live_firewall(node("firewalld", outputs), EXPECTED)
    assert live.problems and "differ from the runtime ones" in live.problems[0]
