"""A cluster on Linux hosts that boot real systemd, behind ufw and firewalld, as users run them.

Lab: sysd1 (systemd, no firewall tool: llamafleet's own iptables chain) is the master; sysd2 runs
ufw (enabled: default deny incoming, SSH allowed) and is reached as `alice` with sudo, as a Pi's
owner logs in; sysd3 runs firewalld (default zone); linux1 is a runit host.
deploy -> deploy again (no changes) -> verify -> units and journald -> no llamafleet process as
root -> outsider shut out, master let in, SSH still open, also after `ufw reload` /
`firewall-cmd --reload` -> a killed worker is back within 5 s -> reboot the ufw and firewalld
hosts: services, rules and completions are back -> a phone added at the end of the inventory joins
without moving the others -> taken out again and `llamafleet remove --limit` leaves it as it was
before the first deploy -> `llamafleet remove` on everything: every host as before the first deploy
(tests/integration/host_snapshot.py lists what is compared), a second remove changes nothing.
Figures printed, not asserted.
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

from llamafleet_lab import down, lab_exec, load_state, reboot, up
from llamafleet.serving.probes import tcp_reachable

sys.path.insert(0, str(Path(__file__).parent))
from cluster_steps import changes, copy_deploy_dir, wait_for  # noqa: E402
from host_snapshot import differences, snapshot  # noqa: E402

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
FULL_INVENTORY = "inventory/lab.py"
# The lab without phone1: the cluster before a phone is added, and after it is taken out.
WITHOUT_PHONE = "inventory/without_phone.py"
WITHOUT_PHONE_SOURCE = '''"""The lab's inventory without phone1 (written by tests/integration/test_systemd_hosts.py)."""
from llamafleet_lab import inventory_groups

_groups = inventory_groups()
termux = [entry for entry in _groups["termux"] if entry[0] != "phone1"]
linux = _groups["linux"]
'''
INVENTORY = WITHOUT_PHONE
PHONE = "phone1"
BEFORE: dict[str, dict] = {}
BIN = Path(sys.executable).parent
FIGURES: dict[str, str] = {}
MASTER, UFW, FIREWALLD, RUNIT = "sysd1", "sysd2", "sysd3", "linux1"
SYSTEMD_HOSTS = (MASTER, UFW, FIREWALLD)
WORKER_UNIT = "llamafleet-llama-rpc.service"
MASTER_UNIT = "llamafleet-llama-server.service"
WORKDIR: Path = REPO


def run(*argv: str, timeout: int = 3600) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=WORKDIR, capture_output=True, text=True, timeout=timeout)


def deploy() -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = run(str(BIN / "pyinfra"), "-y", INVENTORY, "deploy.py")
    return result, time.monotonic() - started



def verify() -> subprocess.CompletedProcess:
    return run(str(BIN / "llamafleet"), "verify", INVENTORY, "--", "-x", "-p", "no:randomly", timeout=900)



def host(state, name: str):
    return state.host(name)


def rpc_port(name: str) -> int:
    """The worker's port, as the master's llama-server got it (--rpc)."""
    address = load_state().host(name).address
    rpc = master_rpc()
    match = re.search(re.escape(address) + r":(\d+)", rpc)
    assert match, f"{name} ({address}) is not in the master's --rpc {rpc}"
    return int(match.group(1))


def master_rpc() -> str:
    """The --rpc of the llama-server running on the master (its launcher chose it)."""
    args = lab_exec(MASTER, "ps -C llama-server -o args=").stdout
    match = re.search(r"--rpc (\S+)", args)
    assert match, f"no llama-server with --rpc on {MASTER}: {args!r}"
    return match.group(1)


def port_open(from_host: str, address: str, port: int) -> bool:
    return lab_exec(from_host, tcp_reachable(address, port)).returncode == 0


def main_pid(name: str, unit: str) -> int:
    out = lab_exec(name, f"systemctl show -p MainPID --value {unit}").stdout.strip()
    return int(out or 0)


def completion(wait_seconds: int = 240) -> str:
    """A completion, once llama-server answers (it restarts when its workers change)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        result = run(str(BIN / "llamafleet"), "complete", INVENTORY, "The capital of France is", timeout=300)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def worker_state() -> dict[str, tuple[int, int]]:
    """(RPC port, service pid) of every worker but the phone: what adding a phone must not move."""
    state = load_state()
    pids = {name: main_pid(name, WORKER_UNIT) for name in (UFW, FIREWALLD)}
    runit = lab_exec(RUNIT, "SVDIR=/etc/service sv status llama-rpc").stdout
    pids[RUNIT] = int(re.search(r"\(pid (\d+)\)", runit).group(1))
    return {name: (rpc_port(name), pid) for name, pid in pids.items() if state.host(name)}


def remove(*extra: str) -> subprocess.CompletedProcess:
    return run(str(BIN / "llamafleet"), "remove", str(WORKDIR / FULL_INVENTORY), *extra, timeout=900)


# What `llamafleet remove` leaves by design (host_snapshot's docstring): processes of the
# packages the deploy installed or of the test's own logins, directories a user's files may be in,
# and the empty built-in chains iptables-nft keeps once it was used (no rule, policy accept).
LEFT_PROCESSES = {"phone": {"runsvdir", "runsv"},  # termux-services' supervisor (the package's)
                  "linux": {"systemd", "(sd-pam)"}}  # systemd --user of a login the test made
LEFT_DIRECTORIES = {"/data/data/com.termux/files/home/.termux/boot", "/data/data/com.termux/files/usr/var/log/sv",
                    "/etc/iptables", "/etc/nftables.d"}
EMPTY_BUILTIN_CHAIN = re.compile(r"^(table ip6? filter \{|\tchain (INPUT|FORWARD|OUTPUT) \{|"
                                 r"\t\ttype filter hook \w+ priority filter; policy accept;|\t\}|\})$")


def unexpected(name: str) -> dict:
    """What differs on `name` from before the first deploy, less what remove leaves by design."""
    after = snapshot(lab_exec, name, home=load_state().host(name).home)
    changed = differences(BEFORE[name], after)
    processes = changed.get("processes")
    if processes and not processes["gone"] and set(processes["new"]) <= LEFT_PROCESSES[after["kind"]]:
        del changed["processes"]
    files = changed.get("files")
    if files:
        made = {line.rsplit("  ", 1)[0] for line in files["new"] if line.endswith("  d")}
        absent = {line.rsplit("  ", 1)[0] for line in files["gone"] if line.endswith("  absent")}
        if made == absent and made <= LEFT_DIRECTORIES and len(made) == len(files["new"]) == len(files["gone"]):
            del changed["files"]
    nftables = changed.get("nftables")
    if nftables and not nftables["gone"] and all(EMPTY_BUILTIN_CHAIN.match(line) for line in nftables["new"]):
        del changed["nftables"]
    if changed:
        print(f"\n{name} differs from before the first deploy: {changed}")
    return changed


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces, systemd-nspawn)")
    global WORKDIR
    WORKDIR = copy_deploy_dir(tmp_path_factory.mktemp("deploy-systemd"))
    down()
    started = time.monotonic()
    up(phones=1, linux=1, systemd=("none", "ufw@alice", "firewalld"), master=MASTER)
    FIGURES["lab up (3 systemd hosts)"] = f"{time.monotonic() - started:.1f} s"
    (WORKDIR / WITHOUT_PHONE).write_text(WITHOUT_PHONE_SOURCE)
    state = load_state()
    for lab_host in state.inventory_hosts:
        BEFORE[lab_host.name] = snapshot(lab_exec, lab_host.name, home=lab_host.home)
    yield state
    print("\nFIGURES " + ", ".join(f"{k}: {v}" for k, v in FIGURES.items()))
    down()


def test_hosts_boot_systemd_with_their_firewall(lab):
    for name in SYSTEMD_HOSTS:
        assert lab_exec(name, "readlink /proc/1/exe").stdout.strip().endswith("systemd"), name
        assert lab_exec(name, "systemctl is-system-running").stdout.strip() == "running", name
    assert "Status: active" in lab_exec(UFW, "ufw status").stdout
    assert lab_exec(FIREWALLD, "firewall-cmd --state").stdout.strip() == "running"


def test_the_ufw_host_is_reached_as_an_ordinary_user_with_sudo(lab):
    assert lab.host(UFW).user == "alice"
    whoami = run("ssh", "-i", str(lab.ssh_key), "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "BatchMode=yes",
                 f"alice@{lab.host(UFW).address}", "id -un; sudo -n id -un")
    assert whoami.stdout.split() == ["alice", "root"], whoami.stderr


def test_first_deploy_converges(lab):
    result, seconds = deploy()
    FIGURES["first deploy"] = f"{seconds:.0f} s"
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]


def test_second_deploy_changes_nothing(lab):
    result, seconds = deploy()
    FIGURES["no-op re-run"] = f"{seconds:.1f} s"
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert changes(output) == ("-", "-"), output[-6000:]


def test_verify_suite_passes(lab):
    result = verify()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_services_are_enabled_systemd_units_logging_to_the_journal(lab):
    for name, unit in ((MASTER, MASTER_UNIT), (UFW, WORKER_UNIT), (FIREWALLD, WORKER_UNIT)):
        assert lab_exec(name, f"systemctl is-active {unit}").stdout.strip() == "active", name
        assert lab_exec(name, f"systemctl is-enabled {unit}").stdout.strip() == "enabled", name
        journal = lab_exec(name, f"journalctl -u {unit} --no-pager -n 200").stdout
        assert re.search(r"llama|rpc|server", journal, re.I), f"{name}: nothing of {unit} in the journal:\n{journal}"
    assert not lab_exec(UFW, "command -v runsvdir").stdout.strip(), "runit installed on a systemd host"


def test_no_llamafleet_process_runs_as_root(lab):
    for name in (*SYSTEMD_HOSTS, RUNIT):
        table = lab_exec(name, "ps -eo user:32,args --no-headers").stdout.splitlines()
        ours = [line for line in table if re.search(r"ggml-rpc-server|llama-server|svlogd|ssh .*-L", line)]
        assert ours, f"{name}: no llamafleet process found:\n" + "\n".join(table)
        as_root = [line for line in ours if line.split()[0] == "root"]
        assert not as_root, f"{name}: llamafleet processes running as root:\n" + "\n".join(as_root)


def _firewall_holds(state) -> None:
    outsider = "outsider"
    master_address = state.host(MASTER).address
    for name in (UFW, FIREWALLD, RUNIT):
        address, port = state.host(name).address, rpc_port(name)
        assert not port_open(outsider, address, port), f"the outsider reaches {name}'s RPC port {port}"
        assert port_open(MASTER, address, port), f"the master ({master_address}) cannot reach {name}:{port}"
        assert port_open(outsider, address, 22), f"SSH to {name} is locked out"
    assert not port_open(outsider, state.host(MASTER).address, 8080), "the outsider reaches the master's API"


def test_outsider_shut_out_master_let_in_ssh_open(lab):
    _firewall_holds(lab)


def test_rules_survive_the_tools_own_reload(lab):
    assert lab_exec(UFW, "ufw reload").returncode == 0
    assert lab_exec(FIREWALLD, "firewall-cmd --reload").returncode == 0
    _firewall_holds(lab)


def test_killed_worker_is_back_within_5_seconds(lab):
    before = main_pid(UFW, WORKER_UNIT)
    assert before
    lab_exec(UFW, f"kill -9 {before}")
    started = time.monotonic()
    assert wait_for(lambda: main_pid(UFW, WORKER_UNIT) not in (0, before)
                    and port_open(MASTER, lab.host(UFW).address, rpc_port(UFW)), 5.0, interval=0.25)
    FIGURES["worker back after kill"] = f"{time.monotonic() - started:.1f} s"


def test_rebooted_hosts_come_back_with_services_and_rules(lab):
    for name in (UFW, FIREWALLD):
        reboot(name)
        assert wait_for(lambda: lab_exec(name, f"systemctl is-active {WORKER_UNIT}").stdout.strip() == "active", 60, interval=0.25), name
    _firewall_holds(lab)
    deadline = time.monotonic() + 240
    while True:  # llama-server lost its workers at the reboot: systemd restarts it, it reloads
        result = run(str(BIN / "llamafleet"), "complete", INVENTORY, "The capital of France is", timeout=300)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_a_phone_added_at_the_end_joins_without_moving_the_others(lab):
    global INVENTORY
    before = worker_state()
    INVENTORY = FULL_INVENTORY
    result, seconds = deploy()
    FIGURES["deploy adding a phone"] = f"{seconds:.0f} s"
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert worker_state() == before  # same ports, same processes: nobody else restarted
    running = lambda: lab_exec(MASTER, "ps -C llama-server -o args=").stdout  # noqa: E731
    assert wait_for(lambda: re.search(r"--rpc \S*127\.0\.0\.1:\d+", running()), 60), running()  # the phone, by its tunnel
    completion()
    log = lab_exec(PHONE, "cat $PREFIX/var/log/sv/llama-rpc/current").stdout
    assert "Accepted client connection" in log, log[-2000:]


def test_a_phone_taken_out_and_removed_is_as_before_and_the_others_serve(lab):
    global INVENTORY
    INVENTORY = WITHOUT_PHONE
    result, _ = deploy()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    removed = remove("--limit", PHONE)
    assert removed.returncode == 0, removed.stdout[-3000:] + removed.stderr[-3000:]
    assert unexpected(PHONE) == {}
    completion()


# --- upgrade and roll back ---------------------------------------------------------------------

UPGRADED = "inventory/upgraded.py"
UPGRADED_SOURCE = '''"""The lab without phone1, on a new llama.cpp archive and a new model file (written by
tests/integration/test_systemd_hosts.py)."""
from llamafleet_lab import inventory_groups

_groups = inventory_groups()
_new = {"llama_cpp_archive": %r, "model_file": %r}
termux = [entry for entry in _groups["termux"] if entry[0] != "phone1"]
linux = [(name, {**data, **_new}) for name, data in _groups["linux"]]
'''
BASE = "/opt/llamafleet"


def releases(name: str) -> tuple[list[str], str]:
    """The releases kept on `name` and the one <base>/bin points to."""
    listing = lab_exec(name, f"ls {BASE}/releases; readlink {BASE}/bin", root=True).stdout.split()
    return sorted(listing[:-1]), listing[-1].rstrip("/").rsplit("/", 1)[-1]


def models(name: str) -> list[str]:
    return sorted(lab_exec(name, f"ls {BASE}/models 2>/dev/null", root=True).stdout.split())


def repacked_archive(source: Path, target: Path) -> None:
    """The same llama.cpp with one more file: a new archive (new sha256, new source identity),
    as a new llama.cpp release is to the deploy."""
    import tarfile
    import io

    with tarfile.open(source) as old, tarfile.open(target, "w:gz", compresslevel=1) as new:
        for member in old:
            new.addfile(member, old.extractfile(member) if member.isfile() else None)
        note = tarfile.TarInfo(f"{old.getnames()[0].split('/')[0]}/UPGRADE-DRILL")
        data = b"llamafleet upgrade drill\n"
        note.size = len(data)
        new.addfile(note, io.BytesIO(data))


def test_an_upgrade_rebuilds_restarts_workers_first_and_keeps_one_previous_build(lab):
    global INVENTORY
    from llamafleet_lab import assets

    before = {name: releases(name) for name in (MASTER, UFW, FIREWALLD, RUNIT)}
    archive, model = WORKDIR / "llama-upgraded.tar.gz", WORKDIR / "gemma-upgraded.gguf"
    repacked_archive(assets.llama_cpp_archive_path(), archive)
    shutil.copyfile(assets.model_path(), model)
    (WORKDIR / UPGRADED).write_text(UPGRADED_SOURCE % (str(archive), str(model)))
    INVENTORY = UPGRADED
    result, seconds = deploy()
    FIGURES["upgrade deploy (archive and model)"] = f"{seconds:.0f} s"
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "compiling" in output
    for name, (kept, current) in before.items():
        now_kept, now_current = releases(name)
        assert now_current != current and set(now_kept) == {current, now_current}, (name, kept, now_kept)
    assert models(MASTER) == [model.name]  # the old model removed, only the new one
    completion()
    again = deploy()[0]
    assert changes(again.stdout + again.stderr) == ("-", "-"), again.stderr[-4000:]


def test_a_rollback_reuses_the_kept_build_without_compiling(lab):
    global INVENTORY
    upgraded = {name: releases(name) for name in (MASTER, UFW, FIREWALLD, RUNIT)}
    INVENTORY = WITHOUT_PHONE
    result, seconds = deploy()
    FIGURES["rollback deploy"] = f"{seconds:.0f} s"
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "compiling" not in output
    for name, (kept, current) in upgraded.items():
        now_kept, now_current = releases(name)
        assert set(now_kept) == set(kept) and now_current != current, (name, kept, now_current)
        log = lab_exec(name, f"tail -20 {BASE}/logs/build.log", root=True).stdout
        assert "switched back to" in log, (name, log)
    completion()


def test_remove_returns_every_host_to_its_state_before_the_first_deploy(lab):
    result = remove()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert {name: unexpected(name) for name in BEFORE} == {name: {} for name in BEFORE}
    again = remove()
    assert again.returncode == 0 and changes(again.stdout + again.stderr) == ("-", "-"), again.stderr[-3000:]
