"""ufw hosts: llamafleet's rules made with ufw itself, so `ufw reload` and a reboot keep them.

What each command relies on, from ufw(8) (ufw 0.36: Debian 11/12, Ubuntu 20.04 and later) and
checked against ufw's own source (frontend.py, backend_iptables.py, parser.py):
- `ufw prepend allow proto tcp from SRC to any port PORT comment C` (RULE SYNTAX; `prepend`
  since ufw 0.35) adds the rule to the user rules (/etc/ufw/user.rules and user6.rules, which ufw
  loads at boot and on `ufw reload`) before every other rule of its IP version; with ufw active
  the running firewall changes at once. ufw is first-match (NOTES: "the first match wins"), so
  llamafleet's rules, prepended last line first, stand first and in order: a user's earlier
  `ufw allow 8080/tcp` cannot open a protected port to everyone.
- `ufw deny proto tcp to any port PORT` (no address) covers IPv4 and IPv6.
- `ufw delete RULE` (the rule as added, comment included) deletes it, both IP versions at once,
  and asks nothing (only `ufw delete NUM` prompts).
- `ufw show added` (REPORTS) prints every added rule as a command, normalised: "ufw allow from
  198.18.0.10 to any port 50052 proto tcp comment 'llamafleet: ...'", a rule from and to
  anywhere in short form "ufw deny 50052/tcp comment '...'", IPv4 and two-version rules first,
  in their order. It reads the rules files, so it works whether ufw is active or not.
- ufw skips inserting a rule that an existing one equals but for action, logging or comment
  ("Skipping inserting existing rule", exit 0): such a rule of the user's is named as an error
  before anything changes.
- Every ufw command needs root, as the deploy is. Messages are translated: LC_ALL=C.
llamafleet never runs `ufw enable`, `disable`, `reset`, `default` or `reload`, and never
touches a rule whose comment does not start with "llamafleet": SSH stays as the user has it.
"""

from __future__ import annotations

import ipaddress
import re
import shlex

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, operation

from llamafleet.plan.firewall import FirewallPolicy, non_address_sources
from llamafleet.templates import render

__all__ = ["MARK", "UfwRules", "is_ours", "parse_rule", "rule_words", "ufw_command", "ufw_rules", "wanted_rules"]

MARK = "llamafleet"  # every llamafleet rule's comment starts with it
UFW_TEMPLATE = "firewall/ufw-rules.j2"
_ACTIONS = ("allow", "deny", "reject", "limit")
_SHORT_PORT = re.compile(r"(?P<port>[0-9][0-9,:]*)(?:/(?P<proto>\w+))?")
# What ufw's rule matching compares, action, logging and comment aside (common.py UFWRule.match).
_MATCHED = ("direction", "interface", "proto", "src", "sport", "sapp", "dst", "dport", "dapp")


def _address(value: str) -> str:
    """An address as ufw keeps it: "any" for anywhere, no /32 (/128) on one address, host bits
    cleared from a network (util.py normalize_address)."""
    if value.lower() == "any":
        return "any"
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return value.lower()
    if network.prefixlen == 0:
        return "any"
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def parse_rule(words: list[str]) -> dict | None:
    """One ufw rule, from its arguments as a user writes them or as `ufw show added` prints them
    (a leading "ufw" is skipped), in normalised fields; None for a route rule or words that are
    not a rule.

    .. code:: python

        {"action": "allow", "direction": "in", "interface": "", "log": "", "proto": "tcp",
         "src": "198.18.0.10", "sport": "any", "sapp": "", "dst": "any", "dport": "50052",
         "dapp": "", "comment": "llamafleet: RPC from the master"}
    """
    words = list(words[1:] if words[:1] == ["ufw"] else words)
    if not words or words[0] not in _ACTIONS:
        return None
    rule = {"action": words.pop(0), "direction": "in", "interface": "", "log": "", "proto": "any", "src": "any",
            "sport": "any", "sapp": "", "dst": "any", "dport": "any", "dapp": "", "comment": ""}
    if words[:1] in (["in"], ["out"]):
        rule["direction"] = words.pop(0)
        if words[:1] == ["on"] and len(words) > 1:
            rule["interface"] = words[1]
            del words[:2]
    if words[:1] in (["log"], ["log-all"]):
        rule["log"] = words.pop(0)
    if words and words[0] not in ("proto", "from", "to", "comment"):
        token = words.pop(0)  # the short syntax: `ufw allow 22/tcp`, `ufw allow OpenSSH`
        short = _SHORT_PORT.fullmatch(token)
        if short:
            rule["dport"], rule["proto"] = short["port"], (short["proto"] or "any").lower()
        else:
            rule["dapp"] = token
    while words:
        key = words.pop(0)
        if not words:
            return None
        if key == "proto":
            rule["proto"] = words.pop(0).lower()
        elif key == "comment":
            rule["comment"] = words.pop(0)
        elif key in ("from", "to"):
            side = "s" if key == "from" else "d"
            rule["src" if side == "s" else "dst"] = _address(words.pop(0))
            if words[:1] in (["port"], ["app"]) and len(words) > 1:
                rule[side + words[0]] = words[1]
                del words[:2]
        else:
            return None
    return rule


def rule_words(rule: dict) -> list[str]:
    """A parsed rule's arguments in one canonical form (the full syntax, every field named), for
    `ufw delete` and `ufw prepend`: two rules are the same rule when their words are equal."""
    words = [rule["action"]]
    if rule["interface"]:
        words += [rule["direction"], "on", rule["interface"]]
    elif rule["direction"] != "in":
        words.append(rule["direction"])
    if rule["log"]:
        words.append(rule["log"])
    if rule["proto"] != "any":
        words += ["proto", rule["proto"]]
    for side, address in (("s", "from"), ("d", "to")):
        words += [address, rule["src" if side == "s" else "dst"]]
        if rule[side + "app"]:
            words += ["app", rule[side + "app"]]
        elif rule[side + "port"] != "any":
            words += ["port", rule[side + "port"]]
    if rule["comment"]:
        words += ["comment", rule["comment"]]
    return words


def is_ours(rule: dict) -> bool:
    return rule.get("comment", "").startswith(MARK)


class UfwRules(FactBase):
    """
    ufw's state and its added rules in `ufw show added` order, each in canonical words
    (rule_words; a line not understood as ["?", line]); None without ufw.

    .. code:: python

        {"active": True, "readable": True,
         "rules": [["allow", "proto", "tcp", "from", "198.18.0.10", "to", "any", "port", "50052",
                    "comment", "llamafleet: RPC from the master"], ["allow", "proto", "tcp", ...]]}
    """

    def command(self) -> str:
        return (
            "command -v ufw >/dev/null 2>&1 || { echo NO-UFW; exit 0; }; "
            "LC_ALL=C ufw status 2>/dev/null | grep -qx 'Status: active' && echo ACTIVE; "
            "LC_ALL=C ufw show added 2>/dev/null || echo SHOW-FAILED; true"
        )

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        if "NO-UFW" in lines:
            return None
        rules = []
        for line in lines:
            if not line.startswith("ufw "):
                continue  # the report's title, "(None)"
            try:
                parsed = parse_rule(shlex.split(line))
            except ValueError:
                parsed = None
            rules.append(rule_words(parsed) if parsed else ["?", line])
        return {"active": "ACTIVE" in lines, "readable": "SHOW-FAILED" not in lines, "rules": rules}


def wanted_rules(policy: FirewallPolicy) -> list[list[str]]:
    """llamafleet's rules for the policy in canonical words, in evaluation order: the lines of
    templates/firewall/ufw-rules.j2, so the template decides them (an edited one included)."""
    rules = []
    for line in render(UFW_TEMPLATE, rules=policy.rules).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parsed = parse_rule(shlex.split(line))
        if parsed is None or not is_ours(parsed):
            raise ValueError(f"{UFW_TEMPLATE}: not a ufw rule whose comment starts with {MARK!r}: {line}")
        rules.append(rule_words(parsed))
    return rules


def ufw_command(verb: str, words: list[str]) -> StringCommand:
    """`ufw delete|prepend RULE`, every word quoted for the shell."""
    return StringCommand("ufw", verb, *(QuoteString(word) for word in words))


def _conflicts(live: list[list[str]], wanted: list[list[str]]) -> list[str]:
    """The user's rules that ufw would take for one of llamafleet's (equal but for action,
    logging or comment), so that it would skip adding llamafleet's."""
    def key(words):
        rule = parse_rule(words)
        return rule and tuple(rule[field] for field in _MATCHED)

    ours = {key(words) for words in wanted}
    return [" ".join(words) for words in live if words[0] != "?" and not is_ours(parse_rule(words)) and key(words) in ours]


@operation()
def ufw_rules(policy: FirewallPolicy):
    """
    Make ufw hold exactly llamafleet's rules for the policy, in order, before every other rule.

    + policy: the ports to protect and who may reach them

    When anything differs (a rule, the order, a user's rule put above them), llamafleet's rules
    are deleted and prepended again, last first: ufw is first-match and keeps no other order.

    **Example:**

    .. code:: python

        ufw_rules(name="Firewall (ufw)", policy=FirewallPolicy([PortRule(50052, ("198.18.0.10",))]))
    """
    live = host.get_fact(UfwRules)
    if live is None:
        raise ValueError(f"{host.name}: firewall_backend: ufw is not installed on this host")
    if not live["readable"]:
        raise ValueError(f"{host.name}: firewall_backend: `ufw show added` failed (ufw needs root)")
    if not live["active"]:
        raise ValueError(
            f"{host.name}: firewall_backend: ufw is installed but not active, and llamafleet never enables "
            "it (that could lock SSH out): allow SSH and run `ufw enable` yourself, or choose another firewall_backend"
        )
    if non_address_sources(policy):
        raise ValueError(f"{host.name}: firewall_backend: ufw takes IP addresses only, not "
                         f"{', '.join(non_address_sources(policy))}: set cluster_address and api_allowed_sources to addresses")
    wanted = wanted_rules(policy)
    ours = [words for words in live["rules"] if words[0] != "?" and is_ours(parse_rule(words))]
    if ours == wanted and live["rules"][:len(wanted)] == wanted:
        host.noop(f"ufw holds llamafleet's {len(wanted)} rules, first")
        return
    conflicts = _conflicts(live["rules"], wanted)
    if conflicts:
        raise ValueError(
            f"{host.name}: firewall_backend: ufw would skip llamafleet's rules, as these rules of yours equal "
            f"them but for action or comment: {'; '.join(conflicts)}. Delete them (`ufw delete RULE`) and deploy again"
        )
    for words in ours:
        yield ufw_command("delete", words)
    for words in reversed(wanted):
        yield ufw_command("prepend", words)
