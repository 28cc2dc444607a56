"""The lab on this machine: up, every promise it makes to the rest of llamafleet, and down.

One module-scoped fixture brings the lab up once; the last test takes it down and checks that
the machine is as it was. Needs root (CI runs as root); as non-root the lab tests skip.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from lab_machine import Snapshot, cmdline, nft_tables, require_root_and_no_lab

from llamafleet_lab import LabError, LabState, down, lab_exec, reboot, up
from llamafleet_lab import cli as lab_cli
from llamafleet_lab import phone
from llamafleet_lab import sshd as lab_sshd
from llamafleet_lab.topology import BRIDGE, NETNS_PREFIX, NFT_TABLE, VETH_PREFIX

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
UP_TARGET_SECONDS = 20.0
PREFIX = "/data/data/com.termux/files/usr"
HOME = "/data/data/com.termux/files/home"


@dataclass
class Lab:
    state: LabState
    up_seconds: float
    before: Snapshot


@pytest.fixture(scope="module")
def lab():
    require_root_and_no_lab()
    before = Snapshot.take()
    started = time.monotonic()
    result = up(phones=2, linux=2)
    seconds = time.monotonic() - started
    print(f"\nlab up took {seconds:.2f}s")
    yield Lab(state=result.state, up_seconds=seconds, before=before)
    down()  # no-op when test_down_leaves_the_machine_as_it_was already took it down


# --- helpers -----------------------------------------------------------------------------------


def connect(state: LabState, name: str) -> paramiko.SSHClient:
    """SSH to a lab host with the lab key, checking its host key against the lab's known_hosts."""
    host = state.host(name)
    client = paramiko.SSHClient()
    client.load_host_keys(str(state.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        host.address,
        port=host.ssh_port,
        username=host.user,
        key_filename=str(state.ssh_key),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return client


def ssh_run(client: paramiko.SSHClient, command: str) -> tuple[int, str, str]:
    """Run a non-interactive command (as pyinfra does: no pty, no login shell)."""
    _, stdout, stderr = client.exec_command(command, timeout=60)
    out, err = stdout.read().decode(), stderr.read().decode()
    return stdout.channel.recv_exit_status(), out, err


@pytest.fixture(scope="module")
def phone1(lab):
    client = connect(lab.state, "phone1")
    yield client
    client.close()


def run_ok(name: str, command: str, **kwargs) -> str:
    result = lab_exec(name, command, **kwargs)
    assert result.returncode == 0, f"{name}: {command!r} failed ({result.returncode}): {result.stderr}"
    return result.stdout


def sshd_answers(host) -> bool:
    return lab_sshd.ssh_answers(host.address, host.ssh_port, timeout=1.0)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def lab_command(*argv: str) -> int:
    """Run `llamafleet lab ...` in-process (only the lab's own parser), return its exit code."""
    parser = argparse.ArgumentParser(prog="llamafleet")
    lab_cli.register(parser.add_subparsers())
    args = parser.parse_args(["lab", *argv])
    return args.func(args)


# --- up -----------------------------------------------------------------------------------------


def test_up_is_fast_and_every_sshd_answers(lab, capfd):
    assert lab.up_seconds < UP_TARGET_SECONDS
    assert lab_command("status", "--json") == 0
    hosts = json.loads(capfd.readouterr().out)
    assert [host["name"] for host in hosts] == ["linux1", "linux2", "phone1", "phone2", "outsider"]
    assert all(host["up"] for host in hosts)
    assert {host["kind"] for host in hosts} == {"phone", "linux", "outsider"}
    assert set(hosts[0]) == {"name", "kind", "address", "ssh_port", "user", "up", "cpu_percent", "link_mbit", "link"}
    assert all(host["cpu_percent"] is None and host["link_mbit"] is None and host["link"] == "up" for host in hosts)


def test_up_again_is_a_no_op_and_other_sizes_are_refused(lab):
    again = up(phones=2, linux=2)
    assert again.already_up and again.state.init_pids == lab.state.init_pids
    with pytest.raises(LabError, match="lab down"):
        up(phones=3, linux=2)


def test_ssh_with_the_lab_key_reaches_every_host(lab):
    for host in lab.state.hosts:
        client = connect(lab.state, host.name)
        try:
            code, out, _ = ssh_run(client, "hostname; id -un")
        finally:
            client.close()
        assert code == 0
        assert out.split() == [host.name, host.user]


def test_passwords_are_refused(lab):
    host = lab.state.host("linux1")
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.state.known_hosts))
    with pytest.raises(paramiko.AuthenticationException):
        client.connect(host.address, port=22, username="root", password="root", look_for_keys=False, allow_agent=False, timeout=10)
    client.close()


def test_phone_user_is_not_in_the_machines_passwd(lab):
    assert "u0_a201" not in Path("/etc/passwd").read_text()
    assert run_ok("phone1", "id -un").strip() == "u0_a201"


# --- phones: the Android sandbox ------------------------------------------------------------------


def test_phone_cannot_write_outside_home_and_prefix(phone1):
    for directory in ("/", "/etc", "/usr/bin", "/opt", "/root", "/tmp", "/var/tmp", "/dev/shm", "/run", "/data", "/data/data"):
        code, _, _ = ssh_run(phone1, f"touch {directory}/lab-probe")
        assert code != 0, f"phone1 could write to {directory}"
    code, out, err = ssh_run(phone1, 'touch "$HOME/probe" "$PREFIX/probe" "$TMPDIR/probe" && echo ok')
    assert (code, out.strip()) == (0, "ok"), err
    # Nothing else in the whole tree is writable for the app user.
    code, out, _ = ssh_run(
        phone1,
        "find / \\( -path /proc -o -path /sys -o -path /data/data/com.termux/files \\) -prune "
        "-o -type d -writable -print 2>/dev/null",
    )
    assert out.split() == []


def test_phone_has_no_root_and_no_sudo(phone1):
    code, out, _ = ssh_run(phone1, "id -u")
    assert out.strip() == "10201"
    code, _, _ = ssh_run(phone1, "sudo -n true")
    assert code != 0
    code, _, _ = ssh_run(phone1, "su -c true root </dev/null")
    assert code != 0


def test_phones_do_not_see_each_others_files(lab):
    run_ok("phone1", 'echo one > "$HOME/only-phone1" && echo one > "$PREFIX/tmp/only-phone1"')
    assert lab_exec("phone2", 'test -e "$HOME/only-phone1" || test -e "$PREFIX/tmp/only-phone1"').returncode == 1
    run_ok("linux1", "echo one > /opt/only-linux1 && echo one > /tmp/only-linux1")
    assert lab_exec("linux2", "test -e /opt/only-linux1 || test -e /tmp/only-linux1").returncode == 1
    assert not Path("/opt/only-linux1").exists() and not Path("/tmp/only-linux1").exists()


def test_noninteractive_ssh_has_the_termux_environment(phone1):
    # pyinfra wraps every command in `sh -c '...'`.
    code, out, _ = ssh_run(phone1, "sh -c 'env'")
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert code == 0
    assert env["PREFIX"] == PREFIX and env["HOME"] == HOME
    assert env["TMPDIR"] == PREFIX + "/tmp" and env["TERMUX_VERSION"]
    assert env["PATH"] == PREFIX + "/bin"  # Termux's sshd session: $PREFIX/bin alone
    assert "SVDIR" not in env and "LOGDIR" not in env
    code, out, _ = ssh_run(phone1, "command -v pkg; cd && pwd")
    assert out.split() == [PREFIX + "/bin/pkg", HOME]


def test_a_fresh_phone_has_only_what_termux_packages_installed(phone1):
    # Positive control first: the bootstrap's tools are there, as links in $PREFIX/bin.
    code, out, _ = ssh_run(phone1, "command -v ls sh pgrep ifconfig")
    assert code == 0 and out.split() == [f"{PREFIX}/bin/{name}" for name in ("ls", "sh", "pgrep", "ifconfig")]
    code, out, _ = ssh_run(phone1, "command -v python3 ss ip netstat cmake clang")
    assert out.split() == [f"{PREFIX}/bin/netstat"]  # net-tools is in Termux's bootstrap; the rest are not
    code, out, err = ssh_run(phone1, "pkg install -y python && command -v python3 && dpkg -L python")
    assert code == 0, err
    assert f"{PREFIX}/bin/python3" in out.split()
    code, out, err = ssh_run(phone1, "pkg uninstall -y python >/dev/null && command -v python3")
    assert code == 1 and out == ""


def test_network_introspection_is_denied_as_on_android(phone1):
    code, out, err = ssh_run(phone1, "pkg install -y iproute2 >/dev/null && command -v ss ip")
    assert code == 0 and out.split() == [f"{PREFIX}/bin/ss", f"{PREFIX}/bin/ip"], err
    code, out, err = ssh_run(phone1, "ss -tln")
    assert "Cannot open netlink socket: Permission denied" in err
    assert "LISTEN" not in out  # its fallback, /proc/net/tcp, is denied too: sshd's listener stays hidden
    code, _, err = ssh_run(phone1, "ip addr")
    assert code != 0 and "Permission denied" in err
    code, out, _ = ssh_run(phone1, "netstat -tln")
    assert code != 0 and ":8022" not in out
    code, _, err = ssh_run(phone1, "cat /proc/net/tcp")
    assert code != 0 and "Permission denied" in err
    # ifconfig works, with the warning and the limited output a phone gives.
    code, out, err = ssh_run(phone1, "ifconfig")
    assert code == 0 and "inet 198.18.0.101" in out and "Limited output" in err
    # The same programs work on a Linux host (the denial is the phone's, not the lab's).
    assert ":22" in run_ok("linux2", "ss -Htln")


def test_android_properties_boot_id_and_hidden_thermal_zones(phone1):
    code, out, _ = ssh_run(phone1, "/system/bin/getprop ro.build.version.release; /system/bin/getprop ro.build.version.sdk")
    assert out.split() == ["14", "34"]
    assert run_ok("phone2", "/system/bin/getprop ro.build.version.release").strip() == "12"
    code, out, _ = ssh_run(phone1, "/system/bin/getprop persist.sys.fflag.override.settings_enable_monitor_phantom_procs")
    assert out.strip() == ""  # unset: the killer is on
    code, _, err = ssh_run(phone1, "ls /sys/class/thermal")
    assert code != 0 and "Permission denied" in err
    code, out, _ = ssh_run(phone1, "cat /proc/sys/kernel/random/boot_id")
    assert len(out.strip()) == 36 and out.strip() != Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def test_a_phones_app_runs_in_an_android_cpuset_that_can_hold_it_to_little_cores(phone1):
    code, out, _ = ssh_run(phone1, "cat /proc/self/cpuset; grep Cpus_allowed_list /proc/self/status")
    every = Path("/sys/fs/cgroup/cpuset/cpuset.cpus").read_text().strip()
    assert out.split() == ["/top-app", "Cpus_allowed_list:", every]
    assert lab_command("cpuset", "phone1", "background") == 0
    try:
        code, out, _ = ssh_run(phone1, "cat /proc/self/cpuset; grep Cpus_allowed_list /proc/self/status")
        assert out.split()[0] == "/background"
        assert out.split()[2] != every  # held to a subset: the little cores
        assert run_ok("phone1", "cat /proc/self/cpuset").strip() == "/background"  # lab exec too
    finally:
        assert lab_command("cpuset", "phone1", "top-app") == 0
    assert ssh_run(phone1, "cat /proc/self/cpuset")[1].strip() == "/top-app"


# --- phones: pkg and dpkg ----------------------------------------------------------------------------


def test_pkg_install_twice_is_recorded_once(phone1):
    for attempt in (1, 2):
        code, out, err = ssh_run(phone1, "pkg install -y cmake")
        assert code == 0, err
    assert "cmake is already the newest version" in out
    code, out, _ = ssh_run(phone1, "dpkg-query -W cmake")
    assert code == 0 and out.split()[0] == "cmake"
    code, out, _ = ssh_run(phone1, "dpkg-query -W")
    assert [line.split()[0] for line in out.splitlines()].count("cmake") == 1
    code, out, _ = ssh_run(phone1, "pkg list-installed")
    assert "cmake/stable,now" in out


def test_pkg_unknown_package_fails_with_termux_message(phone1):
    code, _, err = ssh_run(phone1, "pkg install -y no-such-pkg")
    assert code != 0
    assert "E: Unable to locate package no-such-pkg" in err


# --- network -----------------------------------------------------------------------------------------


def probe_tcp(address: str, port: int) -> str:
    """bash's /dev/tcp (on every lab host, phones included): "connected", else bash's error."""
    return f"timeout 3 bash -c 'exec 3<>/dev/tcp/{address}/{port}' 2>&1 && echo connected || true"


def test_hosts_reach_each_other_and_the_controller(lab):
    assert run_ok("phone1", probe_tcp("198.18.0.11", 22)).strip() == "connected"
    assert run_ok("linux2", probe_tcp("198.18.0.102", 8022)).strip() == "connected"
    run_ok("linux1", "ping -c1 -W3 198.18.0.102 && ping -c1 -W3 198.18.0.1")
    run_ok("outsider", "ping -c1 -W3 198.18.0.12")


def test_hosts_reach_nothing_outside_the_segment(lab):
    for name in ("linux1", "outsider"):
        assert lab_exec(name, "ip route show default").stdout.strip() == ""
        route = lab_exec(name, "ip route get 192.0.2.2")
        assert route.returncode != 0 and "unreachable" in route.stderr
    for name in ("linux1", "phone1", "outsider"):
        # ENETUNREACH: the connect fails locally, no packet leaves the host.
        assert "Network is unreachable" in run_ok(name, probe_tcp("192.0.2.2", 22))


# --- runit (termux-services) ----------------------------------------------------------------------


SERVICES_ENV = ". $PREFIX/etc/profile.d/start-services.sh; "  # what a Termux login shell sources


def test_a_phone_service_is_supervised_and_sv_disable_stops_it(phone1):
    # No runsvdir until termux-services is installed and its start script runs.
    assert ssh_run(phone1, "pgrep -x runsvdir")[0] == 1
    code, _, err = ssh_run(phone1, "pkg install -y termux-services >/dev/null")
    assert code == 0, err
    code, _, err = ssh_run(
        phone1,
        SERVICES_ENV + 'mkdir -p "$SVDIR/labtest" && printf "#!%s/bin/sh\\nexec sleep 1000\\n" "$PREFIX" > "$SVDIR/labtest/run"'
        ' && chmod +x "$SVDIR/labtest/run"',
    )
    assert code == 0, err
    # runsvdir looks for new services every 5 seconds.
    wait_for(lambda: ssh_run(phone1, "sv status labtest")[1].startswith("run: labtest"), 15, "labtest to run")
    code, out, _ = ssh_run(phone1, "ps -o user= -C runsv")
    assert out.split() == ["u0_a201"]  # supervised by the app user's runsvdir, not root
    code, _, err = ssh_run(phone1, SERVICES_ENV + "sv-disable labtest")
    assert code == 0, err
    wait_for(lambda: ssh_run(phone1, "sv status labtest")[1].startswith("down: labtest"), 10, "labtest to stop")
    assert ssh_run(phone1, 'test -e "$PREFIX/var/service/labtest/down"')[0] == 0
    assert ssh_run(phone1, "pgrep -x sleep")[0] == 1
    code, _, err = ssh_run(phone1, SERVICES_ENV + "sv-enable labtest")
    assert code == 0, err
    wait_for(lambda: ssh_run(phone1, "sv status labtest")[1].startswith("run: labtest"), 10, "labtest to run again")


def test_linux_hosts_run_runit_on_etc_service(lab):
    run_ok(
        "linux2",
        "mkdir -p /etc/sv/labtest && printf '#!/bin/sh\\nexec sleep 1000\\n' > /etc/sv/labtest/run "
        "&& chmod +x /etc/sv/labtest/run && ln -s /etc/sv/labtest /etc/service/labtest",
    )
    wait_for(lambda: lab_exec("linux2", "sv status labtest").stdout.startswith("run: labtest"), 15, "labtest on linux2")
    assert not Path("/etc/sv/labtest").exists()  # the machine's /etc/sv is untouched


# --- reboot ------------------------------------------------------------------------------------------


BOOT_FIRST = f"""#!{PREFIX}/bin/sh
echo "first $$" >> "$HOME/boot-order"
sleep 2
termux-wake-lock
sshd
. $PREFIX/etc/profile.d/start-services.sh
"""
# No #! line and no exec bit: Termux:Boot makes it executable and Termux runs it with sh.
BOOT_SECOND = 'echo "second $$ $PWD" >> "$HOME/boot-order"\n'


def test_a_rebooted_phone_without_boot_scripts_runs_nothing_and_is_unreachable(lab):
    host = lab.state.host("phone2")
    assert sshd_answers(host)  # positive control
    status = reboot("phone2")
    assert status["boot_scripts"] == [] and status["sshd_pid"] is None
    assert not sshd_answers(host)
    assert run_ok("phone2", "ps -e -o comm=").split() == ["python3", "sh", "ps"]  # the init, and this sh -c ps
    assert phone.wake_lock("phone2", lab.state) == ""
    run_ok("phone2", "sshd")  # the owner opens Termux and starts sshd again
    wait_for(lambda: sshd_answers(host), 10, "phone2's sshd")


def test_reboot_kills_everything_and_runs_boot_scripts_in_order(lab):
    state = lab.state
    run_ok("phone1", 'mkdir -p ~/.termux/boot && cat > ~/.termux/boot/10-first && chmod 700 ~/.termux/boot/10-first', input=BOOT_FIRST)
    run_ok("phone1", "cat > ~/.termux/boot/20-second", input=BOOT_SECOND)
    run_ok("phone1", "termux-wake-lock")
    assert phone.wake_lock("phone1", state) == "held"
    run_ok("phone1", "setsid sleep 1000 >/dev/null 2>&1 < /dev/null &")
    sleeper = run_ok("phone1", "pgrep -x sleep").split()
    sshd_before = run_ok("phone1", "pgrep -x sshd").split()
    session = connect(state, "phone1")

    status = reboot("phone1")

    assert status["boot_scripts"] == ["10-first", "20-second"]
    assert phone.wake_lock("phone1", state) == ""  # the reboot dropped it; 10-first takes it after 2 s

    def both_scripts_wrote() -> list[str] | None:
        lines = run_ok("phone1", "cat ~/boot-order 2>/dev/null || true").splitlines()
        return lines if len(lines) == 2 else None

    lines = wait_for(both_scripts_wrote, 10, "both boot scripts")
    by_name = {line.split()[0]: line.split() for line in lines}
    # Started in name order: the first script got the lower pid in the phone's PID namespace.
    assert int(by_name["first"][1]) < int(by_name["second"][1])
    assert by_name["second"][2] == HOME  # Termux runs boot scripts in $HOME
    wait_for(lambda: phone.wake_lock("phone1", state) == "held", 10, "the boot script's wake lock")
    assert all(lab_exec("phone1", f"kill -0 {pid}").returncode != 0 for pid in sleeper)
    # Nothing of the app survived, sshd included: the old session is gone, a new sshd answers.
    with pytest.raises((OSError, paramiko.SSHException)):
        ssh_run(session, "true")
    session.close()
    wait_for(lambda: sshd_answers(state.host("phone1")), 10, "the sshd the boot script started")
    assert not set(run_ok("phone1", "pgrep -x sshd").split()) & set(sshd_before)
    wait_for(lambda: lab_exec("phone1", "ps -o user= -C runsvdir").stdout.split() == ["u0_a201"], 10, "runsvdir from start-services.sh")
    log = (state.log_dir("phone1") / "boot.log").read_text()
    assert "Executed files at boot: 10-first, 20-second" in log


def test_with_a_screen_lock_boot_scripts_wait_for_the_first_unlock(lab):
    state = lab.state
    assert lab_command("pin", "phone1", "on") == 0
    try:
        status = reboot("phone1")
        assert status["locked"] and status["boot_scripts"] == []
        time.sleep(1)
        assert not sshd_answers(state.host("phone1"))
        assert lab_command("unlock", "phone1") == 0
        wait_for(lambda: state.boot_status("phone1").get("boot_scripts") == ["10-first", "20-second"], 10, "the boot scripts after unlock")
        wait_for(lambda: sshd_answers(state.host("phone1")), 10, "sshd after unlock")
    finally:
        lab_command("pin", "phone1", "off")


def test_a_phone_without_wake_lock_dozes_with_its_screen_off(lab):
    state = lab.state
    host = state.host("phone2")  # rebooted above: no wake lock since
    assert phone.wake_lock("phone2", state) == ""
    assert lab_command("screen", "phone2", "off") == 0
    try:
        wait_for(lambda: state.boot_status("phone2").get("dozing"), 30, "phone2 to doze")
        assert not sshd_answers(host)  # frozen: the kernel accepts the connection, sshd never speaks
        assert lab_command("screen", "phone2", "on") == 0  # its owner picks it up
        wait_for(lambda: sshd_answers(host), 3, "phone2 awake with its screen on")
        run_ok("phone2", "termux-wake-lock")
        assert lab_command("screen", "phone2", "off") == 0
        dozes = state.boot_status("phone2")["dozes"]
        time.sleep(20)  # longer than the lab's idle time before Doze (DozeTimings.after)
        assert state.boot_status("phone2")["dozes"] == dozes and sshd_answers(host)
    finally:
        lab_command("screen", "phone2", "on")


def app_processes(uid: int) -> int:
    """The phone user's processes, counted from the machine (a count on the phone would add
    its own processes, which the killer may take)."""
    return len(subprocess.run(["ps", "-u", str(uid), "-o", "pid="], capture_output=True, text=True).stdout.split())


def test_the_phantom_process_killer_holds_a_phone_to_32_processes(lab):
    state = lab.state
    uid = state.host("phone2").uid
    spawn = "for i in $(seq 40); do setsid sleep 300 >/dev/null 2>&1 </dev/null & done"
    kills = state.boot_status("phone2")["phantom_kills"]
    run_ok("phone2", spawn)
    wait_for(lambda: app_processes(uid) <= 32, 5, "the killer")
    assert state.boot_status("phone2")["phantom_kills"] >= kills + 8
    assert "phantom process killer" in (state.log_dir("phone2") / "init.log").read_text()
    run_ok("phone2", "pkill -x sleep || true")
    # Turned off as on Android 12L+ (adb shell settings put global ... false): nothing is killed.
    lab_command("setprop", "phone2", "persist.sys.fflag.override.settings_enable_monitor_phantom_procs", "false")
    try:
        kills = state.boot_status("phone2")["phantom_kills"]
        run_ok("phone2", spawn)
        time.sleep(2)
        assert app_processes(uid) > 40
        assert state.boot_status("phone2")["phantom_kills"] == kills
    finally:
        run_ok("phone2", "pkill -x sleep || true")
        lab_command("setprop", "phone2", "persist.sys.fflag.override.settings_enable_monitor_phantom_procs", "")


def test_linux_reboot_restarts_runit_and_kills_the_rest(lab):
    run_ok("linux1", "setsid sleep 1000 >/dev/null 2>&1 < /dev/null & echo x > /tmp/before-reboot")
    sleeper = run_ok("linux1", "pgrep -x sleep").split()
    assert lab_command("reboot", "linux1") == 0
    assert all(lab_exec("linux1", f"kill -0 {pid}").returncode != 0 for pid in sleeper)
    assert lab_exec("linux1", "test -e /tmp/before-reboot").returncode == 1  # /tmp is emptied at boot
    assert run_ok("linux1", "pgrep -x runsvdir").strip()
    client = connect(lab.state, "linux1")
    try:
        assert ssh_run(client, "hostname")[1].strip() == "linux1"
    finally:
        client.close()


# --- Linux hosts: their own kernel settings -------------------------------------------------------


def test_linux_host_sysctl_is_its_own(lab):
    machine_value = Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text().strip()
    other = "600" if machine_value != "600" else "700"
    run_ok("linux1", f"sysctl -w net.ipv4.tcp_keepalive_time={other}")
    assert run_ok("linux1", "sysctl -n net.ipv4.tcp_keepalive_time").strip() == other
    assert run_ok("linux2", "sysctl -n net.ipv4.tcp_keepalive_time").strip() == machine_value
    assert Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text().strip() == machine_value


def test_linux_host_firewall_is_its_own(lab):
    run_ok("linux1", "nft add table inet labtest")
    assert "labtest" in run_ok("linux1", "nft list tables")
    assert "labtest" not in run_ok("linux2", "nft list tables")
    assert "labtest" not in nft_tables()


# --- exec, pyinfra ---------------------------------------------------------------------------------


def test_lab_exec_returns_the_commands_exit_code(lab):
    assert lab_exec("outsider", ["sh", "-c", "exit 7"]).returncode == 7
    assert lab_command("exec", "outsider", "--", "sh", "-c", "exit 3") == 3
    assert lab_command("exec", "phone2", "--", "sh", "-c", 'test "$(id -un)" = u0_a202') == 0
    assert run_ok("outsider", "hostname").strip() == "outsider"
    with pytest.raises(LabError, match="no lab host named"):
        lab_exec("phone9", "true")


def test_pyinfra_reaches_the_inventory_hosts(lab):
    result = subprocess.run(
        [str(Path(sys.executable).with_name("pyinfra")), "-y", "inventory/lab.py", "exec", "--", "uname", "-n"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr  # pyinfra logs to stderr
    assert result.returncode == 0, output
    for name in ("linux1", "linux2", "phone1", "phone2"):
        assert f"[{name}] {name}" in output
    assert "outsider" not in output


# --- down -------------------------------------------------------------------------------------------


def test_down_leaves_the_machine_as_it_was(lab):
    state = lab.state
    init_pids = list(state.init_pids.values())
    started = time.monotonic()
    result = down()
    seconds = time.monotonic() - started
    print(f"\nlab down took {seconds:.2f}s")
    assert result.was_up and result.problems == []

    after = Snapshot.take()
    assert not state.directory.exists()
    assert after.netns == lab.before.netns and not any(name.startswith(NETNS_PREFIX) for name in after.netns)
    assert after.links == lab.before.links and BRIDGE not in after.links
    assert not any(link.startswith(VETH_PREFIX) for link in after.links)
    assert after.mounts == lab.before.mounts
    assert after.nft_tables == lab.before.nft_tables and NFT_TABLE not in after.nft_tables
    assert after.identity == lab.before.identity
    assert after.paths == lab.before.paths
    assert not any(Path(f"/proc/{pid}").exists() for pid in init_pids)
    assert [pid for pid in os.listdir("/proc") if pid.isdigit() and str(state.directory) in cmdline(pid)] == []
    assert lab_command("down") == 0  # nothing left to do, and it says so
