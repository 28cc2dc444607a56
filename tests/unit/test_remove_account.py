"""The service user goes only when llamafleet made it (its comment), with its own group; never
root, never the login user, never a user's account of that name
(llamafleet/serving/account_removal.py)."""

from __future__ import annotations

import subprocess

import pytest
from pyinfra.api import StringCommand
from pyinfra.context import ctx_host, ctx_state
from scratch import FakeHost

from llamafleet.serving.account_removal import ACCOUNT_COMMENT, AccountRecord, service_account_removed

OURS = {"uid": 998, "gid": 998, "comment": ACCOUNT_COMMENT, "home": "/nonexistent"}
OWN_GROUP = {"gid": 998, "members": []}
USERDEL = "! getent passwd llamafleet >/dev/null || userdel llamafleet || ! getent passwd llamafleet >/dev/null"
GROUPDEL = "! getent group llamafleet >/dev/null || groupdel llamafleet || ! getent group llamafleet >/dev/null"


def run_op(found: dict, **kwargs) -> tuple[list[str], list[str]]:
    fake = FakeHost("board", {"AccountRecord": {"user": None, "group": None, "primary_for": [], **found}})
    with ctx_state.use(object()), ctx_host.use(fake):
        commands = [c.get_raw_value() if isinstance(c, StringCommand) else c
                    for c in service_account_removed._inner(user="llamafleet", group="llamafleet", **kwargs)]
    return commands, fake.noops


def test_the_account_llamafleet_made_goes_with_its_own_group():
    assert run_op({"user": OURS, "group": OWN_GROUP}, login_user="root") == ([USERDEL, GROUPDEL], [])


def test_the_group_stays_when_someone_else_uses_it():
    assert run_op({"user": OURS, "group": {"gid": 998, "members": ["alice"]}})[0] == [USERDEL]
    assert run_op({"user": OURS, "group": OWN_GROUP, "primary_for": ["bob"]})[0] == [USERDEL]
    assert run_op({"user": OURS, "group": {"gid": 1000, "members": []}})[0] == [USERDEL]


def test_no_account_is_a_noop():
    assert run_op({}) == ([], ["no user llamafleet"])


@pytest.mark.parametrize("account, login, why", [
    ({**OURS, "comment": "Alice's llamafleet"}, "root", "was not made by llamafleet"),
    ({**OURS, "uid": 0}, "root", "has uid 0"),
    (OURS, "llamafleet", "the one the controller logs in as"),
])
def test_an_account_llamafleet_did_not_make_or_must_keep_stays(account, login, why):
    commands, noops = run_op({"user": account, "group": OWN_GROUP}, login_user=login)
    assert commands == [] and why in noops[0]


def test_the_fact_reads_getent_output():
    found = AccountRecord().process([
        f"llamafleet:x:998:998:{ACCOUNT_COMMENT}:/nonexistent:/usr/sbin/nologin",
        "@group", "llamafleet:x:998:alice,bob", "@primary", "carol",
    ])
    assert found == {"user": OURS, "group": {"gid": 998, "members": ["alice", "bob"]}, "primary_for": ["carol"]}
    assert AccountRecord().process(["@group", "@primary"]) == {"user": None, "group": None, "primary_for": []}


def test_the_fact_command_runs_for_an_account_of_this_machine():
    fact = AccountRecord()
    output = subprocess.run(["sh", "-c", fact.command("root", "root")], capture_output=True, text=True, check=True)
    found = fact.process(output.stdout.splitlines())
    assert found["user"]["uid"] == 0 and found["group"]["gid"] == 0


def test_the_delete_commands_fail_only_when_the_name_stays(tmp_path):
    """Run with stand-ins for getent and userdel: gone already is success, a refused delete of
    an account still there is a failure."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "getent").write_text('#!/bin/sh\n[ -e "$STATE/$1" ]\n')
    (bin_dir / "userdel").write_text('#!/bin/sh\n[ -n "$REFUSE" ] && exit 8; rm -f "$STATE/passwd"\n')
    for tool in ("getent", "userdel"):
        (bin_dir / tool).chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()

    def run(refuse: bool) -> int:
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STATE": str(state), "REFUSE": "1" if refuse else ""}
        return subprocess.run(["sh", "-c", USERDEL], env=env).returncode

    assert run(refuse=True) == 0  # no such user (another host removed it): nothing to do
    (state / "passwd").write_text("")
    assert run(refuse=True) != 0  # still there after a refused userdel: the host fails
    assert run(refuse=False) == 0 and not (state / "passwd").exists()


def test_the_comment_is_the_one_the_deploy_gives_the_account_it_makes():
    from llamafleet.serving.account import service_account

    fake = FakeHost("board", {"ServiceAccount": {"user": None, "group": None}})
    with ctx_state.use(object()), ctx_host.use(fake):
        made = " ".join(c.get_raw_value() for c in service_account._inner(user="llamafleet", group="llamafleet"))
    assert f"--comment '{ACCOUNT_COMMENT}'" in made
