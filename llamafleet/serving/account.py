"""The unprivileged user llamafleet's services run as on Linux, and who may read what they read.

llama.cpp's RPC has no authentication and has had remote-code-execution bugs: whoever reaches a
worker's port, or exploits llama-server, gets what the process has. So on Linux every llamafleet
process (rpc-server, llama-server, the master's SSH tunnels, their svlogd loggers) runs as the
plan's `service_user`, a system account made here: no login shell, no password, home
/nonexistent (nothing it runs needs one: the tunnels get their key and known hosts on the command
line, the RPC cache its directory in LLAMA_CACHE). Binaries and model stay root's and readable by
all; the secrets the services read are root's and readable by the service's group only, except
the tunnel key, which ssh wants its user to own. Termux has one user, the app's: nothing changes.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, operation
from pyinfra.api.exceptions import OperationError

NO_HOME = "/nonexistent"
NO_LOGIN = "/usr/sbin/nologin"
COMMENT = "llamafleet services"


class ServiceAccount(FactBase):
    """
    The account and group of that name as the system's databases hold them (None when absent).

    .. code:: python

        {"user": {"uid": 998, "gid": 998, "home": "/nonexistent", "shell": "/usr/sbin/nologin"},
         "group": {"gid": 998, "members": []}}
    """

    def command(self, user: str, group: str) -> str:
        return f"getent passwd {shlex.quote(user)} || true; echo --; getent group {shlex.quote(group)} || true"

    def process(self, output):
        text = list(output)
        split = text.index("--") if "--" in text else len(text)
        passwd = [line.split(":") for line in text[:split] if line.count(":") == 6]
        groups = [line.split(":") for line in text[split + 1:] if line.count(":") == 3]
        user = group = None
        if passwd:
            _, _, uid, gid, _, home, shell = passwd[0]
            user = {"uid": int(uid), "gid": int(gid), "home": home, "shell": shell}
        if groups:
            group = {"gid": int(groups[0][2]), "members": [m for m in groups[0][3].split(",") if m]}
        return {"user": user, "group": group}


def _unless_present(database: str, name: str, create: list[str]) -> StringCommand:
    """`create` unless `name` is in `database` when the command runs; a failure is one only if
    the name is still missing after it. Another host sharing /etc/passwd (the lab's Linux hosts
    share the machine's) or a package install may add the name between the fact and the command."""
    present = ["getent", database, QuoteString(name), ">/dev/null"]
    return StringCommand(*present, "||", *map(QuoteString, create), "||", *present)


@operation()
def service_account(user: str, group: str, allow_root: bool = False):
    """
    Make `group` and `user` exist as a system account for services: no login shell, no
    password, home /nonexistent, `group` its primary group. An account or group that exists is
    left exactly as it is (pyinfra's `server.user` would change the shell and home of any
    account of that name; this one never touches an account it did not make).

    + user: the account's name (the plan's service_user)
    + group: its group's name (the plan's service_group)
    + allow_root: whether an account with uid 0 is acceptable (service_user_allow_root)

    **Example:**

    .. code:: python

        service_account(name="Service user", user="llamafleet", group="llamafleet")
    """
    found = host.get_fact(ServiceAccount, user=user, group=group)
    account, existing_group = found["user"], found["group"]
    if account is not None and account["uid"] == 0 and not allow_root:
        raise OperationError(f"{host.name}: service_user: {user!r} has uid 0, it is root: set another user, "
                             "or service_user_allow_root = True")
    if existing_group is None:
        yield _unless_present("group", group, ["groupadd", "--system", group])
    if account is None:
        yield _unless_present("passwd", user, [
            "useradd", "--system", "--gid", group, "--home-dir", NO_HOME, "--no-create-home",
            "--shell", NO_LOGIN, "--comment", COMMENT, user,
        ])
    if account is not None and existing_group is not None:
        host.noop(f"user {user} and group {group} exist")


# --- who may reach llamafleet's directory --------------------------------------------------------


class DirectoryChain(FactBase):
    """
    Mode, owner and group of a path and of every directory above it, those that exist (the
    path first, / last).

    .. code:: python

        [{"path": "/opt/llamafleet", "mode": 0o755, "user": "root", "group": "root"},
         {"path": "/opt", "mode": 0o755, "user": "root", "group": "root"},
         {"path": "/", "mode": 0o755, "user": "root", "group": "root"}]
    """

    def command(self, path: str) -> str:
        return (f"p={shlex.quote(path)}; while :; do [ -e \"$p\" ] && stat -c '%a %U %G %n' \"$p\"; "
                "[ \"$p\" = / ] && break; p=$(dirname \"$p\"); done; true")

    def process(self, output):
        chain = []
        for line in output:
            parts = line.split(" ", 3)
            if len(parts) == 4:
                mode, owner, group, path = parts
                chain.append({"path": path, "mode": int(mode, 8), "user": owner, "group": group})
        return chain


def blocking_directory(chain: list[dict], user: str, group: str) -> str | None:
    """The first directory of `chain` (DirectoryChain) that `user`, running with `group` alone,
    cannot pass through, described; None when every one lets it through (root passes all)."""
    if user == "root":
        return None
    for entry in chain:
        mode = entry["mode"]
        if entry["user"] == user:
            allowed = mode & 0o100
        elif entry["group"] == group:
            allowed = mode & 0o010
        else:
            allowed = mode & 0o001
        if not allowed:
            return f"{entry['path']} (mode {mode & 0o7777:o}, owner {entry['user']}, group {entry['group']})"
    return None


def unreachable_base_message(host_name: str, base: str, blocked: str, user: str) -> str:
    return (f"{host_name}: llamafleet_dir: the service user {user!r} cannot pass through {blocked} to "
            f"reach {base}, so its services could not read their binary and model; choose a directory "
            f"outside private ones such as /root (the default is /opt/llamafleet), or let others pass "
            f"(chmod o+x)")


# --- owner, group and mode of what the services read ---------------------------------------------


@dataclass(frozen=True)
class Access:
    """Owner, group and mode for a file or directory (owner and group None: left as they are)."""

    user: str | None
    group: str | None
    mode: str


def secrets_dir_access(planned) -> Access:
    """<base>/etc: root's, passable by the service's group alone (Termux: the app's, 700)."""
    if planned.service_user is None:
        return Access(None, None, "700")
    return Access("root", planned.service_group, "750")


def read_by_service(planned, termux_mode: str = "600") -> Access:
    """A file the service reads and must not change (the API key, the chat template, the
    tunnels' known hosts): root's, readable by the service's group alone."""
    if planned.service_user is None:
        return Access(None, None, termux_mode)
    return Access("root", planned.service_group, "640")


def owned_by_service(planned) -> Access:
    """The tunnels' private key: the service user's, mode 600, readable by it alone (and root),
    as ssh expects a private key to be."""
    if planned.service_user is None:
        return Access(None, None, "600")
    return Access(planned.service_user, planned.service_group, "600")


def listen_capabilities(port: int) -> list[str]:
    """The capabilities a service listening on `port` keeps: binding below 1024 takes
    CAP_NET_BIND_SERVICE, even for root once systemd has emptied its bounding set
    (`llamafleet check` allows such a port to root alone, runit's chpst grants no capability)."""
    return ["CAP_NET_BIND_SERVICE"] if port < 1024 else []
