"""llamafleet's rules on a firewalld host (llamafleet/serving/firewall_firewalld.py): rich rules
in the default zone, runtime and permanent, with a record of the ones llamafleet added.

The samples are what `firewall-cmd --list-rich-rules` prints (firewall-cmd(1): one rule a line),
in the form firewalld writes a rule back (firewalld.richlanguage(5) syntax; the priority, left out
when 0, before the family; every value in double quotes), including the man page's examples as a
user's rules. `FakeFirewalld` applies the operation's commands as firewall-cmd(1) documents
them (the runtime and the permanent configuration apart; adding a rule that is there or removing
one that is not changes nothing) so a second deploy can be checked to change nothing.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest
from scratch import FakeHost
from pyinfra.context import ctx_host, ctx_state

from llamafleet.plan.shapes import FirewallPolicy, PortRule
from llamafleet.serving import firewall_firewalld as fwd

POLICY = FirewallPolicy([PortRule(50054, ("198.18.0.11",), "RPC from the master")])
ACCEPT = 'rule priority="-32768" family="ipv4" source address="198.18.0.11/32" port port="50054" protocol="tcp" accept'
REJECT = 'rule priority="-32767" port port="50054" protocol="tcp" reject'
# A user's rich rules, from firewalld.richlanguage(5) EXAMPLES, as firewall-cmd lists them.
USERS = [
    'rule family="ipv4" source address="192.168.0.0/24" service name="tftp" log prefix="tftp" level="info" limit value="1/m" accept',
    'rule family="ipv4" source address="192.168.2.3" reject type="icmp-admin-prohibited"',
    'rule protocol value="ah" accept',
]


def fact(zone="public", runtime=(), permanent=(), record=None, state=None) -> dict:
    lines = [state] if state else [f"@zone {zone}", "@runtime", *runtime, "@permanent", *permanent]
    if record is not None:
        lines += ["@record", *record]
    return fwd.FirewalldRichRules().process(lines)


def record_lines(policy=POLICY, zone="public") -> list[str]:
    return fwd.record_text(policy, zone).splitlines()


def run_operation(live, policy=POLICY) -> tuple[list[str], list[str]]:
    fake = FakeHost("board", {"FirewalldRichRules": live})
    with ctx_state.use(object()), ctx_host.use(fake):
        commands = [c.get_raw_value() for c in fwd.firewalld_rich_rules._inner(policy=policy, record_file="/etc/lf/rules")]
    return commands, fake.noops


class FakeFirewalld:
    """Zones' runtime and permanent rich rules, and the record file, changed by the commands."""

    def __init__(self, zone: str, runtime: list[str], permanent: list[str], record: list[str] | None = None):
        self.zone, self.record = zone, record
        self.rules = {(zone, False): list(runtime), (zone, True): list(permanent)}

    def apply(self, commands: list[str]) -> None:
        for command in commands:
            argv = shlex.split(command)
            if argv[0] == "printf":
                self.record = argv[2].splitlines()
            elif argv[0] == "firewall-cmd":
                permanent = "--permanent" in argv
                zone = next(a for a in argv if a.startswith("--zone=")).split("=", 1)[1]
                rules = self.rules.setdefault((zone, permanent), [])
                for option in (a for a in argv if a.startswith(("--add-rich-rule=", "--remove-rich-rule="))):
                    verb, rule = option[2:].split("-rich-rule=", 1)
                    if verb == "add" and rule not in rules:
                        rules.append(rule)
                    elif verb == "remove" and rule in rules:
                        rules.remove(rule)

    def fact(self) -> dict:
        return fact(self.zone, self.rules[(self.zone, False)], self.rules[(self.zone, True)], self.record)


# --- reading firewalld -----------------------------------------------------------------------


def test_rules_are_compared_as_firewalld_prints_them():
    assert fwd.canonical_rule(
        'rule family=ipv4 priority=-32768 source address=198.18.0.11/32 port protocol=tcp port=50054 accept') == ACCEPT
    assert fwd.canonical_rule('rule priority="0" family="ipv4" source not address="10.0.0.0/8" accept') == (
        'rule family="ipv4" source NOT address="10.0.0.0/8" accept')
    assert [fwd.canonical_rule(rule) for rule in USERS] == USERS


def test_the_fact_reads_runtime_permanent_and_the_record():
    live = fact(runtime=[*USERS, ACCEPT, REJECT], permanent=[ACCEPT], record=record_lines())
    assert (live["installed"], live["running"], live["zone"]) == (True, True, "public")
    assert live["runtime"] == [*USERS, ACCEPT, REJECT] and live["permanent"] == [ACCEPT]
    assert live["record"] == {"zone": "public", "rules": [ACCEPT, REJECT]}
    assert fact()["record"] is None


def test_the_fact_without_firewalld_or_stopped_still_reads_the_record():
    absent = fact(state="@absent", record=record_lines())
    assert (absent["installed"], absent["running"], absent["record"]["rules"]) == (False, False, [ACCEPT, REJECT])
    stopped = fact(state="@stopped")
    assert (stopped["installed"], stopped["running"], stopped["zone"]) == (True, False, None)


def test_the_fact_command_asks_firewall_cmd_for_the_default_zone(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "firewall-cmd").write_text(
        "#!/bin/sh\ncase \"$*\" in\n"
        "  --state) echo running ;;\n  --get-default-zone) echo home ;;\n"
        f"  '--zone=home --list-rich-rules') printf '%s\\n' {shlex.quote(USERS[0])} {shlex.quote(ACCEPT)} ;;\n"
        f"  '--permanent --zone=home --list-rich-rules') printf '%s\\n' {shlex.quote(ACCEPT)} ;;\n"
        "  *) echo \"unexpected: $*\" >&2; exit 2 ;;\nesac\n")
    (bin_dir / "firewall-cmd").chmod(0o755)
    record = tmp_path / "record"
    record.write_text(fwd.record_text(POLICY, "home"))
    command = fwd.FirewalldRichRules().command(record_file=str(record))
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    live = fwd.FirewalldRichRules().process(result.stdout.splitlines())
    assert (live["zone"], live["runtime"], live["permanent"]) == ("home", [USERS[0], ACCEPT], [ACCEPT])
    assert live["record"] == {"zone": "home", "rules": [ACCEPT, REJECT]}


# --- the template ------------------------------------------------------------------------------


def test_the_record_names_the_zone_and_each_rule_accepts_before_the_reject():
    policy = FirewallPolicy([PortRule(8080, ("198.18.0.11", "198.18.0.5/28", "2001:db8::7"), "llama-server API")])
    text = fwd.record_text(policy, "public")
    assert text.startswith("# Managed by llamafleet")
    assert "\nzone public\n" in text
    assert fwd.wanted_rules(policy) == [
        'rule priority="-32768" family="ipv4" source address="198.18.0.11/32" port port="8080" protocol="tcp" accept',
        'rule priority="-32768" family="ipv4" source address="198.18.0.0/28" port port="8080" protocol="tcp" accept',
        'rule priority="-32768" family="ipv6" source address="2001:db8::7/128" port port="8080" protocol="tcp" accept',
        'rule priority="-32767" port port="8080" protocol="tcp" reject',
    ]
    assert fwd.wanted_rules(FirewallPolicy()) == []


# --- the operation -------------------------------------------------------------------------------


def test_nothing_there_yet_records_then_adds_permanent_and_runtime():
    commands, noops = run_operation(fact(runtime=USERS, permanent=USERS))
    assert noops == []
    assert commands[:4] == ["mkdir -p /etc/lf", f"printf %s {shlex.quote(fwd.record_text(POLICY, 'public'))} > /etc/lf/rules",
                            "chown root:root /etc/lf/rules", "chmod 644 /etc/lf/rules"]
    options = f"{shlex.quote('--add-rich-rule=' + ACCEPT)} {shlex.quote('--add-rich-rule=' + REJECT)}"
    assert commands[4:] == [f"firewall-cmd --permanent --zone=public {options}", f"firewall-cmd --zone=public {options}"]
    host = FakeFirewalld("public", USERS, USERS)
    host.apply(commands)
    assert run_operation(host.fact()) == ([], ["firewalld zone public holds llamafleet's 2 rich rules"])


def test_exactly_right_is_a_noop():
    live = fact(runtime=[*USERS, ACCEPT, REJECT], permanent=[REJECT, ACCEPT, *USERS], record=record_lines())
    assert run_operation(live) == ([], ["firewalld zone public holds llamafleet's 2 rich rules"])


def test_a_rule_lost_from_one_configuration_only_is_added_there_only():
    # `firewall-cmd --reload` loads the permanent configuration: a rule added at runtime only goes.
    commands, _ = run_operation(fact(runtime=[ACCEPT, REJECT], permanent=[REJECT], record=record_lines()))
    assert commands == [f"firewall-cmd --permanent --zone=public {shlex.quote('--add-rich-rule=' + ACCEPT)}"]


def test_one_rule_different_removes_the_stale_one_and_adds_the_new():
    old_policy = FirewallPolicy([PortRule(50054, ("198.18.0.99",), "RPC from the master")])
    old = fwd.wanted_rules(old_policy)
    host = FakeFirewalld("public", [*USERS, *old], [*old, *USERS], record_lines(old_policy))
    commands, _ = run_operation(host.fact())
    stale = shlex.quote("--remove-rich-rule=" + old[0])
    assert commands[:2] == [f"firewall-cmd --permanent --zone=public {stale}", f"firewall-cmd --zone=public {stale}"]
    host.apply(commands)
    assert host.rules[("public", False)] == [*USERS, REJECT, ACCEPT]
    assert host.rules[("public", True)] == [REJECT, *USERS, ACCEPT]
    assert run_operation(host.fact())[0] == []


def test_a_stale_port_goes_and_the_users_rules_stay():
    moved = FirewallPolicy([PortRule(50052, ("198.18.0.11",), "RPC from the master")])
    old = fwd.wanted_rules(moved)
    host = FakeFirewalld("public", [*USERS, *old], [*USERS, *old], record_lines(moved))
    commands, _ = run_operation(host.fact())
    assert not any(rule in command for command in commands for rule in USERS)
    host.apply(commands)
    for permanent in (False, True):
        assert host.rules[("public", permanent)] == [*USERS, ACCEPT, REJECT]
    assert host.record == record_lines()


def test_a_rule_not_in_the_record_is_the_users_and_stays():
    # The same text as llamafleet's old rule, added by the user: without the record, not ours.
    theirs = 'rule priority="-32768" family="ipv4" source address="198.18.0.99/32" port port="50054" protocol="tcp" accept'
    commands, _ = run_operation(fact(runtime=[theirs, ACCEPT, REJECT], permanent=[theirs, ACCEPT, REJECT],
                                     record=record_lines()))
    assert commands == []


def test_a_changed_default_zone_moves_the_rules():
    host = FakeFirewalld("public", USERS, USERS, record_lines(zone="home"))
    host.rules[("home", False)] = [ACCEPT, REJECT]
    host.rules[("home", True)] = [ACCEPT, REJECT]
    commands, _ = run_operation(host.fact())
    assert commands[0].startswith("firewall-cmd --permanent --zone=home '--remove-rich-rule=")
    host.apply(commands)
    assert host.rules[("home", False)] == host.rules[("home", True)] == []
    assert host.rules[("public", True)] == [*USERS, ACCEPT, REJECT] and host.record == record_lines()
    assert run_operation(host.fact())[0] == []


@pytest.mark.parametrize("state, says", [
    ("@absent", "board: firewall_backend: firewalld is not installed on this host"),
    ("@stopped", "board: firewall_backend: firewalld is not running, and llamafleet never starts it"),
])
def test_a_host_where_firewalld_cannot_hold_the_rules_is_refused_by_name(state, says):
    with pytest.raises(ValueError) as caught:
        run_operation(fact(state=state))
    assert str(caught.value).startswith(says)


def test_a_host_name_as_source_is_refused_naming_the_keys():
    policy = FirewallPolicy([PortRule(8080, ("controller.lan",), "llama-server API")])
    with pytest.raises(ValueError) as caught:
        run_operation(fact(), policy)
    assert "'controller.lan' (port 8080" in str(caught.value) and "api_allowed_sources" in str(caught.value)


def test_an_edited_template_decides_the_rules_the_deploy_compares(tmp_path, monkeypatch):
    """A user's template whose reject is a drop: the wanted rules follow it, and once the host
    has them the next deploy changes nothing."""
    from llamafleet import templates

    shutil.copytree(templates.TEMPLATES, tmp_path / "templates")
    path = tmp_path / "templates" / fwd.RECORD_TEMPLATE
    path.write_text(path.read_text().replace('protocol="tcp" reject', 'protocol="tcp" drop'))
    monkeypatch.setattr(templates, "TEMPLATES", tmp_path / "templates")
    assert fwd.wanted_rules(POLICY) == [ACCEPT, REJECT.replace("reject", "drop")]
    host = FakeFirewalld("public", USERS, USERS)
    host.apply(run_operation(host.fact())[0])
    assert run_operation(host.fact())[0] == []
