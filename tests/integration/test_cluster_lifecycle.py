"""The whole life of a cluster on the lab, as a user lives it.

lab up -> deploy -> deploy again (no changes) -> verify -> outsider shut out -> kill a worker
(back within 5 s) -> verify -> kill a tunnel (back, next completion works) -> reboot a phone (boot
script: sshd and services new, wake lock held; doctor) -> the boot script removed: nothing comes
back, no wake lock (doctor and verify say so), the phone dozes; a deploy repairs -> verify -> a wrong model sha256 stops the deploy before any change ->
diagnose -> phones switched to direct and back (tunnels retired, then restored) -> verify fails
for each breakage and a deploy repairs it -> lab down. Figures are printed (cold deploy, no-op
re-run, tokens/s); they are measurements, not assertions.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llamafleet.lab import down, lab_exec, load_state, phone, reboot, up
from llamafleet.lab import sshd as lab_ssh
from llamafleet.serving.probes import tcp_reachable
from llamafleet.verify_cli import complete

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
INVENTORY = "inventory/lab.py"
BIN = Path(sys.executable).parent
FIGURES: dict[str, str] = {}


def run(*argv: str, timeout: int = 3600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, cwd=WORKDIR, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def deploy(*extra: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = run(str(BIN / "pyinfra"), "-y", INVENTORY, "deploy.py", *extra)
    return result, time.monotonic() - started


def changes(output: str) -> tuple[str, str]:
    """(success, error) columns of pyinfra's 'Grand total' line: '-' means none."""
    match = re.search(r"Grand total\s+\d+\s+(\S+)\s+(\S+)\s+(\S+)", output)
    assert match, f"no results table in pyinfra's output:\n{output[-3000:]}"
    return match.group(1), match.group(2)


def verify(*extra: str) -> subprocess.CompletedProcess:
    return run(str(BIN / "llamafleet"), "verify", INVENTORY, "--", "-x", "-p", "no:randomly", *extra, timeout=900)


def sv_pid(host: str, service: str, svdir: str) -> int | None:
    out = lab_exec(host, f"SVDIR={svdir} sv status {service}").stdout
    match = re.match(r"run: [^:]+: \(pid (\d+)\)", out)
    return int(match.group(1)) if match else None


def port_open(from_host: str, address: str, port: int) -> bool:
    return lab_exec(from_host, tcp_reachable(address, port)).returncode == 0


MASTER_API = "http://198.18.0.11:8080"


def completion_after_restart(wait_seconds: int = 180) -> dict:
    """A completion, once llama-server answers again: it aborts when a worker's connection
    breaks (upstream), runit restarts it and it reloads the model through every worker."""
    key = (WORKDIR / ".llamafleet/secrets/api-key").read_text().strip()
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return complete(MASTER_API, key, "The capital of France is", n_predict=16, timeout=120)
        except OSError as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"no completion {wait_seconds} s after the restart: {error}") from error
            time.sleep(2)


def tunnel_services() -> list[str]:
    return lab_exec("linux1", "ls /etc/sv | grep '^llama-tunnel-' || true").stdout.split()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces, sshd per host)")
    global WORKDIR
    # A copy of the deploy directory: the secrets and build cache the deploy keeps in
    # .llamafleet/ belong to this test run, not to the developer's checkout.
    WORKDIR = tmp_path_factory.mktemp("deploy")
    for item in ("deploy.py", "tasks", "group_data", "templates", "inventory"):
        source = REPO / item
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, WORKDIR / item)
    down()
    up(phones=2, linux=2)
    yield load_state()
    print("\nFIGURES " + ", ".join(f"{k}: {v}" for k, v in FIGURES.items()))
    down()


WORKDIR: Path = REPO


def test_first_deploy_converges(lab):
    result, seconds = deploy()
    FIGURES["cold deploy"] = f"{seconds:.0f} s"
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert "--> Results" in result.stderr + result.stdout
    for name in ("phone1", "phone2"):
        # Android 12+ kills an app's processes beyond 32: the lab's phones do too, and count.
        status = lab.boot_status(name)
        FIGURES[f"{name} peak processes"] = str(status["peak_processes"])
        assert status["phantom_kills"] == 0, f"{name}: the phantom process killer struck during the deploy"
        assert 0 < status["peak_processes"] <= 32


def test_second_deploy_changes_nothing(lab):
    result, seconds = deploy()
    FIGURES["no-op re-run"] = f"{seconds:.1f} s"
    output = result.stdout + result.stderr  # pyinfra logs its progress and results on stderr
    assert result.returncode == 0, output[-6000:]
    assert changes(output) == ("-", "-"), output[-6000:]


def test_verify_suite_passes(lab):
    result = verify("-s")
    match = re.search(r"completion: \d+ tokens, ([\d.]+) tokens/s", result.stdout)
    if match:
        FIGURES["tokens/s"] = match.group(1)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_outsider_is_shut_out_and_master_is_let_in(lab):
    hosts = {h.name: h for h in lab.hosts}
    master, board = hosts["linux1"], hosts["linux2"]
    rpc_port = 50052 + 3 - 1  # linux2 is rank 3 in the lab inventory (after the two phones)
    assert port_open("linux1", board.address, rpc_port), "the master cannot reach linux2's RPC port"
    assert not port_open("outsider", board.address, rpc_port), "the outsider reaches linux2's RPC port"
    assert not port_open("outsider", master.address, 8080), "the outsider reaches the master's API"
    for phone in ("phone1", "phone2"):
        for port in (50052, 50053):
            assert not port_open("outsider", hosts[phone].address, port), f"{phone}:{port} open to the outsider"
    # sysctl applied inside the Linux hosts only; the machine keeps its own value.
    inside = lab_exec("linux1", "sysctl -n net.ipv4.tcp_keepalive_time").stdout.strip()
    outside = subprocess.run(["sysctl", "-n", "net.ipv4.tcp_keepalive_time"], capture_output=True, text=True).stdout.strip()
    assert inside == "600" and outside != "600"


def test_killed_worker_is_back_within_5_seconds(lab):
    svdir = "/data/data/com.termux/files/usr/var/service"
    before = sv_pid("phone1", "llama-rpc", svdir)
    assert before, "llama-rpc is not running on phone1"
    lab_exec("phone1", "pkill -KILL -x ggml-rpc-server")
    deadline = time.monotonic() + 5
    after = None
    while time.monotonic() < deadline:
        after = sv_pid("phone1", "llama-rpc", svdir)
        if after and after != before:
            break
        time.sleep(0.2)
    assert after and after != before, "rpc-server not restarted within 5 s"
    result = verify()
    assert result.returncode == 0, result.stdout[-6000:]


def test_killed_tunnel_comes_back_and_the_next_completion_works(lab):
    before = sv_pid("linux1", "llama-tunnel-phone1", "/etc/service")
    assert before, "the tunnel to phone1 is not running on linux1"
    lab_exec("linux1", f"kill -KILL {before}")
    deadline = time.monotonic() + 10
    after = None
    while time.monotonic() < deadline:
        after = sv_pid("linux1", "llama-tunnel-phone1", "/etc/service")
        if after and after != before:
            break
        time.sleep(0.2)
    assert after and after != before, "the tunnel was not restarted within 10 s"
    answer = completion_after_restart()
    assert answer["tokens_predicted"] > 0 and answer["content"].strip(), answer
    FIGURES["completion after a tunnel kill"] = f"{answer['timings']['predicted_per_second']:.1f} tokens/s"


def doctor() -> subprocess.CompletedProcess:
    return run(str(BIN / "llamafleet"), "doctor", INVENTORY, timeout=300)


def doctor_row(output: str, phone: str, check: str) -> str:
    """The status column of one doctor row ("" when the row is missing)."""
    match = re.search(rf"^{phone}\s+{check}\s+(\S+)", output, re.MULTILINE)
    return match.group(1) if match else ""


PHONE_SVDIR = "/data/data/com.termux/files/usr/var/service"


def test_rebooted_phone_comes_back_by_its_boot_script(lab):
    sshd_before = set(lab_exec("phone2", "pgrep -x sshd").stdout.split())
    worker_before = sv_pid("phone2", "llama-rpc", PHONE_SVDIR)
    reboot("phone2")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not sv_pid("phone2", "llama-rpc", PHONE_SVDIR):
        time.sleep(1)
    assert sv_pid("phone2", "llama-rpc", PHONE_SVDIR), "rpc-server did not come back after the reboot"
    assert sv_pid("phone2", "llama-rpc", PHONE_SVDIR) != worker_before
    sshd_after = set(lab_exec("phone2", "pgrep -x sshd").stdout.split())
    assert sshd_after and not sshd_after & sshd_before, "sshd survived the reboot (Android keeps nothing)"
    assert phone.wake_lock("phone2", lab) == "held", "the boot script did not take the wake lock"
    result = verify()
    assert result.returncode == 0, result.stdout[-6000:]
    report = doctor()
    print("\n" + report.stdout)
    assert report.returncode == 0, report.stdout + report.stderr
    assert doctor_row(report.stdout, "phone2", "wake lock") == "OK"


def test_without_its_boot_script_a_rebooted_phone_stays_down_and_dozes(lab):
    """The owner removed the boot script: after a reboot nothing runs and SSH is refused. They
    start sshd by hand, but nobody took the wake lock: doctor and verify say so, and with the
    screen off the phone dozes. A deploy (screen on) repairs it all."""
    host = lab.host("phone2")
    assert lab_exec("phone2", "rm ~/.termux/boot/50-llamafleet").returncode == 0
    try:
        reboot("phone2")
        time.sleep(3)
        assert not lab_ssh.ssh_answers(host.address, host.ssh_port), "sshd came back with no boot script"
        assert not sv_pid("phone2", "llama-rpc", PHONE_SVDIR)
        assert lab_exec("phone2", "pgrep -x runsvdir").returncode == 1
        lab_exec("phone2", "sshd")  # the owner opens Termux and types sshd
        report = doctor()
        assert report.returncode == 1, report.stdout
        assert doctor_row(report.stdout, "phone2", "wake lock") == "FAIL", report.stdout
        assert doctor_row(report.stdout, "phone2", "boot script") == "FAIL", report.stdout
        assert doctor_row(report.stdout, "phone1", "wake lock") == "OK", report.stdout
        checked = verify("-k", "wake_lock")
        assert checked.returncode != 0 and "phone2" in checked.stdout, checked.stdout[-3000:]
        phone.set_screen("phone2", False, lab)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not lab.boot_status("phone2").get("dozing"):
            time.sleep(1)
        assert lab.boot_status("phone2").get("dozing"), "no wake lock, screen off, and the phone did not doze"
        assert not lab_ssh.ssh_answers(host.address, host.ssh_port, timeout=2.0)
    finally:
        phone.set_screen("phone2", True, lab)
    repaired, _ = deploy()
    assert repaired.returncode == 0, (repaired.stdout + repaired.stderr)[-6000:]
    assert phone.wake_lock("phone2", lab) == "held"
    report = doctor()
    assert doctor_row(report.stdout, "phone2", "wake lock") == "OK", report.stdout
    assert doctor_row(report.stdout, "phone2", "boot script") == "OK", report.stdout
    assert verify().returncode == 0


def test_wrong_model_sha256_stops_before_any_change(lab):
    before = lab_exec("linux1", "ls -l --time-style=+%s /opt/llamafleet/models").stdout
    result, _ = deploy("--data", "model_sha256=" + "f" * 64)  # not all digits: pyinfra would read an int
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "model_sha256" in output and "gemma-3-270m-q4_k_m.gguf" in output
    assert re.search(r"linux1|phone1|phone2|linux2", output)
    assert lab_exec("linux1", "ls -l --time-style=+%s /opt/llamafleet/models").stdout == before


def test_diagnose_reports_every_worker(lab):
    """With the master stopped the workers are free, so diagnose makes a real RPC HELLO."""
    lab_exec("linux1", "SVDIR=/etc/service sv down llama-server")
    try:
        result = run(str(BIN / "llamafleet"), "diagnose", INVENTORY, timeout=600)
    finally:
        lab_exec("linux1", "SVDIR=/etc/service sv up llama-server")
    assert result.returncode == 0, result.stdout + result.stderr
    for worker in ("phone1", "phone2", "linux2"):
        assert re.search(rf"{worker}\s+RPC protocol\s+OK\s+v7\.", result.stdout), result.stdout
        assert re.search(rf"{worker}\s+bind address\s+OK", result.stdout), result.stdout
    print("\n" + result.stdout)


def test_phones_switched_to_direct_and_back(lab):
    """Direct: tunnels and the tunnel key are retired, phones bind their address; back to the
    default: tunnels return and RPC is on 127.0.0.1 again. A completion works in both."""
    hosts = {h.name: h for h in lab.hosts}
    result, _ = deploy("--data", "rpc_transport=direct", "--data", "rpc_allow_insecure=true")
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert tunnel_services() == [], "a tunnel service outlived the switch to direct"
    assert lab_exec("linux1", "pgrep -f '[s]sh -N .*-L 127.0.0.1:5005' || true").stdout.strip() == ""
    for phone, port in (("phone1", 50052), ("phone2", 50053)):
        assert port_open("linux1", hosts[phone].address, port), f"{phone} does not serve RPC on its address"
        keys = lab_exec(phone, "cat ~/.ssh/authorized_keys").stdout
        assert "llamafleet-tunnel" not in keys, f"{phone} still accepts the tunnel key"
    answer = completion_after_restart()
    FIGURES["direct tokens/s"] = f"{answer['timings']['predicted_per_second']:.1f}"
    assert answer["tokens_predicted"] > 0

    result, _ = deploy()
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert tunnel_services() == ["llama-tunnel-phone1", "llama-tunnel-phone2"]
    for phone, port in (("phone1", 50052), ("phone2", 50053)):
        assert not port_open("linux1", hosts[phone].address, port), f"{phone} still serves RPC on its address"
    answer = completion_after_restart()
    FIGURES["tunnel tokens/s"] = f"{answer['timings']['predicted_per_second']:.1f}"
    assert answer["tokens_predicted"] > 0
    again, _ = deploy()
    assert changes(again.stdout + again.stderr) == ("-", "-"), (again.stdout + again.stderr)[-6000:]


BREAKAGES = {
    # name: (how to break it, the check that must fail, how to repair it without a deploy)
    "stopped worker": ("linux2", "SVDIR=/etc/service sv down llama-rpc", "test_worker_service_supervised_and_up"),
    "changed sysctl": ("linux1", "sysctl -w net.ipv4.tcp_keepalive_time=7200", "test_linux_sysctl_values"),
    "removed boot script": ("phone1", "rm ~/.termux/boot/50-llamafleet", "test_boot_script_brings_the_worker_back"),
    "flipped firewall": ("linux2", "iptables -w -F LLAMAFLEET", "test_linux_firewall_rules"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_verify_fails_when_broken_on_purpose(lab, breakage):
    host, command, failing_check = BREAKAGES[breakage]
    assert lab_exec(host, command).returncode == 0
    try:
        result = verify()
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"verify passed with a {breakage}"
        assert "FAILED" in output and failing_check in output and host in output, output[-3000:]
    finally:
        repaired, _ = deploy()
        assert repaired.returncode == 0, (repaired.stdout + repaired.stderr)[-4000:]
    assert verify().returncode == 0, "the deploy did not repair the cluster"
