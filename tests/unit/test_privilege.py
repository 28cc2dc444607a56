"""llamafleet.privilege: on a host whose data says `_sudo` (a Pi logged into as `alice`), `status`
and `verify` run their commands through sudo, as the deploy does (pyinfra's command line, never a
prompt); on every other host as they are. Checked on the command text, in a local shell with a
stub sudo (the wrapped command still does the same), through `status`, and through testinfra
over a real SSH server."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from llamafleet import status
from llamafleet.privilege import as_deployed, sudo_command, uses_sudo
from llamafleet.status_probe import Target
from llamafleet.testinfra_ssh import verify_host
from rpc_fakes import planned_worker
from ssh_fakes import server  # noqa: F401  (server: the fixture)

COMMAND = "iptables -w -S LLAMAFLEET; cat '/opt/llamafleet/etc/api key'"


@pytest.mark.parametrize("data, expected", [
    ({"_sudo": True}, f"sudo -H -n sh -c {shlex.quote(COMMAND)}"),
    ({"_sudo": True, "_sudo_user": "llama"}, f"sudo -H -n -u llama sh -c {shlex.quote(COMMAND)}"),
    ({"_sudo": False}, COMMAND),
    ({"_sudo_user": "llama"}, COMMAND),  # pyinfra too becomes no one without _sudo
    ({"ssh_user": "root"}, COMMAND),
    ({}, COMMAND),
])
def test_the_command_goes_through_sudo_only_where_the_deploy_uses_it(data, expected):
    assert as_deployed(COMMAND, data) == expected
    assert uses_sudo(data) == (expected != COMMAND)


def test_it_is_the_command_line_pyinfra_runs_with_sudo():
    from pyinfra.connectors.util import make_unix_command

    deploy = make_unix_command(COMMAND, _sudo=True, _sudo_user="llama", _shell_executable="sh").get_raw_value()
    assert sudo_command(COMMAND, "llama") == deploy
    assert " -n " in deploy, "a sudo that may prompt would hang a status run"


def fake_sudo(directory: Path) -> Path:
    """A `sudo` that records its arguments and runs what follows its options."""
    calls = directory / "sudo-calls"
    script = directory / "sudo"
    script.write_text(
        f'#!/bin/sh\necho "$*" >> {calls}\n'
        'while [ $# -gt 0 ]; do case $1 in -u) shift 2;; -*) shift;; *) break;; esac; done\nexec "$@"\n')
    script.chmod(0o755)
    return calls


def test_the_wrapped_command_does_what_the_plain_one_does(tmp_path):
    calls = fake_sudo(tmp_path)
    tricky = "printf '%s|' \"a b\" 'it'\"'\"'s' $((1 + 2)); echo"
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    plain = subprocess.run(["sh", "-c", tricky], capture_output=True, text=True, env=env)
    wrapped = subprocess.run(["sh", "-c", as_deployed(tricky, {"_sudo": True})], capture_output=True, text=True, env=env)
    assert plain.stdout == "a b|it's|3|\n"
    assert wrapped.stdout == plain.stdout and wrapped.returncode == 0
    assert calls.read_text().startswith("-H -n sh -c "), "sudo was not run"


# --- status ------------------------------------------------------------------------------------


def status_target(base: Path, data: dict) -> Target:
    """A Linux worker under runit whose llamafleet lives in `base` (a stub `sv` answers)."""
    return Target(planned_worker("127.0.0.1", 1, "127.0.0.1", platform="linux"), data, "runit", str(base), "")


def recording_runner(path: str, seen: list):
    def run(name, data, command):
        seen.append(command)
        result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60,
                                env=dict(os.environ, PATH=path))
        return result.returncode, result.stdout, result.stderr
    return run


@pytest.mark.parametrize("data", [{"_sudo": True, "ssh_user": "alice"}, {"ssh_user": "root"}])
def test_status_probes_a_sudo_host_through_sudo_and_reads_the_same(tmp_path, data):
    calls = fake_sudo(tmp_path)
    (tmp_path / "sv").write_text('#!/bin/sh\necho "run: $2: (pid 4242) 1800s; run: log: (pid 4200) 86400s"\n')
    (tmp_path / "sv").chmod(0o755)
    seen: list[str] = []
    found = status.check_host(status_target(tmp_path / "base", data),
                              recording_runner(f"{tmp_path}:{os.environ['PATH']}", seen), "linux1")
    assert len(seen) == 1
    assert seen[0].startswith("sudo -H -n sh -c ") == uses_sudo(data)
    assert calls.exists() == uses_sudo(data)
    assert found.reachable and found.services[0].state == "running" and found.services[0].pid == 4242


def test_a_sudo_that_wants_a_password_is_named_with_its_fix(tmp_path):
    def refused(name, data, command):
        return 1, "", "sudo: a password is required\n"
    found = status.check_host(status_target(tmp_path, {"_sudo": True}), refused, "linux1")
    assert [p.check for p in found.problems] == ["probe"]
    assert "a password is required" in found.problems[0].detail and "NOPASSWD" in found.problems[0].fix
    plain = status.check_host(status_target(tmp_path, {}), lambda *a: (127, "", "sh: not found"), "linux1")
    assert "NOPASSWD" not in plain.problems[0].fix


# --- verify (testinfra) ------------------------------------------------------------------------


def test_verify_runs_every_command_of_a_sudo_host_through_sudo(server):
    host = verify_host("pi", server.data(_sudo=True))
    assert host.run("iptables -w -S INPUT").stdout == "ran:sudo -H -n sh -c 'iptables -w -S INPUT'"
    # testinfra's modules build their commands through the same backend: sudo too.
    with pytest.raises(AssertionError, match=r"command=b\"sudo -H -n sh -c 'uname -s'\""):
        host.system_info.type  # noqa: B018 (a property that runs `uname -s`; the fake answers exit 3)


def test_verify_uses_the_sudo_user_and_testinfras_own_switch(server):
    host = verify_host("pi", server.data(_sudo=True, _sudo_user="llama"))
    assert host.run("id -u").stdout == "ran:sudo -H -n -u llama sh -c 'id -u'"
    plain = verify_host("board", server.data())
    assert plain.run("id -u").stdout == "ran:id -u"
    with plain.sudo():  # testinfra's context manager: pyinfra's sudo line too, never a prompt
        assert plain.run("id -u").stdout == "ran:sudo -H -n sh -c 'id -u'"
    assert plain.run("id -u").stdout == "ran:id -u"
