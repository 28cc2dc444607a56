"""Who a service runs as: on Linux its unit or run script starts the service as the plan's service
user (the firewall lines before it as root), svlogd too; a phone's scripts are what they were."""

from __future__ import annotations

import shlex
import subprocess
import time
from types import SimpleNamespace

import pytest

from llamafleet.serving import services
from llamafleet.serving.services import Service, definition_context, layout_for
from llamafleet.serving.wakelock import prestart_lines

from test_service_templates import render, run_script, systemd_unit

PREFIX = "/data/data/com.termux/files/usr"
RESTORE = ["iptables-restore -w --noflush /opt/llamafleet/etc/llamafleet.rules", "iptables -w -I INPUT 1 -j LLAMAFLEET"]


def worker(**fields) -> Service:
    return Service("llama-rpc", "ggml-rpc-server, rank 1", ["/opt/llamafleet/bin/ggml-rpc-server", "-p", "50052"],
                   **fields)


def service_lines(unit: str) -> list[tuple[str, str]]:
    """The [Service] section's settings as (key, value), in order, comments left out."""
    section, lines = "", []
    for line in unit.splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line and not line.startswith("#"):
            key, _, value = line.partition("=")
            lines.append((key, value))
    return lines


def test_the_unit_runs_the_service_as_the_user_and_the_firewall_lines_as_root():
    unit = systemd_unit(worker(prestart=RESTORE, user="llamafleet", group="llamafleet"))
    lines = service_lines(unit)
    assert ("User", "llamafleet") in lines and ("Group", "llamafleet") in lines
    pre = [value for key, value in lines if key == "ExecStartPre"]
    # Each firewall line with "+": as root, unsandboxed.
    assert [shlex.split(value) for value in pre] == [["+/bin/sh", "-c", line] for line in RESTORE]
    assert dict(lines)["ExecStart"] == "/opt/llamafleet/bin/ggml-rpc-server -p 50052"


def test_the_unit_is_sandboxed_beyond_what_it_was():
    lines = dict(service_lines(systemd_unit(worker(user="llamafleet", group="llamafleet"))))
    wanted = {
        "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
        "ProtectSystem": "strict", "ProtectHome": "read-only", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes", "RestrictNamespaces": "yes",
        "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
        "SystemCallArchitectures": "native", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }
    assert {key: lines.get(key) for key in wanted} == wanted
    # Not set: nothing here checked every llama.cpp build against it.
    assert "MemoryDenyWriteExecute" not in lines and "LimitMEMLOCK" not in lines


def test_a_unit_below_port_1024_keeps_that_one_capability_and_mlock_lifts_the_limit():
    lines = dict(service_lines(systemd_unit(worker(user="root", group="root", capabilities=["CAP_NET_BIND_SERVICE"],
                                                   memlock=True))))
    assert lines["CapabilityBoundingSet"] == lines["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert lines["LimitMEMLOCK"] == "infinity"


def test_a_unit_without_a_user_names_none():
    assert not {"User", "Group"} & dict(service_lines(systemd_unit(worker()))).keys()


FAKE_CHPST = """#!/bin/sh
# chpst stand-in: records its arguments, then runs the command after -u USER:GROUP.
printf '%s\\n' "$*" >> "$CALLS"
[ "$1" = -u ] && shift 2
exec "$@"
"""


def fake_bin(tmp_path, **programs: str):
    """A directory of stand-in programs, each body a shell script; returns the PATH to use."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in programs.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


def execute(script: str, tmp_path, path: str) -> subprocess.CompletedProcess:
    file = tmp_path / "script"
    file.write_text(script)
    file.chmod(0o755)
    env = {"PATH": path, "CALLS": str(tmp_path / "calls")}
    return subprocess.run([str(file)], capture_output=True, text=True, timeout=30, env=env)


def test_the_run_script_runs_the_firewall_lines_then_hands_over_to_the_user(tmp_path):
    marker = tmp_path / "prestart-ran"
    service = Service("s", "t", ["sh", "-c", f'test -f {marker} && echo "cache=$LLAMA_CACHE"'],
                      env=[("LLAMA_CACHE", "/c")], prestart=[f"touch {marker}"], user="llamafleet", group="llamafleet")
    script = run_script(service, shell="/bin/sh")
    assert script.rstrip().endswith(f"exec chpst -u llamafleet:llamafleet {service.command}")
    result = execute(script, tmp_path, fake_bin(tmp_path, chpst=FAKE_CHPST))
    assert result.stdout.strip() == "cache=/c", result.stdout + result.stderr
    assert (tmp_path / "calls").read_text().splitlines() == [f"-u llamafleet:llamafleet {' '.join(service.argv)}"]


def test_with_mlock_root_lifts_the_limit_before_handing_over():
    """Only root may raise the hard limit (CAP_SYS_RESOURCE): the run script does it before
    chpst, and the user's process inherits it."""
    lines = run_script(worker(user="llamafleet", group="llamafleet", memlock=True)).splitlines()
    assert lines.index("ulimit -l unlimited") < lines.index(next(line for line in lines if line.startswith("exec chpst")))
    assert "ulimit -l unlimited" not in run_script(worker(user="llamafleet", group="llamafleet"))


LOG_FAKES = {
    "chpst": FAKE_CHPST,
    "stat": '#!/bin/sh\ncat "$(dirname "$CALLS")/owner"\n',
    "chown": '#!/bin/sh\necho "chown $*" >> "$CALLS"\n',
    "svlogd": '#!/bin/sh\necho "svlogd $*" >> "$CALLS"\n',
}


@pytest.mark.parametrize("owner, handed_over", [("root", True), ("llamafleet", False)])
def test_the_log_script_hands_its_directory_over_once_then_runs_svlogd_as_the_user(tmp_path, owner, handed_over):
    log_dir = tmp_path / "log/llama-rpc"
    layout = layout_for("runit", "llama-rpc")
    context = {**definition_context(worker(user="llamafleet", group="llamafleet"), layout), "shell": "/bin/sh",
               "log_dir": str(log_dir)}
    (tmp_path / "owner").write_text(owner + "\n")
    result = execute(render("runit/log-run.j2", **context), tmp_path, fake_bin(tmp_path, **LOG_FAKES))
    assert result.returncode == 0, result.stderr
    assert log_dir.is_dir()
    expected = [f"-u llamafleet:llamafleet svlogd -tt {log_dir}", f"svlogd -tt {log_dir}"]
    if handed_over:
        expected.insert(0, f"chown -R llamafleet:llamafleet {log_dir}")
    assert (tmp_path / "calls").read_text().splitlines() == expected


def test_a_phones_scripts_are_as_they_were():
    """A phone's service has no user to switch to: its run and log scripts are byte for byte what
    they were before services got a user (a changed script would restart every phone's worker)."""
    record = "/data/data/com.termux/files/home/llamafleet/run/wake-lock"
    service = Service("llama-rpc", "ggml-rpc-server, rank 1, 127.0.0.1:50052",
                      ["/data/data/com.termux/files/home/llamafleet/bin/ggml-rpc-server", "-H", "127.0.0.1"],
                      prestart=prestart_lines(record))
    layout = layout_for("termux-services", "llama-rpc", PREFIX)
    context = definition_context(service, layout)
    assert render("runit/run.j2", **context) == (
        f"#!{PREFIX}/bin/sh\n"
        "# Managed by llamafleet: ggml-rpc-server, rank 1, 127.0.0.1:50052.\n"
        f"# Supervised by runit (termux-services); its log: {PREFIX}/var/log/sv/llama-rpc/current\n"
        "exec 2>&1\n"
        f"{prestart_lines(record)[0]}\n"
        f"exec {service.command}"
    )
    assert render("runit/log-run.j2", **{**context, "shell": layout.shell}) == (
        f"#!{PREFIX}/bin/sh\n"
        f"# Managed by llamafleet: keeps {PREFIX}/var/log/sv/llama-rpc/current (svlogd rotates it).\n"
        f"mkdir -p {PREFIX}/var/log/sv/llama-rpc\n"
        f"exec svlogd -tt {PREFIX}/var/log/sv/llama-rpc"
    )


def test_the_templates_never_get_an_owner_for_the_file_they_are_written_to():
    """files.template takes `user` and `group` as the owner of the file it writes: a run script
    owned by the service user could be rewritten by it, and runs as root."""
    context = definition_context(worker(user="llamafleet", group="llamafleet"), layout_for("runit", "llama-rpc"))
    assert not {"user", "group"} & context.keys()
    assert (context["service_user"], context["service_group"]) == ("llamafleet", "llamafleet")


class Recorder:
    """Stands in for the pyinfra operations supervise() calls, recording each call."""

    def __init__(self, changed: set[str]):
        self.changed, self.calls = changed, []

    def operation(self, kind):
        def call(**kwargs):
            self.calls.append((kind, kwargs))
            changed = any(word in kwargs.get("name", "") for word in self.changed)
            return SimpleNamespace(did_change=lambda: changed)
        return call


@pytest.mark.parametrize("changed, restarted", [
    ({"run script"}, ["restart (definition or binary changed)"]),
    ({"log script"}, ["restart its logger (log script changed)"]),
    (set(), []),
])
def test_a_changed_script_restarts_what_runs_it(monkeypatch, changed, restarted):
    """runsv runs the logger apart from the service: a new log script restarts the logger
    (`sv restart NAME/log`), a new run script the service, nothing changed neither."""
    recorder = Recorder(changed)
    monkeypatch.setattr(services.files, "template", recorder.operation("template"))
    monkeypatch.setattr(services.files, "link", recorder.operation("link"))
    monkeypatch.setattr(services.server, "shell", recorder.operation("shell"))
    monkeypatch.setattr(services, "runit_running", recorder.operation("running"))
    services.supervise(worker(user="llamafleet", group="llamafleet"), "runit")
    templates = [kwargs for kind, kwargs in recorder.calls if kind == "template"]
    assert not any("user" in kwargs or "group" in kwargs for kwargs in templates)
    shells = [kwargs for kind, kwargs in recorder.calls if kind == "shell"]
    assert [kwargs["commands"] for kwargs in shells] == [
        ["SVDIR=/etc/service sv restart llama-rpc || true"], ["SVDIR=/etc/service sv restart llama-rpc/log || true"]]
    fired = [kwargs["name"] for kwargs in shells if kwargs["_if"]()]
    assert [name.split(": ", 1)[1] for name in fired] == restarted


def _wait_for(predicate, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_runit_restarts_a_logger_only_when_asked_for_it_by_name(tmp_path):
    """With a real runsv: a new log/run is not run by `sv restart NAME` (the command the service
    restart uses), only by `sv restart NAME/log`, the logger restart supervise() adds."""
    svdir = tmp_path / "service"
    service = svdir / "llama-rpc"
    (service / "log").mkdir(parents=True)
    (service / "run").write_text("#!/bin/sh\nexec sleep 600\n")
    marker = tmp_path / "logger"
    logger = '#!/bin/sh\necho {version} > {marker}\nexec cat >/dev/null\n'
    (service / "log/run").write_text(logger.format(version="old", marker=marker))
    for script in (service / "run", service / "log/run"):
        script.chmod(0o755)
    runsv = subprocess.Popen(["runsv", str(service)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"SVDIR": str(svdir), "PATH": "/usr/bin:/bin"}
    try:
        assert _wait_for(lambda: marker.exists() and marker.read_text().strip() == "old")
        (service / "log/run").write_text(logger.format(version="new", marker=marker))
        subprocess.run(["sv", "restart", "llama-rpc"], env=env, capture_output=True, timeout=30)
        time.sleep(1)
        assert marker.read_text().strip() == "old", "sv restart NAME restarted the logger too"
        subprocess.run(["sv", "restart", "llama-rpc/log"], env=env, capture_output=True, timeout=30)
        assert _wait_for(lambda: marker.read_text().strip() == "new"), "the new log script never ran"
    finally:
        subprocess.run(["sv", "exit", str(service)], capture_output=True, timeout=30)
        runsv.wait(timeout=15)
