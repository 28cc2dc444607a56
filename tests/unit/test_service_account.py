"""The service user: made once as a system account, an existing account left alone, the base
directory reachable by it, and who owns the secrets it reads."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest
from pyinfra.api import StringCommand
from pyinfra.api.exceptions import OperationError
from pyinfra.context import ctx_host, ctx_state

from llamafleet.serving.account import (
    DirectoryChain,
    ServiceAccount,
    blocking_directory,
    listen_capabilities,
    owned_by_service,
    read_by_service,
    secrets_dir_access,
    service_account,
)

# What `getent passwd llamafleet; echo --; getent group llamafleet` prints on Debian once made.
MADE = ["llamafleet:x:998:998:llamafleet services:/nonexistent:/usr/sbin/nologin", "--", "llamafleet:x:998:"]


class FakeHost:
    def __init__(self, output: list[str]):
        self.name = "linux1"
        self.found = ServiceAccount().process(output)
        self.noops: list[str] = []

    def get_fact(self, cls, **kwargs):
        assert cls is ServiceAccount and kwargs == {"user": "llamafleet", "group": "llamafleet"}
        return self.found

    def noop(self, text):
        self.noops.append(text)


def commands(fake, **kwargs) -> list[str]:
    with ctx_state.use(object()), ctx_host.use(fake):
        made = list(service_account._inner(user="llamafleet", group="llamafleet", **kwargs))
    return [command.get_raw_value() if isinstance(command, StringCommand) else command for command in made]


GROUPADD = "getent group llamafleet >/dev/null || groupadd --system llamafleet || getent group llamafleet >/dev/null"
USERADD = ("getent passwd llamafleet >/dev/null || useradd --system --gid llamafleet --home-dir /nonexistent "
           "--no-create-home --shell /usr/sbin/nologin --comment 'llamafleet services' llamafleet || "
           "getent passwd llamafleet >/dev/null")


def test_the_fact_reads_getent():
    assert ServiceAccount().process(MADE) == {
        "user": {"uid": 998, "gid": 998, "home": "/nonexistent", "shell": "/usr/sbin/nologin"},
        "group": {"gid": 998, "members": []},
    }
    assert ServiceAccount().process(["--"]) == {"user": None, "group": None}
    assert ServiceAccount().process(["--", "llm:x:1001:alice,bob"])["group"] == {"gid": 1001, "members": ["alice", "bob"]}
    assert "getent passwd llamafleet" in ServiceAccount().command("llamafleet", "llamafleet")


def test_a_fresh_host_gets_the_group_then_the_system_account():
    assert commands(FakeHost(["--"])) == [GROUPADD, USERADD]


def test_an_existing_group_gets_only_the_account_and_an_existing_account_nothing():
    assert commands(FakeHost(["--", "llamafleet:x:998:"])) == [USERADD]
    # An account made by someone else (another shell, another home) is left exactly as it is.
    fake = FakeHost(["llamafleet:x:1000:1000:me:/home/llamafleet:/bin/bash", "--", "llamafleet:x:1000:"])
    assert commands(fake) == [] and fake.noops == ["user llamafleet and group llamafleet exist"]
    assert commands(FakeHost(MADE)) == []


def test_an_account_with_uid_0_needs_the_opt_in():
    toor = FakeHost(["llamafleet:x:0:0:root alias:/root:/bin/bash", "--", "llamafleet:x:0:"])
    with pytest.raises(OperationError, match="linux1: service_user: 'llamafleet' has uid 0"):
        commands(toor)
    assert commands(toor, allow_root=True) == []


GETENT = """#!/bin/sh
# getent stand-in: a name is present once its file in $DB exists.
test -e "$DB/$1-$2"
"""
ADD = """#!/bin/sh
# groupadd stand-in: records the call and adds the group.
echo "groupadd $*" >> "$DB/calls"
touch "$DB/group-llamafleet"
"""
# Someone else added the group first: groupadd fails as it does then ("already exists", 9).
ADD_TOO_LATE = ADD.replace('touch "$DB/group-llamafleet"', 'touch "$DB/group-llamafleet"; exit 9')


@pytest.mark.parametrize("present_before, added_meanwhile, calls, status", [
    (False, False, ["groupadd --system llamafleet"], 0),
    (True, False, [], 0),
    # Another host sharing /etc/group, or a package, made it between the fact and the command.
    (False, True, ["groupadd --system llamafleet"], 0),
])
def test_the_command_checks_again_when_it_runs(tmp_path, present_before, added_meanwhile, calls, status):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("getent", GETENT), ("groupadd", ADD_TOO_LATE if added_meanwhile else ADD)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    if present_before:
        (tmp_path / "group-llamafleet").touch()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "DB": str(tmp_path)}
    result = subprocess.run(["sh", "-c", GROUPADD], env=env, capture_output=True, text=True)
    assert result.returncode == status, result.stderr
    recorded = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    assert recorded == calls


def chain(*entries: tuple[str, int, str, str]) -> list[dict]:
    return [{"path": path, "mode": mode, "user": user, "group": group} for path, mode, user, group in entries]


def test_the_chain_fact_reads_stat():
    assert DirectoryChain().process(["755 root root /opt/llamafleet", "700 root root /root", "bad"]) == chain(
        ("/opt/llamafleet", 0o755, "root", "root"), ("/root", 0o700, "root", "root"))
    assert "stat -c '%a %U %G %n'" in DirectoryChain().command("/opt/llamafleet")


def test_a_base_under_roots_home_is_out_of_reach():
    home = chain(("/root/llamafleet", 0o755, "root", "root"), ("/root", 0o700, "root", "root"), ("/", 0o755, "root", "root"))
    assert blocking_directory(home, "llamafleet", "llamafleet") == "/root (mode 700, owner root, group root)"
    assert blocking_directory(home, "root", "root") is None
    opt = chain(("/opt", 0o755, "root", "root"), ("/", 0o755, "root", "root"))
    assert blocking_directory(opt, "llamafleet", "llamafleet") is None
    # Passable through the service's group, or as the directory's owner, but not by others' group.
    assert blocking_directory(chain(("/srv/lf", 0o750, "root", "llamafleet")), "llamafleet", "llamafleet") is None
    assert blocking_directory(chain(("/srv/lf", 0o700, "llamafleet", "x")), "llamafleet", "llamafleet") is None
    assert blocking_directory(chain(("/srv/lf", 0o750, "root", "staff")), "llamafleet", "llamafleet") is not None
    # The owner's bits decide for the owner, even when others may pass.
    assert blocking_directory(chain(("/srv/lf", 0o605, "llamafleet", "x")), "llamafleet", "llamafleet") is not None


def test_who_owns_what_the_services_read():
    linux = SimpleNamespace(service_user="llamafleet", service_group="llamafleet")
    phone = SimpleNamespace(service_user=None, service_group=None)
    as_tuple = lambda access: (access.user, access.group, access.mode)  # noqa: E731
    assert as_tuple(secrets_dir_access(linux)) == ("root", "llamafleet", "750")
    assert as_tuple(read_by_service(linux)) == ("root", "llamafleet", "640")
    assert as_tuple(owned_by_service(linux)) == ("llamafleet", "llamafleet", "600")
    # A phone keeps what it had: the app's own files, private.
    assert as_tuple(secrets_dir_access(phone)) == (None, None, "700")
    assert as_tuple(read_by_service(phone)) == (None, None, "600")
    assert as_tuple(read_by_service(phone, termux_mode="644")) == (None, None, "644")
    assert as_tuple(owned_by_service(phone)) == (None, None, "600")


def test_only_a_port_below_1024_keeps_a_capability():
    assert listen_capabilities(80) == ["CAP_NET_BIND_SERVICE"]
    assert listen_capabilities(1024) == listen_capabilities(50052) == []
