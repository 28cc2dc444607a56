"""`llamafleet remove`'s operations (llamafleet/serving/removal.py, firewall_retire with keep=None):
commands only where llamafleet's trace is there, a noop where it is not, and never a command for
something of the user's that carries one of llamafleet's names. The facts' shell commands run
here against directories laid out as a host's are."""

from __future__ import annotations

import subprocess

import pytest
from pyinfra.api import StringCommand
from pyinfra.context import ctx_host, ctx_state
from scratch import FakeHost

from llamafleet.serving import firewall, firewall_retire, removal
from llamafleet.serving.firewall_firewalld import RECORD_FILE

PREFIX = "/data/data/com.termux/files/usr"
RECORD = "/data/data/com.termux/files/home/llamafleet/run/wake-lock"
BOOT = "0f3c5d1e-8a2b-4c6d-9e0f-123456789abc"


def run_op(operation, facts: dict, **kwargs) -> tuple[list[str], list[str]]:
    fake = FakeHost("phone1", facts)
    with ctx_state.use(object()), ctx_host.use(fake):
        commands = [c.get_raw_value() if isinstance(c, StringCommand) else c for c in operation._inner(**kwargs)]
    return commands, fake.noops


def sh(command: str) -> list[str]:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout.splitlines()


# --- services -----------------------------------------------------------------------------------


def test_services_present_are_stopped_and_removed_under_runit():
    commands, noops = run_op(removal.services_removed, {"LlamafleetServices": ["llama-rpc", "llama-tunnel-phone1"]},
                             manager="runit")
    assert commands[0] == "rm -f /etc/service/llama-rpc"  # unlinked first: runsvdir must not restart it
    assert "sv force-stop /etc/sv/llama-rpc >/dev/null 2>&1 || true" in commands
    assert "rm -rf /etc/sv/llama-rpc" in commands and "rm -rf /etc/sv/llama-tunnel-phone1" in commands
    assert noops == []


def test_services_present_are_disabled_and_removed_under_systemd():
    commands, _ = run_op(removal.services_removed, {"LlamafleetServices": ["llama-server"]}, manager="systemd")
    assert commands == [
        "systemctl disable --now llamafleet-llama-server.service || true",
        "rm -f /etc/systemd/system/llamafleet-llama-server.service",
        "systemctl daemon-reload",
    ]


def test_services_on_a_phone_are_removed_from_termux_services():
    commands, _ = run_op(removal.services_removed, {"LlamafleetServices": ["llama-rpc"]},
                         manager="termux-services", prefix=PREFIX)
    # Out of runsvdir's sight (a dot name) before runsv is told to exit, then gone.
    hidden = f"{PREFIX}/var/service/.llama-rpc.removed"
    assert f"rm -rf {hidden}; mv {PREFIX}/var/service/llama-rpc {hidden}" in commands
    assert commands[-1] == f"rm -rf {hidden}"
    assert f"touch {PREFIX}/var/service/llama-rpc/down" in commands


@pytest.mark.parametrize("manager", ["runit", "systemd", "termux-services"])
def test_no_service_is_a_noop(manager):
    assert run_op(removal.services_removed, {"LlamafleetServices": []}, manager=manager, prefix=PREFIX) == (
        [], [f"no llamafleet service under {manager}"])


def _service(root, name: str, header: bool) -> None:
    (root / name).mkdir(parents=True)
    first = "# Managed by llamafleet: ggml-rpc-server.\n" if header else "# my own llama.cpp\n"
    (root / name / "run").write_text("#!/bin/sh\n" + first + "exec true\n")


def test_facts_without_output_mean_nothing_there():
    # pyinfra hands process() no output and returns the fact's default() instead.
    assert removal.LlamafleetServices.default() == [] and removal.TermuxServiceLogs.default() == []
    assert removal.DirectoryEntries.default() is None


def test_the_services_fact_finds_only_llamafleets_own_definitions(tmp_path):
    prefix = tmp_path / "usr"
    services = prefix / "var" / "service"
    _service(services, "llama-rpc", header=True)
    _service(services, "llama-tunnel-phone2", header=True)
    _service(services, "llama-server", header=False)  # the user's own llama-server under runit
    _service(services, "sshd", header=False)
    fact = removal.LlamafleetServices()
    output = sh(fact.command("termux-services", str(prefix)))
    assert fact.process(output) == ["llama-rpc", "llama-tunnel-phone2"]


def test_the_services_fact_reads_systemd_units_by_name_and_header(tmp_path):
    (tmp_path / "llamafleet-llama-rpc.service").write_text("# Managed by llamafleet: x.\n[Unit]\n")
    (tmp_path / "llamafleet-llama-server.service").write_text("[Unit]\nDescription=someone else's\n")
    (tmp_path / "llama-rpc.service").write_text("# Managed by llamafleet: not our name.\n")
    fact = removal.LlamafleetServices()
    command = fact.command("systemd").replace("/etc/systemd/system", str(tmp_path))
    assert fact.process(sh(command)) == ["llama-rpc"]


# --- Termux service logs ------------------------------------------------------------------------


def test_logs_of_llamafleets_services_go_and_a_users_stay(tmp_path):
    prefix = tmp_path / "usr"
    services, logs = prefix / "var" / "service", prefix / "var" / "log" / "sv"
    _service(services, "llama-rpc", header=True)  # still there: llamafleet's
    _service(services, "llama-server", header=False)  # the user's: its log stays
    for name in ("llama-rpc", "llama-server", "llama-tunnel-gone", "sshd"):
        (logs / name).mkdir(parents=True)
    fact = removal.TermuxServiceLogs()
    found = fact.process(sh(fact.command(str(prefix))))
    assert found == [str(logs / "llama-rpc"), str(logs / "llama-tunnel-gone")]

    commands, _ = run_op(removal.termux_service_logs_removed, {"TermuxServiceLogs": found}, prefix=str(prefix))
    assert commands == [f"rm -rf {logs / 'llama-rpc'} {logs / 'llama-tunnel-gone'}"]


def test_no_log_is_a_noop():
    assert run_op(removal.termux_service_logs_removed, {"TermuxServiceLogs": []}, prefix=PREFIX) == (
        [], ["no log of a llamafleet service"])


# --- wake lock ----------------------------------------------------------------------------------


def test_a_wake_lock_llamafleet_took_in_this_boot_is_released_and_its_record_removed():
    facts = {"WakeLockRecord": {"record": f"{BOOT} 1767225600", "boot_id": BOOT}}
    commands, noops = run_op(removal.wake_lock_released, facts, record=RECORD)
    assert commands == ["termux-wake-unlock", f"rm -f {RECORD}"]
    assert noops == []


def test_a_record_of_an_earlier_boot_releases_nothing():
    facts = {"WakeLockRecord": {"record": f"{BOOT} 1767225600", "boot_id": "aaaaaaaa-0000-0000-0000-000000000000"}}
    commands, noops = run_op(removal.wake_lock_released, facts, record=RECORD)
    assert commands == [] and "earlier boot" in noops[0]


@pytest.mark.parametrize("record", [None, "not a record"])
def test_no_record_releases_nothing(record):
    # The user's own `termux-wake-lock` is not llamafleet's to release.
    commands, noops = run_op(removal.wake_lock_released, {"WakeLockRecord": {"record": record, "boot_id": BOOT}},
                             record=RECORD)
    assert commands == [] and noops == ["llamafleet took no wake lock (no record)"]


def test_the_wake_lock_fact_reads_record_and_boot_id(tmp_path):
    record = tmp_path / "wake-lock"
    fact = removal.WakeLockRecord()
    assert fact.process(sh(fact.command(str(record))))["record"] is None
    record.write_text(f"{BOOT} 1767225600\n")
    found = fact.process(sh(fact.command(str(record))))
    assert found["record"] == f"{BOOT} 1767225600"
    assert found["boot_id"] == open("/proc/sys/kernel/random/boot_id").read().strip()


# --- a directory of llamafleet's, once empty ----------------------------------------------------


def test_the_directory_fact_reads_entries_and_mount_points(tmp_path):
    fact = removal.DirectoryEntries()
    assert fact.process(sh(fact.command(str(tmp_path / "none")))) is None
    assert fact.process(sh(fact.command(str(tmp_path)))) == {"entries": [], "mountpoint": False}
    (tmp_path / "firewalld-rich-rules").write_text("zone public\n")
    (tmp_path / ".hidden").write_text("")
    assert fact.process(sh(fact.command(str(tmp_path))))["entries"] == [".hidden", "firewalld-rich-rules"]
    assert fact.process(sh(fact.command("/proc")))["mountpoint"] is True


def test_an_empty_directory_goes_one_with_a_record_or_a_mount_point_stays():
    def run(found):
        return run_op(removal.empty_directory_removed, {"DirectoryEntries": found}, path="/etc/llamafleet")

    assert run({"entries": [], "mountpoint": False}) == (["rmdir /etc/llamafleet"], [])
    assert run({"entries": ["firewalld-rich-rules"], "mountpoint": False}) == (
        [], ["/etc/llamafleet holds firewalld-rich-rules: kept"])
    assert run({"entries": [], "mountpoint": True})[0] == []
    assert run(None) == ([], ["/etc/llamafleet is not there"])


def test_a_log_directory_goes_whole_and_a_mount_point_is_only_emptied():
    def run(found):
        return run_op(removal.directory_removed, {"DirectoryEntries": found}, path="/var/log/llamafleet")

    assert run({"entries": ["llama-rpc"], "mountpoint": False}) == (["rm -rf /var/log/llamafleet"], [])
    # The lab binds a directory of its own there (and a user may mount a volume): rm -rf would fail on it.
    assert run({"entries": ["llama-rpc", "llama-server"], "mountpoint": True})[0] == [
        "rm -rf /var/log/llamafleet/llama-rpc /var/log/llamafleet/llama-server"]
    assert run({"entries": [], "mountpoint": True}) == ([], ["/var/log/llamafleet is empty, and a mount point: kept"])
    assert run(None) == ([], ["/var/log/llamafleet is not there"])


# --- firewall: every backend --------------------------------------------------------------------

NOTHING = {"iptables_chain": False, "iptables_jumps": 0, "iptables_file": False, "nft_table": False,
           "nft_file": False, "ufw": False, "firewalld_record": False}


def test_remove_retires_iptables_and_nftables_both():
    traces = {**NOTHING, "iptables_chain": True, "iptables_jumps": 1, "iptables_file": True,
              "nft_table": True, "nft_file": True}
    commands, _ = run_op(firewall_retire.retire_other_backends, {"FirewallTraces": traces}, keep=None)
    assert commands == [
        "iptables -w -D INPUT -j LLAMAFLEET", "iptables -w -F LLAMAFLEET", "iptables -w -X LLAMAFLEET",
        f"rm -f {firewall.IPTABLES_RULES_FILE}", "nft delete table inet llamafleet", f"rm -f {firewall.NFT_RULES_FILE}",
    ]


def test_remove_deletes_only_llamafleets_ufw_rules():
    from llamafleet.serving.firewall_ufw import UfwRules

    comment = "llamafleet: RPC from the master"
    live = UfwRules().process([
        f"ufw allow from 198.18.0.11 to any port 50054 proto tcp comment '{comment}'",
        "ufw allow 22/tcp",
    ])
    commands, _ = run_op(firewall_retire.retire_other_backends,
                         {"FirewallTraces": {**NOTHING, "ufw": True}, "UfwRules": live}, keep=None)
    assert commands == [f"ufw delete allow proto tcp from 198.18.0.11 to any port 50054 comment '{comment}'"]


def test_remove_with_no_firewall_trace_is_a_noop():
    assert run_op(firewall_retire.retire_other_backends, {"FirewallTraces": NOTHING}, keep=None) == (
        [], ["no llamafleet rules in any firewall backend"])


def test_firewalld_record_is_the_one_llamafleet_keeps_in_etc_llamafleet():
    # /etc/llamafleet is removed once empty: nothing else of llamafleet's lives there.
    assert RECORD_FILE.startswith("/etc/llamafleet/") and RECORD_FILE.count("/") == 3
