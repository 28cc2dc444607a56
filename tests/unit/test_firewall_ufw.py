"""llamafleet's rules on a ufw host (llamafleet/serving/firewall_ufw.py): the fact read from what
ufw prints, the operation's commands, the template.

The samples are ufw 0.36's output as ufw(8) describes it (REPORTS: `show added` lists the rules
"as they were added on the command-line", normalised) and as its frontend formats them: a rule
from and to anywhere in short form ("ufw deny 50054/tcp"), the full form with `proto` after the
ports, /32 dropped, comments quoted. `FakeUfw` applies the operation's commands as ufw(8) says
they work (`prepend`: before every rule; `delete RULE`: that rule) so a second deploy can be
checked to change nothing.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest
from scratch import FakeHost
from pyinfra.context import ctx_host, ctx_state

from llamafleet.plan.shapes import FirewallPolicy, PortRule
from llamafleet.serving import firewall_ufw as ufw

RPC = "llamafleet: RPC from the master"
POLICY = FirewallPolicy([PortRule(50054, ("198.18.0.11",), "RPC from the master")])
ALLOW = ["allow", "proto", "tcp", "from", "198.18.0.11", "to", "any", "port", "50054", "comment", RPC]
DENY = ["deny", "proto", "tcp", "from", "any", "to", "any", "port", "50054", "comment", RPC]

# `ufw show added` on a host whose owner allowed SSH and more, before llamafleet came.
USERS_ADDED = [
    "ufw allow 22/tcp",
    "ufw limit 2222/tcp comment 'SSH port'",
    "ufw allow in on eth0 from 192.168.0.0/16",
    "ufw deny from 1.2.3.4 to any port 514 proto udp",
    "ufw allow 53",
    "ufw route allow in on eth0 out on eth1 from 192.168.0.0/16 to 10.0.0.0/8",
]
OURS_ADDED = [
    f"ufw allow from 198.18.0.11 to any port 50054 proto tcp comment '{RPC}'",
    f"ufw deny 50054/tcp comment '{RPC}'",
]
TITLE = "Added user rules (see 'ufw status' for running firewall):"


def fact_of(lines: list[str], active: bool = True):
    return ufw.UfwRules().process((["ACTIVE"] if active else []) + [TITLE, *lines])


def run_operation(live, policy=POLICY) -> tuple[list[str], list[str]]:
    fake = FakeHost("board", {"UfwRules": live})
    with ctx_state.use(object()), ctx_host.use(fake):
        commands = [command.get_raw_value() for command in ufw.ufw_rules._inner(policy=policy)]
    return commands, fake.noops


class FakeUfw:
    """ufw's added rules, changed by the commands as ufw(8) documents them."""

    def __init__(self, added: list[str]):
        self.rules = [words for words in fact_of(added)["rules"]]

    def apply(self, commands: list[str]) -> None:
        for command in commands:
            argv = shlex.split(command)
            assert argv[0] == "ufw", command
            rule = ufw.rule_words(ufw.parse_rule(argv[2:]))
            if argv[1] == "delete":
                assert rule in self.rules, f"ufw: Could not delete non-existent rule: {command}"
                self.rules.remove(rule)
            else:
                assert argv[1] == "prepend", command
                self.rules.insert(0, rule)

    def fact(self):
        return {"active": True, "readable": True, "rules": [list(rule) for rule in self.rules]}


# --- the fact --------------------------------------------------------------------------------


def test_the_fact_reads_every_added_rule_in_order_in_one_form():
    live = fact_of(OURS_ADDED + USERS_ADDED)
    assert live["active"] and live["readable"]
    assert live["rules"][:2] == [ALLOW, DENY]
    assert live["rules"][2:6] == [
        ["allow", "proto", "tcp", "from", "any", "to", "any", "port", "22"],
        ["limit", "proto", "tcp", "from", "any", "to", "any", "port", "2222", "comment", "SSH port"],
        ["allow", "in", "on", "eth0", "from", "192.168.0.0/16", "to", "any"],
        ["deny", "proto", "udp", "from", "1.2.3.4", "to", "any", "port", "514"],
    ]
    assert live["rules"][-1] == ["?", USERS_ADDED[-1]]  # a route rule: kept in place, never ours


def test_a_rule_written_either_way_is_the_same_rule():
    typed = ufw.parse_rule(["allow", "proto", "tcp", "from", "198.18.0.11/32", "to", "any", "port", "50054",
                            "comment", RPC])
    printed = ufw.parse_rule(shlex.split(OURS_ADDED[0]))
    assert ufw.rule_words(typed) == ufw.rule_words(printed) == ALLOW
    short = ufw.parse_rule(shlex.split(OURS_ADDED[1]))
    assert ufw.rule_words(short) == DENY and ufw.is_ours(short)
    assert ufw.parse_rule(["route", "allow", "in", "on", "eth0"]) is None
    assert ufw.parse_rule(["enable"]) is None


def test_the_fact_without_ufw_inactive_or_unreadable():
    assert ufw.UfwRules().process(["NO-UFW"]) is None
    assert fact_of(["(None)"], active=False) == {"active": False, "readable": True, "rules": []}
    assert ufw.UfwRules().process(["ACTIVE", "SHOW-FAILED"])["readable"] is False


def _fake_ufw(tmp_path, status: str, added: str) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "ufw"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = status ] && {{ printf '%s\\n' {shlex.quote(status)}; exit 0; }}\n"
                      f"[ \"$1 $2\" = 'show added' ] && {{ printf '%s\\n' {shlex.quote(added)}; exit 0; }}\nexit 1\n")
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


@pytest.mark.parametrize("status, active", [("Status: active\n\nTo  Action  From", True), ("Status: inactive", False)])
def test_the_fact_command_reads_ufw_itself(tmp_path, status, active):
    fact = ufw.UfwRules()
    env = _fake_ufw(tmp_path, status, "\n".join([TITLE, *OURS_ADDED]))
    result = subprocess.run(["sh", "-c", fact.command()], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert fact.process(result.stdout.splitlines()) == {"active": active, "readable": True, "rules": [ALLOW, DENY]}


# --- the template ------------------------------------------------------------------------------


def test_the_template_allows_each_source_then_denies_the_port_with_llamafleets_comment():
    policy = FirewallPolicy([PortRule(8080, ("198.18.0.11", "198.18.0.0/28"), "llama-server API"),
                             PortRule(50054, ("198.18.0.11",), "RPC from the master")])
    lines = [line for line in ufw.render(ufw.UFW_TEMPLATE, rules=policy.rules).splitlines() if line]
    api = "'llamafleet: llama-server API'"
    assert lines == [
        f"allow proto tcp from 198.18.0.11 to any port 8080 comment {api}",
        f"allow proto tcp from 198.18.0.0/28 to any port 8080 comment {api}",
        f"deny proto tcp to any port 8080 comment {api}",
        f"allow proto tcp from 198.18.0.11 to any port 50054 comment '{RPC}'",
        f"deny proto tcp to any port 50054 comment '{RPC}'",
    ]
    assert ufw.wanted_rules(FirewallPolicy()) == []


# --- the operation -------------------------------------------------------------------------------


def test_nothing_there_yet_prepends_the_rules_last_first():
    commands, noops = run_operation(fact_of(USERS_ADDED))
    assert noops == []
    assert commands == [
        f"ufw prepend deny proto tcp from any to any port 50054 comment '{RPC}'",
        f"ufw prepend allow proto tcp from 198.18.0.11 to any port 50054 comment '{RPC}'",
    ]
    host = FakeUfw(USERS_ADDED)
    host.apply(commands)
    assert host.rules[:2] == [ALLOW, DENY]  # first, in order; the user's rules kept after them
    assert host.rules[2:] == fact_of(USERS_ADDED)["rules"]
    assert run_operation(host.fact()) == ([], ["ufw holds llamafleet's 2 rules, first"])


def test_exactly_right_is_a_noop():
    commands, noops = run_operation(fact_of(OURS_ADDED + USERS_ADDED))
    assert commands == [] and noops == ["ufw holds llamafleet's 2 rules, first"]


def test_one_rule_different_deletes_llamafleets_rules_and_adds_them_again():
    moved_master = [OURS_ADDED[0].replace("198.18.0.11", "198.18.0.99"), OURS_ADDED[1]]
    commands, _ = run_operation(fact_of(moved_master + USERS_ADDED))
    assert commands[:2] == [
        f"ufw delete allow proto tcp from 198.18.0.99 to any port 50054 comment '{RPC}'",
        f"ufw delete deny proto tcp from any to any port 50054 comment '{RPC}'",
    ]
    assert [c.split()[1] for c in commands[2:]] == ["prepend", "prepend"]
    host = FakeUfw(moved_master + USERS_ADDED)
    host.apply(commands)
    assert host.rules == [ALLOW, DENY, *fact_of(USERS_ADDED)["rules"]]


def test_a_stale_port_is_deleted_and_nothing_of_the_users_is():
    old = [line.replace("50054", "50052") for line in OURS_ADDED]
    commands, _ = run_operation(fact_of(old + USERS_ADDED))
    deleted = [c for c in commands if c.startswith("ufw delete ")]
    assert len(deleted) == 2 and all("port 50052 comment 'llamafleet:" in c for c in deleted)
    assert not any("port 22" in c or "2222" in c for c in commands)
    host = FakeUfw(old + USERS_ADDED)
    host.apply(commands)
    assert run_operation(host.fact())[0] == []


def test_a_users_rule_put_above_llamafleets_puts_them_back_on_top():
    commands, _ = run_operation(fact_of(USERS_ADDED[:1] + OURS_ADDED + USERS_ADDED[1:]))
    assert [c.split()[1] for c in commands] == ["delete", "delete", "prepend", "prepend"]


def test_a_tunnelled_worker_has_no_rules_and_stale_ones_go():
    assert run_operation(fact_of(USERS_ADDED), FirewallPolicy()) == ([], ["ufw holds llamafleet's 0 rules, first"])
    commands, _ = run_operation(fact_of(OURS_ADDED + USERS_ADDED), FirewallPolicy())
    assert [c.split()[1] for c in commands] == ["delete", "delete"]


def test_a_users_rule_ufw_would_take_for_llamafleets_is_named_before_any_change():
    # `ufw allow 50054/tcp` equals llamafleet's deny but for action: ufw would skip the deny.
    with pytest.raises(ValueError) as caught:
        run_operation(fact_of(["ufw allow 50054/tcp", *USERS_ADDED]))
    assert str(caught.value).startswith("board: firewall_backend: ufw would skip llamafleet's rules")
    assert "allow proto tcp from any to any port 50054" in str(caught.value)


@pytest.mark.parametrize("live, says", [
    (None, "board: firewall_backend: ufw is not installed on this host"),
    ({"active": False, "readable": True, "rules": []}, "board: firewall_backend: ufw is installed but not active"),
    ({"active": True, "readable": False, "rules": []}, "board: firewall_backend: `ufw show added` failed"),
])
def test_a_host_where_ufw_cannot_hold_the_rules_is_refused_by_name(live, says):
    with pytest.raises(ValueError) as caught:
        run_operation(live)
    assert str(caught.value).startswith(says)


def test_a_host_name_as_source_is_refused_naming_the_keys():
    policy = FirewallPolicy([PortRule(50054, ("master.lan",), "RPC from the master")])
    with pytest.raises(ValueError) as caught:
        run_operation(fact_of(USERS_ADDED), policy)
    assert "'master.lan' (port 50054" in str(caught.value) and "cluster_address" in str(caught.value)


def test_an_edited_template_decides_the_rules_the_deploy_compares(tmp_path, monkeypatch):
    """A user's template that also admits a second address: the wanted rules follow it, so the
    next deploy finds ufw as wanted instead of rewriting it every time."""
    from llamafleet import templates

    shutil.copytree(templates.TEMPLATES, tmp_path / "templates")
    path = tmp_path / "templates" / ufw.UFW_TEMPLATE
    path.write_text(path.read_text().replace(
        "{%- endfor %}\ndeny", "{%- endfor %}\nallow proto tcp from 192.0.2.9 to any port {{ rule.port }} "
                               "comment {{ quote(comment) }}\ndeny", 1))
    monkeypatch.setattr(templates, "TEMPLATES", tmp_path / "templates")
    wanted = ufw.wanted_rules(POLICY)
    assert wanted == [ALLOW, [*ALLOW[:4], "192.0.2.9", *ALLOW[5:]], DENY]
    host = FakeUfw(USERS_ADDED)
    host.apply(run_operation(fact_of(USERS_ADDED))[0])
    assert run_operation(host.fact())[0] == []


def test_a_template_line_without_llamafleets_comment_is_refused(tmp_path, monkeypatch):
    from llamafleet import templates

    shutil.copytree(templates.TEMPLATES, tmp_path / "templates")
    path = tmp_path / "templates" / ufw.UFW_TEMPLATE
    path.write_text(path.read_text().replace('"llamafleet: "', '"lf: "'))
    monkeypatch.setattr(templates, "TEMPLATES", tmp_path / "templates")
    with pytest.raises(ValueError, match="whose comment starts with 'llamafleet'"):
        ufw.wanted_rules(POLICY)
