"""Independent oracles for hosts whose firewall is ufw or firewalld: parsers of what `ufw status`
and `firewall-cmd --list-rich-rules` print, and where llamafleet's rules must stand among the
host's. Like oracles.py, nothing here calls llamafleet's generators or parsers
(serving/firewall_ufw.py, firewall_firewalld.py): the live rules are read as the tools print
them, into the same (source, port, target) Rules that oracles.firewall_problems compares with
the policy.

How the tools evaluate rules, as documented:
- ufw(8): rules are evaluated in order, the first match wins; `ufw status` lists the user's rules
  in that order (IPv4 rules, then IPv6 ones marked "(v6)"), each row "To  Action  From  # comment";
  llamafleet's rules carry a comment starting with "llamafleet". DENY drops.
- firewalld.richlanguage(5): rich rules are sorted by priority, lower first; the order of equal
  priorities is undefined; a negative priority runs before the zone's other primitives (its
  ports, services and target). reject and drop both keep the port closed.
- Both tools accept loopback before any of these rules (ufw's before.rules, firewalld's
  `iifname "lo" accept`), so the policy's loopback rule is the tool's, not a rule to find.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from llamafleet.verify_suite.oracles import ACCEPT, ANYWHERE, DROP, LOOPBACK, Rule, cidr

MARK = "llamafleet"
_UFW_ROW = re.compile(r"^(?P<to>\S.*?)\s+(?P<action>ALLOW|DENY|REJECT|LIMIT)(?: (?:IN|OUT|FWD))?\s+"
                      r"(?P<source>.*?)\s*(?:#\s?(?P<comment>.*))?$")
_UFW_TO = re.compile(r"^(?:(?P<address>\S+) )?(?P<port>\d+)(?:/(?P<proto>\w+))?$")
_UFW_TARGETS = {"ALLOW": ACCEPT, "DENY": DROP}


def without_loopback(expected: Iterable[Rule]) -> list[Rule]:
    """The expected rules less loopback's, for a tool that accepts loopback itself."""
    return [rule for rule in expected if rule.source != LOOPBACK]


# --- ufw ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UfwRow:
    """One row of `ufw status`: `port` None means every port; `ours` its comment is llamafleet's."""

    port: int | None
    proto: str
    v6: bool
    rule: Rule
    ours: bool
    text: str


def parse_ufw_status(text: str) -> tuple[bool, list[UfwRow]]:
    """Whether ufw is active, and the rows of incoming rules in order. A row this parser does not
    fully understand (an interface, a destination address, a source port) gets target UNPARSED."""
    lines = text.splitlines()
    active = any(line.strip() == "Status: active" for line in lines)
    rows = []
    for line in lines:
        match = _UFW_ROW.match(line.rstrip())
        if not match or line.startswith(("To ", "--")):
            continue
        comment = match["comment"] or ""
        v6 = "(v6)" in line.split("#", 1)[0]
        to = match["to"].replace(" (v6)", "").strip()
        source = match["source"].replace(" (v6)", "").strip()
        target = _UFW_TARGETS.get(match["action"], match["action"])
        to_match = _UFW_TO.match(to)
        port, proto = None, "any"
        if to_match and to_match["address"] in (None, "Anywhere"):
            port, proto = int(to_match["port"]), to_match["proto"] or "any"
        elif to != "Anywhere":
            target = f"UNPARSED: {line.strip()}"
        try:
            source = ANYWHERE if source == "Anywhere" else cidr(source)
        except (ValueError, OSError):
            source, target = ANYWHERE, f"UNPARSED: {line.strip()}"
        rows.append(UfwRow(port, proto, v6, Rule(source, port, target), comment.startswith(MARK), line.strip()))
    return active, rows


def _for_port(row: UfwRow, port: int) -> bool:
    return row.port in (None, port) and row.proto in ("tcp", "any")


def ufw_llamafleet_rules(rows: list[UfwRow], ports: Iterable[int]) -> tuple[list[Rule], list[str]]:
    """llamafleet's IPv4 rules for the protected ports, in order, and what is missing: with IPv6
    rules present (ufw's IPv6 on), each port's IPv6 DENY from anywhere."""
    rules = [row.rule for row in rows if row.ours and not row.v6]
    problems = []
    if any(row.v6 for row in rows):
        for port in ports:
            if not any(row.v6 and row.ours and row.rule == Rule(ANYWHERE, port, DROP) for row in rows):
                problems.append(f"port {port}: no IPv6 DENY from anywhere (ufw has IPv6 rules)")
    return rules, problems


def ufw_order_problems(rows: list[UfwRow], expected: list[Rule]) -> list[str]:
    """Per protected port (IPv4, first match wins): llamafleet's allows come before its deny, and
    no other rule before that deny admits a source the policy does not."""
    problems = []
    for port in dict.fromkeys(rule.port for rule in expected):
        admitted = {rule.source for rule in expected if rule.port == port and rule.target == ACCEPT}
        mine = [row for row in rows if not row.v6 and _for_port(row, port)]
        denies = [index for index, row in enumerate(mine) if row.ours and row.rule == Rule(ANYWHERE, port, DROP)]
        if not denies:
            problems.append(f"port {port}: no llamafleet DENY from anywhere")
            continue
        for row in mine[:denies[0]]:
            if row.rule.target != DROP and not (row.ours or row.rule.source in admitted):
                problems.append(f"port {port}: ufw evaluates {row.text!r} before llamafleet's DENY")
        for row in mine[denies[0] + 1:]:
            if row.ours and row.rule.target == ACCEPT:
                problems.append(f"port {port}: llamafleet's allow comes after its DENY: {row.text!r}")
    return problems


# --- firewalld ---------------------------------------------------------------------------------

_RICH_PRIORITY = re.compile(r'\bpriority="?(-?\d+)"?')
_RICH_SOURCE = re.compile(r'\bsource( NOT| not)? address="?([^"\s]+)"?')
_RICH_PORT = re.compile(r'\bport port="?(\d+)"? protocol="?(\w+)"?')
_RICH_ACTION = re.compile(r"\b(accept|reject|drop|mark)\b(?: type=\"?[\w-]+\"?)?(?: limit value=\"?[\w/]+\"?)?$")
_RICH_ELEMENTS = re.compile(r"\b(service|protocol value|icmp-block|icmp-type|masquerade|forward-port|source-port|log|nflog|audit)\b")


@dataclass(frozen=True)
class RichRule:
    """One rich rule: `port` None means every port (a rule with a source only)."""

    priority: int
    rule: Rule
    text: str


def parse_rich_rules(lines: Iterable[str], ports: Iterable[int]) -> list[RichRule]:
    """The rich rules that concern the protected TCP ports (their port, or every port), sorted
    as firewalld evaluates them (priority, lower first); a reject or drop of one source is left
    out (it opens nothing). A rule with an element this parser does not weigh (log, service, a
    negated source...) for those ports gets target UNPARSED."""
    ports, found = set(ports), []
    for line in (line.strip() for line in lines):
        if not line.startswith("rule"):
            continue
        port_match, action = _RICH_PORT.search(line), _RICH_ACTION.search(line)
        if port_match and (port_match[2] != "tcp" or int(port_match[1]) not in ports):
            continue
        if not port_match and _RICH_ELEMENTS.search(line):
            continue  # a service, protocol or ICMP rule: not about these ports
        source = _RICH_SOURCE.search(line)
        target = {"accept": ACCEPT, "reject": DROP, "drop": DROP}.get(action[1] if action else "", None)
        if target is None or (source and source[1]) or (port_match and _RICH_ELEMENTS.search(line)):
            target = f"UNPARSED: {line}"
        address = cidr(source[2]) if source else ANYWHERE
        if target == DROP and address != ANYWHERE:
            continue  # a source blocked (the man page's black-listing): it closes, never opens
        priority = int(_RICH_PRIORITY.search(line)[1]) if _RICH_PRIORITY.search(line) else 0
        found.append(RichRule(priority, Rule(address, int(port_match[1]) if port_match else None, target), line))
    return sorted(found, key=lambda rich: rich.priority)


def rich_rules_as_rules(rules: list[RichRule], ports: Iterable[int]) -> list[Rule]:
    """The rich rules as Rules per port, a rule for every port repeated for each protected port."""
    return [rich.rule if rich.rule.port is not None else Rule(rich.rule.source, port, rich.rule.target)
            for rich in rules for port in ([rich.rule.port] if rich.rule.port is not None else list(ports))]


def rich_order_problems(rules: list[RichRule], expected: list[Rule]) -> list[str]:
    """Per protected port: the reject from anywhere runs before the zone's other primitives
    (priority below 0), and every accept for the port runs before it (a strictly lower
    priority: equal priorities have no defined order)."""
    problems = []
    for port in dict.fromkeys(rule.port for rule in expected):
        closes = [rich for rich in rules if rich.rule == Rule(ANYWHERE, port, DROP)]
        if not closes:
            problems.append(f"port {port}: no rich rule rejects it from anywhere")
            continue
        close = closes[0]
        if close.priority >= 0:
            problems.append(f"port {port}: the reject has priority {close.priority}, not below 0: the zone's "
                            f"open ports, services or target are evaluated before it")
        for rich in rules:
            if rich.rule.port in (port, None) and rich.rule.target == ACCEPT and rich.priority >= close.priority:
                problems.append(f"port {port}: {rich.text!r} has priority {rich.priority}, not below the reject's "
                                f"{close.priority}")
    return problems
