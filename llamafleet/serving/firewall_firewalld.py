"""firewalld hosts: llamafleet's rules as rich rules of the default zone, made with firewall-cmd.

A separate nftables table cannot open a port that firewalld's own table drops, so the rules live
in firewalld itself. What each command relies on, from firewall-cmd(1) and
firewalld.richlanguage(5) (firewalld 1.3 in Debian 12; rich rule priorities since 0.7), checked
against firewalld's source (core/rich.py, command.py, core/nftables.py):
- `firewall-cmd --get-default-zone`: the zone of every interface and source not bound to another.
- `firewall-cmd [--permanent] --zone=Z --add-rich-rule=RULE` / `--remove-rich-rule=RULE`: the
  runtime configuration (in force now, no reload) and the permanent one (what `--reload` and a
  reboot load) are changed apart, so each change is made in both. Adding a rule that is there or
  removing one that is not only warns (ALREADY_ENABLED, NOT_ENABLED: exit 0).
- `firewall-cmd [--permanent] --zone=Z --list-rich-rules`: one rule a line, as firewalld prints
  a rule: `rule priority="-32768" family="ipv4" source address="198.18.0.10/32" port port="50052"
  protocol="tcp" accept` (priority, omitted when 0, before family; attribute values quoted).
- Rich rules are sorted by priority, lower first; a negative one runs before the zone's other
  primitives (ports, services, the zone's target), which is why llamafleet's rules use -32768
  (accepts) and -32767 (the reject). A rule without family applies to IPv4 and IPv6.
- firewalld accepts loopback (`iifname "lo" accept`) before any zone: no rule for it.
- Rich rules have no comment: the rules llamafleet added are kept in a record file
  (templates/etc/llamafleet/firewalld-rich-rules.j2), so that a stale one can be removed and the
  user's rules are never touched.
llamafleet never starts, stops or reloads firewalld, nor changes a zone's interfaces, sources,
target or default. Limits: a host interface bound to a zone other than the default one is not
covered by these rules; a record lost by hand leaves its rules in place.
"""

from __future__ import annotations

import ipaddress
import shlex

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, operation

from llamafleet.plan.firewall import FirewallPolicy, non_address_sources
from llamafleet.templates import render

__all__ = ["RECORD_FILE", "FirewalldRichRules", "canonical_rule", "firewalld_rich_rules", "record_text",
           "remove_commands", "wanted_rules"]

RECORD_FILE = "/etc/llamafleet/firewalld-rich-rules"
RECORD_TEMPLATE = "etc/llamafleet/firewalld-rich-rules.j2"
# The order firewalld prints an element's attributes in (core/rich.py, each element's __str__).
_ATTRIBUTE_ORDER = {"rule": ("priority", "family"), "port": ("port", "protocol"),
                    "source-port": ("port", "protocol"), "forward-port": ("port", "protocol", "to-port", "to-addr"),
                    "log": ("prefix", "level"), "nflog": ("group", "prefix", "queue-size")}


def canonical_rule(text: str) -> str:
    """A rich rule as firewalld prints it back: attributes quoted and in firewalld's order, a
    priority of 0 left out, `not` as NOT. Rules are compared in this form."""
    elements: list[list] = []
    for token in shlex.split(text):
        if "=" in token and elements:
            key, value = token.split("=", 1)
            elements[-1][1].append((key, value))
        elif token.lower() == "not" and elements:
            elements[-1][0] += " NOT"
        else:
            elements.append([token, []])
    words = []
    for name, attributes in elements:
        order = _ATTRIBUTE_ORDER.get(name, ())
        attributes = sorted(attributes, key=lambda item: order.index(item[0]) if item[0] in order else len(order))
        if name == "rule":
            attributes = [(key, value) for key, value in attributes if not (key == "priority" and value == "0")]
        words.append(" ".join([name, *(f'{key}="{value}"' for key, value in attributes)]))
    return " ".join(words)


def _family(source: str) -> str:
    return f"ipv{ipaddress.ip_network(source, strict=False).version}"


def _network(source: str) -> str:
    return str(ipaddress.ip_network(source, strict=False))


def record_text(policy: FirewallPolicy, zone: str | None) -> str:
    """The record file for the policy's rules in `zone`."""
    return render(RECORD_TEMPLATE, zone=zone, rules=policy.rules, family=_family, network=_network)


def parse_record(lines) -> dict:
    """A record's zone and rules (canonical): {"zone": "public", "rules": ["rule ...", ...]}."""
    record = {"zone": None, "rules": []}
    for line in lines:
        line = line.strip()
        if line.startswith("zone "):
            record["zone"] = line.split(None, 1)[1].strip() or None
        elif line.startswith("rule ") or line == "rule":
            record["rules"].append(canonical_rule(line))
    return record


def wanted_rules(policy: FirewallPolicy) -> list[str]:
    """llamafleet's rich rules for the policy, canonical, read back from the record template."""
    return parse_record(record_text(policy, None).splitlines())["rules"]


class FirewalldRichRules(FactBase):
    """
    firewalld's state, the rich rules of its default zone (runtime and permanent, canonical)
    and llamafleet's record of the rules it added (None when there is no record).

    .. code:: python

        {"installed": True, "running": True, "zone": "public",
         "runtime": ['rule priority="-32768" family="ipv4" source address="198.18.0.10/32" ...'],
         "permanent": [...], "record": {"zone": "public", "rules": [...]}}
    """

    def command(self, record_file: str = RECORD_FILE) -> str:
        return (
            "if ! command -v firewall-cmd >/dev/null 2>&1; then echo @absent; "
            "elif ! firewall-cmd --state >/dev/null 2>&1; then echo @stopped; "
            "else zone=$(firewall-cmd --get-default-zone 2>/dev/null); echo \"@zone $zone\"; "
            "echo @runtime; firewall-cmd --zone=\"$zone\" --list-rich-rules 2>/dev/null; "
            "echo @permanent; firewall-cmd --permanent --zone=\"$zone\" --list-rich-rules 2>/dev/null; fi; "
            f"if [ -f {shlex.quote(record_file)} ]; then echo @record; cat {shlex.quote(record_file)}; fi; true"
        )

    def process(self, output):
        state = {"installed": True, "running": True, "zone": None, "runtime": [], "permanent": [], "record": None}
        section, record_lines = None, None
        for line in (line.strip() for line in output):
            if line == "@absent":
                state["installed"] = state["running"] = False
            elif line == "@stopped":
                state["running"] = False
            elif line.startswith("@zone"):
                state["zone"] = line[len("@zone"):].strip() or None
            elif line in ("@runtime", "@permanent", "@record"):
                section = line[1:]
                if section == "record":
                    record_lines = []
            elif section == "record":
                record_lines.append(line)
            elif section and line.startswith("rule"):
                state[section].append(canonical_rule(line))
        if record_lines is not None:
            state["record"] = parse_record(record_lines)
        return state


def _rich_rule_command(zone: str, verb: str, rules: list[str], permanent: bool) -> StringCommand:
    """`firewall-cmd [--permanent] --zone=Z --add-rich-rule=R ...` (verb "add" or "remove")."""
    where = ["--permanent"] if permanent else []
    options = [QuoteString(f"--{verb}-rich-rule={rule}") for rule in rules]
    return StringCommand("firewall-cmd", *where, QuoteString(f"--zone={zone}"), *options)


def remove_commands(zone: str, rules: list[str], permanent: list[str] | None = None,
                    runtime: list[str] | None = None) -> list[StringCommand]:
    """Remove `rules` from the zone, in the permanent and the runtime configuration: only those
    present there when `permanent`/`runtime` (the live rules) are given, else all of them (a rule
    that is not there only warns)."""
    commands = []
    for live, is_permanent in ((permanent, True), (runtime, False)):
        present = [rule for rule in rules if live is None or rule in live]
        if present:
            commands.append(_rich_rule_command(zone, "remove", present, is_permanent))
    return commands


def write_record_commands(text: str, record_file: str) -> list[StringCommand]:
    """Write the record, root's and readable by all (it names addresses, no secret)."""
    return [
        StringCommand("mkdir", "-p", QuoteString(record_file.rsplit("/", 1)[0])),
        StringCommand("printf", "%s", QuoteString(text), ">", QuoteString(record_file)),
        StringCommand("chown", "root:root", QuoteString(record_file)),
        StringCommand("chmod", "644", QuoteString(record_file)),
    ]


@operation()
def firewalld_rich_rules(policy: FirewallPolicy, record_file: str = RECORD_FILE):
    """
    Make the default zone of firewalld hold exactly llamafleet's rich rules for the policy, in
    the runtime and the permanent configuration, and the record name them.

    + policy: the ports to protect and who may reach them
    + record_file: where the rules llamafleet added are recorded

    Stale rules (in the record, no longer wanted) are removed first, then the record is written,
    then missing rules are added, accepts before the reject: a run cut short leaves nothing that
    the record does not name.

    **Example:**

    .. code:: python

        firewalld_rich_rules(name="Firewall (firewalld)", policy=FirewallPolicy([PortRule(50052, ("198.18.0.10",))]))
    """
    live = host.get_fact(FirewalldRichRules, record_file=record_file)
    if not live["installed"]:
        raise ValueError(f"{host.name}: firewall_backend: firewalld is not installed on this host")
    if not live["running"] or not live["zone"]:
        raise ValueError(
            f"{host.name}: firewall_backend: firewalld is not running, and llamafleet never starts it: "
            "start it yourself (with SSH allowed in its default zone), or choose another firewall_backend"
        )
    if non_address_sources(policy):
        raise ValueError(f"{host.name}: firewall_backend: firewalld takes IP addresses only, not "
                         f"{', '.join(non_address_sources(policy))}: set cluster_address and api_allowed_sources to addresses")
    zone, wanted = live["zone"], wanted_rules(policy)
    record = live["record"] or {"zone": zone, "rules": []}
    commands = []
    if record["zone"] not in (None, zone):
        # The default zone changed since the last deploy: the recorded rules leave the old one.
        commands += remove_commands(record["zone"], record["rules"])
    else:
        stale = [rule for rule in record["rules"] if rule not in wanted]
        commands += remove_commands(zone, stale, live["permanent"], live["runtime"])
    if record != {"zone": zone, "rules": wanted}:
        commands += write_record_commands(record_text(policy, zone), record_file)
    for configuration, is_permanent in ((live["permanent"], True), (live["runtime"], False)):
        missing = [rule for rule in wanted if rule not in configuration]
        if missing:
            commands.append(_rich_rule_command(zone, "add", missing, is_permanent))
    if not commands:
        host.noop(f"firewalld zone {zone} holds llamafleet's {len(wanted)} rich rules")
    yield from commands
