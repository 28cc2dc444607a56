"""Removing the system account llamafleet's services run as on Linux, when llamafleet made it.

The deploy (llamafleet.serving.account) makes the `service_user` account (default "llamafleet")
only when the name is free, with `useradd --system --comment "llamafleet services"`, and the
group of the same name only when that is free too; an account that was there is left as it was.
The comment is what tells the two apart afterwards: an account without it is the user's, kept.
An account with uid 0 is never removed, nor the one the controller logs in as (never lock SSH
out).

The group goes with the account when it is the account's own: the account's primary group, no
members, no other account's primary group. Debian's `userdel` removes such a group itself (USERGROUPS_ENAB in
login.defs); the `groupdel` after it runs only if the group is still there, so it is right with
either setting. userdel refuses an account that still runs a process: the services are removed
first (remove.py).
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, operation

# The comment (GECOS) the deploy gives the account it makes (useradd --comment).
from llamafleet.serving.account import COMMENT as ACCOUNT_COMMENT


class AccountRecord(FactBase):
    """
    An account and a group as the system's databases hold them (None when absent), and which
    other accounts have that group as their primary group.

    .. code:: python

        {"user": {"uid": 998, "gid": 998, "comment": "llamafleet services", "home": "/nonexistent"},
         "group": {"gid": 998, "members": []}, "primary_for": []}
    """

    def command(self, account: str, group: str) -> str:
        user, group = shlex.quote(account), shlex.quote(group)
        return (
            f"getent passwd {user} || true; echo @group; getent group {group} || true; echo @primary; "
            f"gid=$(getent group {group} | cut -d: -f3); "
            f"[ -n \"$gid\" ] && getent passwd | awk -F: -v gid=\"$gid\" -v me={user} "
            "'$4 == gid && $1 != me {print $1}'; true"
        )

    def process(self, output):
        section, found = "user", {"user": None, "group": None, "primary_for": []}
        for line in (line.rstrip("\n") for line in output):
            if line in ("@group", "@primary"):
                section = line[1:]
            elif section == "user" and line.count(":") == 6 and found["user"] is None:
                _, _, uid, gid, comment, home, _ = line.split(":")
                found["user"] = {"uid": int(uid), "gid": int(gid), "comment": comment, "home": home}
            elif section == "group" and line.count(":") == 3 and found["group"] is None:
                _, _, gid, members = line.split(":")
                found["group"] = {"gid": int(gid), "members": [m for m in members.split(",") if m]}
            elif section == "primary" and line.strip():
                found["primary_for"].append(line.strip())
        return found


def _kept_reason(name: str, account: dict, login_user: str | None) -> str | None:
    """Why the account stays, or None when it is llamafleet's to remove."""
    if account["uid"] == 0:
        return f"user {name} has uid 0: kept"
    if name == login_user:
        return f"user {name} is the one the controller logs in as: kept"
    if account["comment"] != ACCOUNT_COMMENT:
        return f"user {name} was not made by llamafleet (its comment is not {ACCOUNT_COMMENT!r}): kept"
    return None


@operation()
def service_account_removed(user: str, group: str, login_user: str | None = None):
    """
    Remove the service account and its own group when llamafleet made them.

    + user: the account's name (the plan's service_user)
    + group: its group's name (the plan's service_group)
    + login_user: the account the controller logs in as (`ssh_user`), never removed

    **Example:**

    .. code:: python

        service_account_removed(name="Service user", user="llamafleet", group="llamafleet", login_user="root")
    """
    found = host.get_fact(AccountRecord, account=user, group=group)
    account = found["user"]
    if account is None:
        host.noop(f"no user {user}")
        return
    reason = _kept_reason(user, account, login_user)
    if reason:
        host.noop(reason)
        return
    yield _gone_after("passwd", user, "userdel")
    existing = found["group"]
    own_group = (existing is not None and existing["gid"] == account["gid"]
                 and set(existing["members"]) <= {user} and not found["primary_for"])
    if own_group:
        yield _gone_after("group", group, "groupdel")


def _gone_after(database: str, name: str, delete: str) -> StringCommand:
    """`delete name` where it is still there when the command runs; a failure is one only if the
    name is still there after it. userdel may have removed the group already (USERGROUPS_ENAB),
    and hosts sharing /etc/passwd (the lab's Linux hosts share the machine's) remove it at once."""
    absent = ["!", "getent", database, QuoteString(name), ">/dev/null"]
    return StringCommand(*absent, "||", delete, QuoteString(name), "||", *absent)
