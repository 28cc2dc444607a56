"""The verify suite's oracles for least privilege (llamafleet/verify_suite/privileges.py): which
processes are llamafleet's and who runs them, from `ps` as procps prints it and from /proc as a
phone shows it; who can read a file, from its modes, owners and groups up to /."""

from __future__ import annotations

import os
import pwd
import subprocess

import pytest

from llamafleet.verify_suite.privileges import (
    PS_COMMAND,
    Entry,
    parse_ps,
    parse_stat_chain,
    privilege_problems,
    readers,
    stat_chain_command,
    what_it_is,
)

BASE = "/opt/llamafleet"
TUNNEL = (f"ssh -N -i {BASE}/etc/tunnel_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o "
          f"UserKnownHostsFile={BASE}/etc/tunnel_known_hosts -o StrictHostKeyChecking=yes -o ExitOnForwardFailure=yes "
          "-o ServerAliveInterval=15 -o ServerAliveCountMax=3 -o TCPKeepAlive=yes -p 8022 "
          "-L 127.0.0.1:50052:127.0.0.1:50052 u0_a201@198.18.0.101")
SERVER = (f"{BASE}/bin/llama-server -m {BASE}/models/gemma-3-270m-it-Q8_0.gguf --rpc 127.0.0.1:50052,198.18.0.12:50054 "
          f"-ts 0.5,0.5 -ngl all --load-mode mmap --host 198.18.0.11 --port 8080 --api-key-file {BASE}/etc/api-key "
          "--metrics -t 2 -c 2048")

# `ps -ww -eo user:32,pid,args` on a runit master, as procps-ng 4 prints it.
MASTER_PS = f"""USER                               PID COMMAND
root                                 1 /usr/bin/python3 -m llamafleet_lab.hostinit /var/lib/lab/linux1.json
root                                 2 [kthreadd]
root                                30 runsvdir -P /etc/service log: ...........................................
root                                31 /usr/sbin/sshd -D
root                                40 runsv llama-server
root                                41 runsv llama-tunnel-phone1
llamafleet                          45 svlogd -tt /var/log/llamafleet/llama-server
llamafleet                          46 svlogd -tt /var/log/llamafleet/llama-tunnel-phone1
llamafleet                          52 {TUNNEL}
llamafleet                          60 {SERVER}
root                               301 sshd: root@notty
root                               305 sh -c {PS_COMMAND}
root                               306 ps -ww -eo user:32,pid,args
"""
KINDS = {"binary": f"{BASE}/bin/llama-server", "key_file": f"{BASE}/etc/tunnel_ed25519",
         "log_root": "/var/log/llamafleet"}
WANTED = ["llama-server", "tunnel 127.0.0.1:50052:127.0.0.1:50052", "svlogd /var/log/llamafleet/llama-server",
          "svlogd /var/log/llamafleet/llama-tunnel-phone1"]


def test_ps_lines_become_processes():
    processes = parse_ps(MASTER_PS)
    assert len(processes) == 13  # every line but the header
    assert processes[1].argv == ("[kthreadd]",)
    assert processes[9].user == "llamafleet" and processes[9].pid == 60 and processes[9].argv[:3] == (
        f"{BASE}/bin/llama-server", "-m", f"{BASE}/models/gemma-3-270m-it-Q8_0.gguf")


def test_which_processes_are_llamafleets():
    named = {p.pid: what_it_is(p, **KINDS) for p in parse_ps(MASTER_PS)}
    assert {pid: name for pid, name in named.items() if name} == {
        45: "svlogd /var/log/llamafleet/llama-server", 46: "svlogd /var/log/llamafleet/llama-tunnel-phone1",
        52: "tunnel 127.0.0.1:50052:127.0.0.1:50052", 60: "llama-server"}


def test_a_master_whose_processes_all_run_as_the_service_user_passes():
    assert privilege_problems(parse_ps(MASTER_PS), WANTED, "llamafleet", **KINDS) == []


@pytest.mark.parametrize("line, problem", [
    ("llamafleet                          60 ", "llama-server (pid 60) runs as root, not llamafleet"),
    ("llamafleet                          45 svlogd",
     "svlogd /var/log/llamafleet/llama-server (pid 45) runs as root, not llamafleet"),
    ("llamafleet                          52 ssh", "tunnel 127.0.0.1:50052:127.0.0.1:50052 (pid 52) runs as root, not llamafleet"),
])
def test_a_process_left_running_as_root_is_caught(line, problem):
    listing = MASTER_PS.replace(line, line.replace("llamafleet", "root      "), 1)
    assert privilege_problems(parse_ps(listing), WANTED, "llamafleet", **KINDS) == [problem]


def test_a_missing_process_is_caught_and_an_unplanned_one_is_checked_too():
    without_tunnel = "\n".join(line for line in MASTER_PS.splitlines() if " 52 " not in line)
    assert privilege_problems(parse_ps(without_tunnel), WANTED, "llamafleet", **KINDS) == [
        "tunnel 127.0.0.1:50052:127.0.0.1:50052: not running"]
    # A logger of a service the plan no longer has, still running as root, is llamafleet's all the same.
    stale = MASTER_PS + "root                                70 svlogd -tt /var/log/llamafleet/llama-tunnel-phone2\n"
    assert privilege_problems(parse_ps(stale), WANTED, "llamafleet", **KINDS) == [
        "svlogd /var/log/llamafleet/llama-tunnel-phone2 (pid 70) runs as root, not llamafleet"]
    # A tunnel ssh started by hand with another key is not llamafleet's.
    other = MASTER_PS + "root                                71 ssh -N -i /root/.ssh/id_ed25519 -L 1:x:1 me@h\n"
    assert privilege_problems(parse_ps(other), WANTED, "llamafleet", **KINDS) == []


PREFIX = "/data/data/com.termux/files/usr"
# The /proc fallback on a phone without procps: "user pid args " (NULs turned into blanks).
PHONE_PROC = f"""u0_a201 1234 {PREFIX}/bin/runsvdir {PREFIX}/var/service 
u0_a201 1240 runsv llama-rpc 
u0_a201 1241 svlogd -tt {PREFIX}/var/log/sv/llama-rpc 
u0_a201 1242 /data/data/com.termux/files/home/llamafleet/bin/ggml-rpc-server -H 127.0.0.1 -p 50052 -t 4 
u0_a201 1300 sh -c {PS_COMMAND} 
"""


def test_a_phones_processes_are_the_apps_user():
    kinds = {"binary": "/data/data/com.termux/files/home/llamafleet/bin/ggml-rpc-server",
             "key_file": "/data/data/com.termux/files/home/llamafleet/etc/tunnel_ed25519",
             "log_root": f"{PREFIX}/var/log/sv"}
    wanted = ["ggml-rpc-server", f"svlogd {PREFIX}/var/log/sv/llama-rpc"]
    assert privilege_problems(parse_ps(PHONE_PROC), wanted, "u0_a201", **kinds) == []
    assert privilege_problems(parse_ps(PHONE_PROC), wanted, "u0_a202", **kinds) == [
        f"svlogd {PREFIX}/var/log/sv/llama-rpc (pid 1241) runs as u0_a201, not u0_a202",
        "ggml-rpc-server (pid 1242) runs as u0_a201, not u0_a202"]


def test_the_listing_command_reads_this_machine_with_ps_and_without_it(tmp_path):
    """Positive control on real output: this test's own process, with its user, by procps'
    ps and by the /proc fallback (a PATH where ps is missing, as on a fresh phone). A process
    whose command line is not UTF-8, or holds what dash's echo would read as escapes (CI met
    such processes), is listed too, as it is."""
    me = pwd.getpwuid(os.getuid()).pw_name
    odd = subprocess.Popen([b"sh", b"-c", b"sleep 30; true", b"odd\x80name", b"\\0200\\cend"])
    try:
        _both_listings_show(tmp_path, me, odd.pid)
    finally:
        odd.kill()


def _both_listings_show(tmp_path, me, odd_pid):
    with_ps = parse_ps(subprocess.run(["sh", "-c", PS_COMMAND], capture_output=True, text=True).stdout)
    assert any(p.pid == os.getpid() and p.user == me and "pytest" in " ".join(p.argv) for p in with_ps)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "tr", "stat"):
        (bin_dir / tool).symlink_to(subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True,
                                                   text=True).stdout.strip())
    fallback = subprocess.run([str(bin_dir / "sh"), "-c", PS_COMMAND], capture_output=True, text=True,
                              env={"PATH": str(bin_dir)}).stdout
    assert "USER" not in fallback.splitlines()[0]  # it was not ps
    assert any(p.pid == os.getpid() and p.user == me for p in parse_ps(fallback))
    assert any(p.pid == odd_pid and p.argv[-3:] == ("odd", "name", "\\0200\\cend") for p in parse_ps(fallback))


# --- who can read a file ---------------------------------------------------------------------------

PASSWD = """root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/bash
llamafleet:x:998:998:llamafleet services:/nonexistent:/usr/sbin/nologin
"""
GROUP = """root:x:0:
daemon:x:1:
alice:x:1000:
llamafleet:x:998:
"""


def key_chain(key_mode=0o640, key_group="llamafleet", etc_mode=0o750, etc_group="llamafleet") -> list[Entry]:
    return [Entry(f"{BASE}/etc/api-key", key_mode, "root", key_group), Entry(f"{BASE}/etc", etc_mode, "root", etc_group),
            Entry(BASE, 0o755, "root", "root"), Entry("/opt", 0o755, "root", "root"), Entry("/", 0o755, "root", "root")]


def test_the_planned_key_is_read_by_root_and_the_service_user_alone():
    assert readers(key_chain(), PASSWD, GROUP) == {"root", "llamafleet"}


@pytest.mark.parametrize("chain, group, who", [
    (key_chain(key_mode=0o644, etc_mode=0o755), GROUP, {"root", "llamafleet", "alice", "daemon", "*"}),
    (key_chain(etc_mode=0o700), GROUP, {"root"}),  # the service could not read its own key
    (key_chain(key_mode=0o600), GROUP, {"root"}),
    (key_chain(), GROUP.replace("llamafleet:x:998:", "llamafleet:x:998:alice"), {"root", "llamafleet", "alice"}),
    (key_chain(key_group="alice", etc_group="alice"), GROUP, {"root", "alice"}),
])
def test_a_key_others_can_read_or_the_service_cannot_is_caught(chain, group, who):
    assert readers(chain, PASSWD, group) == who


def test_the_stat_chain_of_a_real_file(tmp_path):
    secret = tmp_path / "etc" / "api-key"
    secret.parent.mkdir()
    secret.write_text("k\n")
    secret.chmod(0o600)
    result = subprocess.run(["sh", "-c", stat_chain_command(str(secret))], capture_output=True, text=True)
    chain = parse_stat_chain(result.stdout)
    me = pwd.getpwuid(os.getuid()).pw_name
    assert chain[0] == Entry(str(secret), 0o600, me, chain[0].group)
    assert [entry.path for entry in chain][-2:] == ["/tmp", "/"] and chain[1].path == str(secret.parent)
    # A phone has no getent: the users are the owners along the way.
    assert readers(chain) == {"root", me}
