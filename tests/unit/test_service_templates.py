"""The run scripts and boot script llamafleet writes, rendered and executed for real."""

from __future__ import annotations

import subprocess

import jinja2
import pytest

from llamafleet.serving.services import Service, definition_context, layout_for
from llamafleet.serving.tunnels import authorized_key_line, known_hosts_line, tunnel_argv
from llamafleet.serving.wakelock import take_command
from llamafleet.templates import TEMPLATES


def render(relative: str, **context) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined)
    return env.get_template(relative).render(**context)


def run_script(service: Service, shell: str = "/bin/bash") -> str:
    """The run script supervise() writes under Linux runit, with this shell."""
    return render("runit/run.j2", **{**definition_context(service, layout_for("runit", service.name)), "shell": shell})


def execute(script: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "run"
    path.write_text(script)
    path.chmod(0o755)
    return subprocess.run([str(path)], capture_output=True, text=True, timeout=30)


def test_run_script_execs_the_command_with_its_environment(tmp_path):
    service = Service("s", "test", ["sh", "-c", 'echo "cache=$LLAMA_CACHE args=$0"', "x y"], env=[("LLAMA_CACHE", "/c")])
    result = execute(run_script(service, shell="/bin/sh"), tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == "cache=/c args=x y"


def test_run_script_runs_prestart_lines_before_the_command(tmp_path):
    marker = tmp_path / "prestart-ran"
    service = Service("s", "t", ["sh", "-c", f"test -f {marker} && echo after-prestart"], prestart=[f"touch {marker}"])
    result = execute(run_script(service, shell="/bin/sh"), tmp_path)
    assert result.stdout.strip() == "after-prestart"


def systemd_unit(service: Service) -> str:
    """The unit supervise() writes under systemd."""
    return render("systemd/service.j2", **definition_context(service, layout_for("systemd", service.name)))


def test_systemd_unit_restarts_however_often_and_waits_for_nothing():
    """A worker may be away for hours: no start limit. Waiting for workers is the master's
    launcher's (llamafleet.serving.launcher), not the unit's."""
    unit = systemd_unit(Service("s", "t", ["echo"]))
    assert "StartLimitIntervalSec=0" in unit and "RestartSec=2" in unit
    assert "/dev/tcp" not in unit and "TimeoutStartSec" not in unit


@pytest.mark.parametrize(
    "sshd_service, expected",
    [
        (None, ["wake-lock", "sshd", "start-services"]),  # nobody supervises sshd: start it
        ("enabled", ["wake-lock", "start-services"]),  # `sv-enable sshd`: the services start it
        ("down", ["wake-lock", "sshd", "start-services"]),  # termux-services' sshd, not enabled
    ],
)
def test_boot_script_takes_wake_lock_starts_sshd_once_then_services(tmp_path, sshd_service, expected):
    prefix = tmp_path / "usr"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "etc/profile.d").mkdir(parents=True)
    calls = tmp_path / "calls"
    for name, body in (("termux-wake-lock", "echo wake-lock"), ("sshd", "echo sshd"), ("pgrep", "exit 1")):
        (prefix / "bin" / name).write_text(f"#!/bin/sh\n{body} >> {calls}\n")
        (prefix / "bin" / name).chmod(0o755)
    (prefix / "etc/profile.d/start-services.sh").write_text(f"echo start-services >> {calls}\n")
    if sshd_service:
        (prefix / "var/service/sshd").mkdir(parents=True)
        if sshd_service == "down":
            (prefix / "var/service/sshd/down").touch()
    script = render(
        "termux/boot.sh.j2", prefix=str(prefix), address="127.0.0.1", network_wait=4, log_file=str(tmp_path / "boot.log"),
        wake_lock=take_command(str(tmp_path / "run/wake-lock")),
    ).replace(f"#!{prefix}/bin/sh", "#!/bin/sh")
    path = tmp_path / "50-llamafleet"
    path.write_text(script)
    path.chmod(0o700)
    env = {"PATH": f"{prefix}/bin:/usr/bin:/bin"}
    subprocess.run([str(path)], check=True, env=env, timeout=30)
    assert calls.read_text().split() == expected
    assert "taking the wake lock" in (tmp_path / "boot.log").read_text()


@pytest.mark.parametrize("manager", ["termux-services", "runit", "systemd"])
def test_layouts_are_where_each_manager_looks(manager):
    layout = layout_for(manager, "llama-rpc", prefix="/data/data/com.termux/files/usr")
    expected = {
        "termux-services": "/data/data/com.termux/files/usr/var/service/llama-rpc",
        "runit": "/etc/sv/llama-rpc",
        "systemd": "/etc/systemd/system/llamafleet-llama-rpc.service",
    }
    assert layout.definition_dir == expected[manager]


def test_unknown_manager_is_refused():
    with pytest.raises(ValueError, match="unknown service manager"):
        layout_for("upstart", "x")


def test_tunnel_key_is_restricted_to_one_forward():
    line = authorized_key_line("ssh-ed25519 AAAAC3 llamafleet-tunnel", 50052)
    assert line == (
        'restrict,port-forwarding,command="exit 1",permitopen="127.0.0.1:50052",permitlisten="127.0.0.1:1" '
        "ssh-ed25519 AAAAC3 llamafleet-tunnel"
    )


def test_tunnel_command_fails_fast_and_checks_host_keys():
    argv = tunnel_argv(key_file="/k", known_hosts="/kh", user="u0_a201", address="198.18.0.11", ssh_port=8022, rpc_port=50052)
    assert "ExitOnForwardFailure=yes" in argv and "StrictHostKeyChecking=yes" in argv
    assert argv[-2:] == ["127.0.0.1:50052:127.0.0.1:50052", "u0_a201@198.18.0.11"]
    assert known_hosts_line("198.18.0.11", 8022, "ssh-ed25519 AAAA comment") == "[198.18.0.11]:8022 ssh-ed25519 AAAA"
