"""The whole life of a cluster on the lab, as a user lives it.

lab up (linux2 has a user's ACCEPT-everything rule) -> deploy -> deploy again (no changes) ->
verify -> chat clients (openai) get clean replies -> outsider shut out -> firewall forgotten (as at a reboot): the services restore it, a
deploy the sysctls -> kill a worker
(back within 5 s) -> verify -> kill a tunnel (back, next completion works) -> heal drill: a phone's link down for 3
minutes (served without it within 60 s, taken back within 60 s of its return) -> reboot a phone (boot
script: sshd and services new, wake lock held; doctor) -> the boot script removed: nothing comes
back, no wake lock (doctor and verify say so), the phone dozes; a deploy repairs -> verify -> a wrong model sha256 stops the deploy before any change ->
diagnose -> phones switched to direct and back (tunnels retired, then restored) -> verify fails
for each breakage and a deploy repairs it -> plan --measure with workers short of RAM: the
deploy serves with the speed split, verify passes, a second deploy changes nothing -> lab down. Figures are printed (cold deploy, no-op
re-run, tokens/s); they are measurements, not assertions.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from llamafleet_lab import down, lab_exec, load_state, reboot, up
from llamafleet_lab import phone as lab_phone
from llamafleet_lab import sshd as lab_ssh
from llamafleet.serving.probes import tcp_reachable
from llamafleet.serving.secrets import secrets_location
from llamafleet.verify_cli import complete

from cluster_steps import changes, copy_deploy_dir, wait_for

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
    key = (secrets_location(WORKDIR / INVENTORY) / "api-key").read_text().strip()
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


def tunnel_processes() -> str:
    return lab_exec("linux1", "pgrep -af '[s]sh -N .*-L 127.0.0.1:5005' || true").stdout.strip()


def tunnel_key_blob() -> str:
    """The tunnel public key's base64 field, as the deploy generated it on the controller."""
    return (secrets_location(WORKDIR / INVENTORY) / "tunnel_ed25519.pub").read_text().split()[1]


def accepted_keys(phone: str) -> list[str]:
    """The key fields of a phone's authorized_keys lines."""
    return lab_exec(phone, "cat ~/.ssh/authorized_keys").stdout.split()


def iptables_s(host: str, chain: str) -> list[str]:
    return lab_exec(host, f"iptables -w -S {chain}").stdout.splitlines()


def input_rules(host: str) -> list[str]:
    """INPUT's rules in evaluation order."""
    return [line for line in iptables_s(host, "INPUT") if line.startswith("-A ")]



# linux2 is the third worker of the lab inventory (after the two phones): a first deploy gives
# the workers rpc_port_base, +1, +2 in inventory order, and later deploys keep them.
LINUX2_RPC_PORT = 50052 + 3 - 1
USER_ACCEPT_ALL = "-A INPUT -j ACCEPT"
JUMP = "-A INPUT -j LLAMAFLEET"
KEEPALIVE = "net.ipv4.tcp_keepalive_time"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces, sshd per host)")
    global WORKDIR
    WORKDIR = copy_deploy_dir(tmp_path_factory.mktemp("deploy"))
    down()
    up(phones=2, linux=2)
    yield load_state()
    print("\nFIGURES " + ", ".join(f"{k}: {v}" for k, v in FIGURES.items()))
    down()


WORKDIR: Path = REPO


def test_first_deploy_converges(lab):
    # A user's box may accept everything already: llamafleet's rules must shut the RPC port
    # anyway (checked in test_outsider_is_shut_out_and_master_is_let_in).
    assert lab_exec("linux2", f"iptables -w {USER_ACCEPT_ALL}").returncode == 0
    assert USER_ACCEPT_ALL in input_rules("linux2")
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


TEMPLATE_TOKENS = ("<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>")


def test_chat_clients_get_clean_replies_from_a_build_that_says_what_it_is(lab):
    """What users point at the master: the official openai client, a chat completion and a
    streamed one. The demo GGUF has no chat template; without llamafleet's the reply is ChatML
    tokens. /props names the build (the archive's sha256), not "b0-unknown"."""
    import json
    import urllib.request

    from openai import OpenAI

    key = (secrets_location(WORKDIR / INVENTORY) / "api-key").read_text().strip()
    client = OpenAI(base_url=f"{MASTER_API}/v1", api_key=key, timeout=120)
    question = [{"role": "user", "content": "Name one primary colour."}]
    reply = client.chat.completions.create(model="llamafleet", messages=question, max_tokens=24, temperature=0)
    text = reply.choices[0].message.content or ""
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model="llamafleet", messages=question, max_tokens=24, temperature=0, stream=True
        )
        if chunk.choices
    )
    FIGURES["chat reply"] = repr(text[:60])
    for answer in (text, streamed):
        assert answer.strip(), "an empty chat reply"
        assert not any(token in answer for token in TEMPLATE_TOKENS), f"template tokens in the reply: {answer!r}"

    request = urllib.request.Request(f"{MASTER_API}/props", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        props = json.load(response)
    from llamafleet_lab.assets import LLAMA_CPP_SDIST_SHA256

    assert props["build_info"].endswith("archive-" + LLAMA_CPP_SDIST_SHA256[:12]), props["build_info"]
    assert "<start_of_turn>" in props.get("chat_template", ""), props.get("chat_template", "")[:200]


def test_outsider_is_shut_out_and_master_is_let_in(lab):
    hosts = {h.name: h for h in lab.hosts}
    master, board = hosts["linux1"], hosts["linux2"]
    rpc_port = LINUX2_RPC_PORT
    # Positive controls: the outsider reaches each host (its sshd), so a refusal below is the
    # firewall's or the bind's, not a broken route or probe.
    for name in ("linux1", "linux2", "phone1", "phone2"):
        assert port_open("outsider", hosts[name].address, hosts[name].ssh_port), f"control: the outsider cannot reach {name}'s sshd"
    assert port_open("linux1", board.address, rpc_port), "the master cannot reach linux2's RPC port"
    assert not port_open("outsider", board.address, rpc_port), "the outsider reaches linux2's RPC port"
    assert not port_open("outsider", master.address, 8080), "the outsider reaches the master's API"
    for phone in ("phone1", "phone2"):
        for port in (50052, 50053):
            assert not port_open("outsider", hosts[phone].address, port), f"{phone}:{port} open to the outsider"
    # The user's ACCEPT is kept (llamafleet touches only its chain) and comes after the jump.
    rules = input_rules("linux2")
    assert rules[0] == JUMP and USER_ACCEPT_ALL in rules[1:], rules
    # sysctl applied inside the Linux hosts only; the machine keeps its own value.
    inside = lab_exec("linux1", "sysctl -n net.ipv4.tcp_keepalive_time").stdout.strip()
    outside = subprocess.run(["sysctl", "-n", "net.ipv4.tcp_keepalive_time"], capture_output=True, text=True).stdout.strip()
    assert inside == "600" and outside != "600"


def forget_firewall(host: str) -> None:
    """What a reboot does to llamafleet's rules: the kernel no longer has the chain nor the jump."""
    result = lab_exec(host, "iptables -w -D INPUT -j LLAMAFLEET && iptables -w -F LLAMAFLEET && iptables -w -X LLAMAFLEET")
    assert result.returncode == 0, result.stderr
    assert JUMP not in input_rules(host) and iptables_s(host, "LLAMAFLEET") == []


def restart_service(host: str, service: str) -> None:
    before = sv_pid(host, service, "/etc/service")
    assert before, f"{service} is not running on {host}"
    lab_exec(host, f"SVDIR=/etc/service sv restart {service}")  # its status wait may time out: the pid tells
    assert wait_for(lambda: sv_pid(host, service, "/etc/service") not in (None, before), 30), f"{service} not restarted"


def test_services_restore_the_firewall_and_a_deploy_the_sysctls(lab):
    """A reboot forgets llamafleet's rules and sysctls (simulated: chain, jump and a sysctl
    gone). README: the services restore the rules before they start, so a restart alone brings
    them back, first in INPUT; sysctls are the drop-in's at boot and a deploy's, not a
    service's: the next deploy re-applies them."""
    hosts = {h.name: h for h in lab.hosts}
    master, board = hosts["linux1"], hosts["linux2"]
    saved = {name: iptables_s(name, "LLAMAFLEET") for name in ("linux1", "linux2")}
    deployed = {name: lab_exec(name, f"sysctl -n {KEEPALIVE}").stdout.strip() for name in saved}
    for name in saved:
        assert any(line.endswith("-j DROP") for line in saved[name]), f"{name}: no rules to forget: {saved[name]}"
        assert deployed[name] != "7200"
        assert lab_exec(name, f"sysctl -w {KEEPALIVE}=7200").returncode == 0
        assert lab_exec(name, f"sysctl -n {KEEPALIVE}").stdout.strip() == "7200"

    # The master first, while the cluster is steady (a worker's restart restarts llama-server).
    forget_firewall("linux1")
    assert port_open("outsider", master.address, 8080), "control: with no rules the outsider should reach the API"
    restart_service("linux1", "llama-server")
    # Its run script waits for the workers, then restores the rules, then starts llama-server.
    assert wait_for(lambda: iptables_s("linux1", "LLAMAFLEET") == saved["linux1"], 150), iptables_s("linux1", "LLAMAFLEET")
    assert input_rules("linux1")[0] == JUMP, input_rules("linux1")
    completion_after_restart()  # llama-server listens again (for the controller, an allowed source)
    assert not port_open("outsider", master.address, 8080), "the outsider reaches the API after the restart"

    # linux2 keeps its user's ACCEPT-everything rule: without llamafleet's chain, the port is open.
    forget_firewall("linux2")
    assert USER_ACCEPT_ALL in input_rules("linux2")
    assert port_open("outsider", board.address, LINUX2_RPC_PORT), "control: with no rules the outsider should reach RPC"
    restart_service("linux2", "llama-rpc")
    assert wait_for(lambda: iptables_s("linux2", "LLAMAFLEET") == saved["linux2"], 30), iptables_s("linux2", "LLAMAFLEET")
    rules = input_rules("linux2")
    assert rules[0] == JUMP and USER_ACCEPT_ALL in rules[1:], rules
    assert wait_for(lambda: port_open("linux1", board.address, LINUX2_RPC_PORT), 30), "the master cannot reach linux2"
    assert not port_open("outsider", board.address, LINUX2_RPC_PORT), "the outsider reaches linux2's RPC port"
    completion_after_restart()

    repaired, _ = deploy()
    assert repaired.returncode == 0, (repaired.stdout + repaired.stderr)[-6000:]
    for name in saved:
        assert lab_exec(name, f"sysctl -n {KEEPALIVE}").stdout.strip() == deployed[name], f"{name}: sysctl not re-applied"
        assert iptables_s(name, "LLAMAFLEET") == saved[name], f"{name}: the deploy changed the restored rules"
    completion_after_restart()


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


PHONE2_RPC_PORT = 50052 + 2 - 1  # phone2 is the second worker of the first deploy


def master_rpc() -> str:
    """The --rpc of the llama-server running on the master ("" while none runs)."""
    match = re.search(r"--rpc (\S+)", lab_exec("linux1", "ps -C llama-server -o args=").stdout)
    return match.group(1) if match else ""


def serving_with_every_worker(seconds: float = 120) -> bool:
    """Wait until the master's llama-server serves with all three workers (its launcher takes
    a worker back after it returned) and answers /health."""
    def every() -> bool:
        if len(master_rpc().split(",")) != 3:
            return False
        try:
            with urllib.request.urlopen(f"{MASTER_API}/health", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False
    return wait_for(every, seconds, interval=1)


def rpc_log(phone: str) -> list[str]:
    return lab_exec(phone, "cat $PREFIX/var/log/sv/llama-rpc/current").stdout.splitlines()


def test_a_phone_away_for_3_minutes_is_served_without_then_taken_back(lab):
    """Heal drill: phone2 leaves its Wi-Fi for 3 minutes (longer than every keepalive: the
    tunnel's 10 s, the phone sshd's 15 s). The master serves again without it, then takes it
    back once its link returns: its rpc-server logs the master's connection and keeps it."""
    from llamafleet_lab.profiles import set_link

    phone2 = f"127.0.0.1:{PHONE2_RPC_PORT}"
    assert phone2 in master_rpc().split(","), master_rpc()  # control: served with phone2
    key = (secrets_location(WORKDIR / INVENTORY) / "api-key").read_text().strip()
    set_link("phone2", False)
    lost = time.monotonic()
    try:
        served_after = None
        while time.monotonic() - lost < 60:
            try:
                answer = complete(MASTER_API, key, "The capital of France is", n_predict=8, timeout=10)
                if answer.get("content", "").strip() and phone2 not in master_rpc():
                    served_after = time.monotonic() - lost
                    break
            except OSError:
                pass
            time.sleep(1)
        assert served_after is not None, f"no completion within 60 s of phone2's loss (--rpc {master_rpc()})"
        FIGURES["completion again after a phone's loss"] = f"{served_after:.0f} s"
        assert len(master_rpc().split(",")) == 2, master_rpc()
        time.sleep(max(0.0, 180 - (time.monotonic() - lost)))
        answer = complete(MASTER_API, key, "The capital of France is", n_predict=8, timeout=30)
        assert answer["tokens_predicted"] > 0  # still serving, 3 minutes on
        held_before = len(rpc_log("phone2"))
    finally:
        set_link("phone2", True)
    back = time.monotonic()

    def taken_back() -> bool:
        if phone2 not in master_rpc().split(","):
            return False
        new_lines = rpc_log("phone2")[held_before:]
        accepted = [i for i, line in enumerate(new_lines) if "Accepted client connection" in line]
        # The master's connection is held; the launcher's HELLO probes are closed at once.
        return bool(accepted) and not any("Client connection closed" in line for line in new_lines[accepted[-1]:])
    assert wait_for(taken_back, 60, interval=1), (
        f"phone2 not serving 60 s after its link returned (--rpc {master_rpc()}):\n" + "\n".join(rpc_log("phone2")[-15:]))
    FIGURES["phone serving again after its link returned"] = f"{time.monotonic() - back:.0f} s"
    answer = completion_after_restart()
    assert answer["tokens_predicted"] > 0 and phone2 in master_rpc().split(",")


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
    assert lab_phone.wake_lock("phone2", lab) == "held", "the boot script did not take the wake lock"
    assert serving_with_every_worker(), f"the master did not take phone2 back (--rpc {master_rpc()})"
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
    # Positive controls: before the reboot, the same probes see sshd, the worker and runsvdir.
    assert lab_ssh.ssh_answers(host.address, host.ssh_port), "control: phone2's sshd does not answer"
    assert sv_pid("phone2", "llama-rpc", PHONE_SVDIR), "control: llama-rpc is not running on phone2"
    assert lab_exec("phone2", "pgrep -x runsvdir").returncode == 0, "control: no runsvdir on phone2"
    assert lab_exec("phone2", "rm ~/.termux/boot/50-llamafleet").returncode == 0
    try:
        reboot("phone2")
        time.sleep(3)
        assert not lab_ssh.ssh_answers(host.address, host.ssh_port), "sshd came back with no boot script"
        assert not sv_pid("phone2", "llama-rpc", PHONE_SVDIR)
        assert lab_exec("phone2", "pgrep -x runsvdir").returncode == 1
        lab_exec("phone2", "sshd")  # the owner opens Termux and types sshd
        # Control for the dozing check below: awake, the same probe sees this sshd.
        assert wait_for(lambda: lab_ssh.ssh_answers(host.address, host.ssh_port), 10), "sshd started by hand does not answer"
        report = doctor()
        assert report.returncode == 1, report.stdout
        assert doctor_row(report.stdout, "phone2", "wake lock") == "FAIL", report.stdout
        assert doctor_row(report.stdout, "phone2", "boot script") == "FAIL", report.stdout
        assert doctor_row(report.stdout, "phone1", "wake lock") == "OK", report.stdout
        checked = verify("-k", "wake_lock")
        assert checked.returncode != 0 and "phone2" in checked.stdout, checked.stdout[-3000:]
        lab_phone.set_screen("phone2", False, lab)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not lab.boot_status("phone2").get("dozing"):
            time.sleep(1)
        assert lab.boot_status("phone2").get("dozing"), "no wake lock, screen off, and the phone did not doze"
        assert not lab_ssh.ssh_answers(host.address, host.ssh_port, timeout=2.0)
    finally:
        lab_phone.set_screen("phone2", True, lab)
    repaired, _ = deploy()
    assert repaired.returncode == 0, (repaired.stdout + repaired.stderr)[-6000:]
    assert lab_phone.wake_lock("phone2", lab) == "held"
    report = doctor()
    assert doctor_row(report.stdout, "phone2", "wake lock") == "OK", report.stdout
    assert doctor_row(report.stdout, "phone2", "boot script") == "OK", report.stdout
    assert serving_with_every_worker(), f"the master did not take phone2 back (--rpc {master_rpc()})"
    assert verify().returncode == 0


def test_wrong_model_sha256_stops_before_any_change(lab):
    before = lab_exec("linux1", "ls -l --time-style=+%s /opt/llamafleet/models").stdout
    # Not all digits (pyinfra would read an int) nor one digit repeated (check refuses that as a
    # placeholder before the file's sha256 is compared): a well-formed wrong sha256.
    result, _ = deploy("--data", "model_sha256=" + "0123456789abcdef" * 4)
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
    blob = tunnel_key_blob()
    # Positive controls: in tunnel mode the probes used after the switch see the tunnels, their
    # processes and the tunnel key, and RPC is not served on the phones' addresses.
    assert tunnel_services() == ["llama-tunnel-phone1", "llama-tunnel-phone2"]
    assert wait_for(lambda: len(tunnel_processes().splitlines()) == 2, 30), tunnel_processes()
    for phone, port in (("phone1", 50052), ("phone2", 50053)):
        assert blob in accepted_keys(phone), f"control: {phone} does not accept the tunnel key in tunnel mode"
        assert not port_open("linux1", hosts[phone].address, port), f"{phone} serves RPC on its address in tunnel mode"
    result, _ = deploy("--data", "rpc_transport=direct", "--data", "rpc_allow_insecure=true")
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert tunnel_services() == [], "a tunnel service outlived the switch to direct"
    assert tunnel_processes() == "", "a tunnel process outlived the switch to direct"
    for phone, port in (("phone1", 50052), ("phone2", 50053)):
        assert port_open("linux1", hosts[phone].address, port), f"{phone} does not serve RPC on its address"
        assert blob not in accepted_keys(phone), f"{phone} still accepts the tunnel key"
    answer = completion_after_restart()
    FIGURES["direct tokens/s"] = f"{answer['timings']['predicted_per_second']:.1f}"
    assert answer["tokens_predicted"] > 0

    result, _ = deploy()
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert tunnel_services() == ["llama-tunnel-phone1", "llama-tunnel-phone2"]
    assert wait_for(lambda: len(tunnel_processes().splitlines()) == 2, 30), tunnel_processes()
    for phone, port in (("phone1", 50052), ("phone2", 50053)):
        assert blob in accepted_keys(phone), f"{phone} does not accept the tunnel key again"
        # Control: in direct mode (above) the same probe found RPC on the address.
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
    # A user's (or another tool's) rule put in front of llamafleet's jump.
    "jump pushed down": ("linux2", "iptables -w -I INPUT 1 -j ACCEPT", "test_linux_firewall_is_evaluated_first"),
    # The API key open to every user of the master (its directory too, or the directory's mode
    # would still keep them out).
    "readable API key": ("linux1", "chmod 755 /opt/llamafleet/etc && chmod 644 /opt/llamafleet/etc/api-key",
                         "test_only_root_and_the_service_user_read_the_secrets"),
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


MEASURED = "inventory/measured.py"
# Every worker is given 1000 MiB of RAM (usable 1000 × 0.7 − 500 = 200 MiB, less than the 241
# MiB model) and the master keeps to serving: whichever worker measures fastest cannot hold it
# all, so the speed split has to spread it.
MEASURED_SOURCE = '''"""The lab with its workers short of RAM and the master not computing (test_cluster_lifecycle)."""
from llamafleet_lab import inventory_groups

_groups = inventory_groups()
_short = {"ram_mb": 1000}
_extra = {"linux1": {"master_computes": False}, "linux2": _short, "phone1": _short, "phone2": _short}
termux = [(name, {**data, **_extra.get(name, {})}) for name, data in _groups["termux"]]
linux = [(name, {**data, **_extra.get(name, {})}) for name, data in _groups["linux"]]
'''


def test_a_measured_cluster_splits_by_speed_within_ram_and_a_second_deploy_changes_nothing(lab):
    """plan --measure, then the deploy serves with the split it planned from the records on
    the devices; every worker's share stays within its usable RAM; verify passes (the master
    holds no connection to a worker the split leaves out); a second deploy changes nothing."""
    import json

    global INVENTORY
    (WORKDIR / MEASURED).write_text(MEASURED_SOURCE)
    INVENTORY = MEASURED
    started = time.monotonic()
    result = run(str(BIN / "llamafleet"), "plan", INVENTORY, "--measure", "--json", timeout=1200)
    FIGURES["plan --measure"] = f"{time.monotonic() - started:.0f} s"
    assert result.returncode == 0, result.stderr[-4000:]
    plan = json.loads(result.stdout)
    hosts = {host["name"]: host for host in plan["hosts"]}
    assert plan["master"]["split_by"] == "speed" and plan["master"]["gpu_layers"] == "all", plan["master"]
    for name, host in hosts.items():
        record = lab_exec(name, f"cat {host['base']}/etc/speed").stdout
        assert "ms_per_mb=" in record and "measured_at=" in record, (name, record)
        assert host["ms_per_mb"] > 0 and host["speed_from"] == name, host
    workers = [host for host in plan["hosts"] if host["role"] == "worker"]
    assert all(host["link_mbit"] > 0 for host in workers), workers
    assert all(host["usable_mb"] == 200.0 for host in workers), workers
    assert all(host["share_mb"] <= host["usable_mb"] + 1 for host in workers), workers
    serving = plan["master"]["rpc"].split(",")
    assert len(serving) >= 2, f"241 MiB with at most 200 on a worker needs two workers: {plan['master']}"
    FIGURES["speed split"] = f"-ts {plan['master']['tensor_split']} over {plan['master']['rpc']}"

    result, seconds = deploy()
    FIGURES["deploy after measuring"] = f"{seconds:.0f} s"
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert wait_for(lambda: master_rpc() == plan["master"]["rpc"], 120), (master_rpc(), plan["master"]["rpc"])
    args = lab_exec("linux1", "ps -C llama-server -o args=").stdout
    assert f"-ts {plan['master']['tensor_split']}" in args, args
    answer = completion_after_restart()
    assert answer["tokens_predicted"] > 0 and answer["content"].strip(), answer
    FIGURES["tokens/s with the speed split"] = f"{answer['timings']['predicted_per_second']:.1f}"
    checked = verify()
    assert checked.returncode == 0, checked.stdout[-6000:] + checked.stderr[-2000:]
    again, seconds = deploy()
    output = again.stdout + again.stderr
    assert again.returncode == 0 and changes(output) == ("-", "-"), output[-6000:]
