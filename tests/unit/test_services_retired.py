"""Retiring services no longer in the plan (a tunnel whose worker went direct).

The last test runs the retire commands against a real runsvdir in a temporary directory laid
out as termux-services lays out $PREFIX/var/service.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from pyinfra.api import StringCommand
from pyinfra.context import ctx_host, ctx_state

from llamafleet.serving.services import ManagedServices, layout_for, retire_commands, services_retired

PREFIX = "/data/data/com.termux/files/usr"


class FakeHost:
    def __init__(self, installed):
        self.name = "linux1"
        self.data = {}
        self.installed = installed
        self.noops: list[str] = []
        self.fact_args: dict = {}

    def get_fact(self, cls, **kwargs):
        assert cls is ManagedServices
        self.fact_args = kwargs
        return self.installed

    def noop(self, text):
        self.noops.append(text)


def run(fake, **kwargs):
    with ctx_state.use(object()), ctx_host.use(fake):
        commands = list(services_retired._inner(**kwargs))
    return [c.get_raw_value() if isinstance(c, StringCommand) else c for c in commands]


def test_fact_reads_names_from_each_manager_layout():
    fact = ManagedServices()
    assert fact.process(["/etc/sv/llama-tunnel-phone2\n", "/etc/sv/llama-tunnel-phone1"]) == [
        "llama-tunnel-phone1", "llama-tunnel-phone2"]
    assert fact.process(["/etc/systemd/system/llamafleet-llama-tunnel-phone1.service"]) == ["llama-tunnel-phone1"]
    assert "/etc/sv/llama-tunnel-*" in fact.command("runit", "llama-tunnel-*")
    assert f"{PREFIX}/var/service/llama-tunnel-*" in fact.command("termux-services", "llama-tunnel-*", PREFIX)
    assert "llamafleet-llama-tunnel-*.service" in fact.command("systemd", "llama-tunnel-*")


def test_nothing_stale_is_a_noop():
    fake = FakeHost(["llama-tunnel-phone1"])
    assert run(fake, name_glob="llama-tunnel-*", keep=["llama-tunnel-phone1"], manager="runit") == []
    assert fake.noops and fake.fact_args["name_glob"] == "llama-tunnel-*"


def test_only_the_stale_service_is_retired_runit():
    fake = FakeHost(["llama-tunnel-phone1", "llama-tunnel-phone2"])
    commands = run(fake, name_glob="llama-tunnel-*", keep=["llama-tunnel-phone1"], manager="runit")
    assert commands[0] == "rm -f /etc/service/llama-tunnel-phone2"  # unlinked before it is stopped
    assert commands[-1] == "rm -rf /etc/sv/llama-tunnel-phone2"
    assert not any("phone1" in command for command in commands)
    assert not fake.noops


def test_systemd_unit_is_disabled_and_removed():
    commands = retire_commands(layout_for("systemd", "llama-tunnel-phone1"), "llama-tunnel-phone1")
    assert commands == [
        "systemctl disable --now llamafleet-llama-tunnel-phone1.service || true",
        "rm -f /etc/systemd/system/llamafleet-llama-tunnel-phone1.service",
        "systemctl daemon-reload",
    ]


def _status(svdir, name):
    return subprocess.run(["sv", "status", f"{svdir}/{name}"], capture_output=True, text=True).stdout


def test_retire_stops_a_runit_service_for_good(tmp_path):
    prefix = tmp_path / "usr"
    svdir = prefix / "var" / "service"
    for name in ("llama-tunnel-phone1", "llama-tunnel-phone2"):
        service = svdir / name
        service.mkdir(parents=True)
        (service / "run").write_text(f"#!/bin/bash\nexec -a {name}-{tmp_path.name} sleep 600\n")
        (service / "run").chmod(0o755)
        # A log service, as every llamafleet service has: runsv exits only after its logger.
        (service / "log").mkdir()
        (service / "log/run").write_text("#!/bin/sh\nexec cat >/dev/null\n")
        (service / "log/run").chmod(0o755)
    runsvdir = subprocess.Popen(["runsvdir", str(svdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(
                _status(svdir, n).startswith("run:") for n in ("llama-tunnel-phone1", "llama-tunnel-phone2")):
            time.sleep(0.2)
        assert _status(svdir, "llama-tunnel-phone2").startswith("run:")

        layout = layout_for("termux-services", "llama-tunnel-phone2", str(prefix))
        script = "; ".join(retire_commands(layout, "llama-tunnel-phone2"))
        subprocess.run(["sh", "-c", script], check=True, timeout=30)

        assert not (svdir / "llama-tunnel-phone2").exists()
        # Gone when the commands end, runsv included: remove's before/after comparison looks at once.
        # Only this runsvdir's children: a lab on this machine runs runsv of the same name.
        supervisors = subprocess.run(["pgrep", "-P", str(runsvdir.pid), "-fx", "runsv llama-tunnel-phone2"],
                                     capture_output=True)
        assert supervisors.returncode == 1, "runsv of the retired service still runs"
        time.sleep(6)  # runsvdir rescans every 5 s: it must not bring the service back
        assert not (svdir / "llama-tunnel-phone2").exists()
        running = subprocess.run(["pgrep", "-f", f"llama-tunnel-phone2-{tmp_path.name}"], capture_output=True)
        assert running.returncode == 1, "the retired service's process is still running"
        assert _status(svdir, "llama-tunnel-phone1").startswith("run:"), "the kept service was disturbed"
    finally:
        runsvdir.terminate()
        runsvdir.wait(timeout=10)
        subprocess.run(["sv", "force-stop", str(svdir / "llama-tunnel-phone1")], capture_output=True)
        subprocess.run(["sv", "exit", str(svdir / "llama-tunnel-phone1")], capture_output=True)


@pytest.mark.parametrize("manager", ["runit", "termux-services"])
def test_retire_leaves_a_down_file_before_stopping(manager):
    commands = retire_commands(layout_for(manager, "llama-tunnel-x", PREFIX), "llama-tunnel-x")
    touch = next(i for i, c in enumerate(commands) if c.startswith("touch") and c.endswith("/down"))
    stop = next(i for i, c in enumerate(commands) if "force-stop" in c)
    assert touch < stop < len(commands) - 1 and commands[-1].startswith("rm -rf")
