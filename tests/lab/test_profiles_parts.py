"""Speed profiles without a lab (no root needed): the profile table, the cpu cgroup and tc
commands built from it, `lab exec` joining the cgroup, the state, and `lab up --profile` /
`lab link` / `lab status` on the command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess

import pytest

from llamafleet_lab import cli as lab_cli
from llamafleet_lab import execute, hostsetup, hosts_running, lifecycle, phone, profiles
from llamafleet_lab.state import LabError, LabState, load_state
from llamafleet_lab.topology import LabHost, plan_hosts

pytestmark = pytest.mark.lab


@pytest.fixture(autouse=True)
def no_commands_on_this_machine(monkeypatch):
    """A lab may be up on this machine, with these very host names: no test may run tc or ip."""
    monkeypatch.setattr(profiles, "_run", lambda argv, what: pytest.fail(f"would run {argv} on this machine"))


def hosts_by_name(*args, **kwargs) -> dict[str, LabHost]:
    return {host.name: host for host in plan_hosts(*args, **kwargs)}


# --- the table ----------------------------------------------------------------------------------


def test_mixed_gives_two_phones_their_own_speeds_and_leaves_the_rest_at_full_speed():
    hosts = hosts_by_name(2, 2, profile="mixed")
    assert (hosts["phone1"].cpu_percent, hosts["phone1"].link_mbit) == (50, 100)
    assert (hosts["phone2"].cpu_percent, hosts["phone2"].link_mbit) == (25, 20)
    for name in ("linux1", "linux2", "outsider"):
        assert (hosts[name].cpu_percent, hosts[name].link_mbit) == (None, None)
    # Everything else about the hosts is what the lab without a profile has.
    plain = hosts_by_name(2, 2)
    assert dataclasses.replace(hosts["phone2"], cpu_percent=None, link_mbit=None) == plain["phone2"]


def test_no_profile_is_todays_lab():
    assert plan_hosts(2, 2) == plan_hosts(2, 2, profile="none")
    assert all(host.cpu_percent is None and host.link_mbit is None for host in plan_hosts(2, 2, ("ufw",)))


def test_every_profile_fits_the_default_lab_and_says_what_each_host_stands_for():
    for name, table in profiles.PROFILES.items():
        plan_hosts(2, 2, profile=name)  # no ValueError
        for host, limits in table.items():
            assert limits.stands_for, (name, host)
            assert limits.cpu_percent is None or 1 <= limits.cpu_percent
            assert limits.link_mbit is None or limits.link_mbit > 0


def test_a_profile_for_hosts_the_lab_lacks_is_refused_before_anything_is_built():
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        plan_hosts(2, 2, profile="fast")
    with pytest.raises(ValueError, match="limits phone2, which this lab does not have"):
        plan_hosts(1, 2, profile="mixed")


def test_bad_numbers_in_a_profile_name_the_host_and_key(monkeypatch):
    monkeypatch.setitem(profiles.PROFILES, "broken", {"phone1": profiles.HostProfile(cpu_percent=0)})
    with pytest.raises(ValueError, match="broken: phone1 cpu_percent"):
        plan_hosts(1, 1, profile="broken")
    monkeypatch.setitem(profiles.PROFILES, "broken", {"linux1": profiles.HostProfile(link_mbit=-1)})
    with pytest.raises(ValueError, match="broken: linux1 link_mbit"):
        plan_hosts(1, 1, profile="broken")


# --- CPU ----------------------------------------------------------------------------------------


def test_the_quota_is_the_percent_of_a_100_ms_period():
    phone2 = hosts_by_name(2, 2, profile="mixed")["phone2"]
    assert profiles.cpu_settings(phone2) == {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "25000"}
    assert profiles.quota_us(50) == 50_000 and profiles.quota_us(150) == 150_000
    assert profiles.cpu_settings(hosts_by_name(2, 2, profile="mixed")["linux1"]) == {}


def test_cpu_cgroups_are_named_like_the_lab_and_a_systemd_host_shares_its_containers():
    hosts = hosts_by_name(2, 2, ("ufw",), profile="mixed")
    assert profiles.cpu_cgroup(hosts["phone2"]) == profiles.CPU_ROOT / "lflab-phone2"
    assert str(profiles.CPU_ROOT) == "/sys/fs/cgroup/cpu/llamafleet-lab"
    assert profiles.cpu_cgroup(hosts["linux1"]) is None
    sysd1 = dataclasses.replace(hosts["sysd1"], cpu_percent=50)
    # hostinit_nspawn.cgroup_dirs puts the container in <hierarchy>/llamafleet-lab/nspawn-<name>.
    assert profiles.cpu_cgroup(sysd1) == profiles.CPU_ROOT / "nspawn-sysd1"


def test_making_the_cgroup_writes_the_quota_and_tells_the_launcher_which_to_join(tmp_path, monkeypatch):
    monkeypatch.setattr(profiles, "CPU_ROOT", tmp_path / "cpu/llamafleet-lab")
    hosts = hosts_by_name(2, 2, ("none",), profile="mixed")
    spec = profiles.make_cpu_cgroup(hosts["phone1"])
    cgroup = tmp_path / "cpu/llamafleet-lab/lflab-phone1"
    assert spec == {"cpu_cgroup": str(cgroup)}
    assert (cgroup / "cpu.cfs_quota_us").read_text() == "50000"
    assert (cgroup / "cpu.cfs_period_us").read_text() == "100000"
    assert profiles.make_cpu_cgroup(hosts["linux1"]) == {}
    assert sorted(path.name for path in (tmp_path / "cpu/llamafleet-lab").iterdir()) == ["lflab-phone1"]
    # A systemd host's init joins its container's cgroup itself: only the quota is set here.
    sysd1 = dataclasses.replace(hosts["sysd1"], cpu_percent=25)
    assert profiles.make_cpu_cgroup(sysd1) == {}
    assert (tmp_path / "cpu/llamafleet-lab/nspawn-sysd1/cpu.cfs_quota_us").read_text() == "25000"


def test_the_host_spec_names_its_cpu_cgroup(tmp_path, monkeypatch):
    monkeypatch.setattr(profiles, "CPU_ROOT", tmp_path / "cpu")
    monkeypatch.setattr(hostsetup, "build_linux_host", lambda host, host_dir, key: {"mounts": []})
    linux1 = dataclasses.replace(hosts_by_name(1, 1)["linux1"], cpu_percent=50)
    spec = json.loads(hostsetup.prepare_host(linux1, tmp_path / "linux1", "key").read_text())
    assert spec["cpu_cgroup"] == str(tmp_path / "cpu/lflab-linux1")
    plain = json.loads(hostsetup.prepare_host(hosts_by_name(1, 1)["linux1"], tmp_path / "plain", "key").read_text())
    assert "cpu_cgroup" not in plain


def test_lab_exec_runs_the_command_from_inside_the_cpu_cgroup(tmp_path, monkeypatch):
    monkeypatch.setattr(profiles, "CPU_ROOT", tmp_path)
    hosts = hosts_by_name(2, 2, profile="mixed")
    (tmp_path / "lflab-phone2").mkdir()
    procs = tmp_path / "lflab-phone2/cgroup.procs"
    procs.write_text("")
    # The wrapper writes its own pid, then execs: the command runs as that very process.
    wrapped = profiles.in_cpu_cgroup(hosts["phone2"], ["sh", "-c", "echo $$"])
    out = subprocess.run(wrapped, capture_output=True, text=True, check=True).stdout
    assert procs.read_text().strip() == out.strip()
    failing = profiles.in_cpu_cgroup(hosts["phone2"], ["false"])
    assert subprocess.run(failing).returncode == 1
    assert profiles.in_cpu_cgroup(hosts["linux1"], ["id"]) == ["id"]

    argv = execute.exec_argv(hosts["phone2"], 1234, ["id"])
    assert argv[:5] == ["sh", "-c", 'echo $$ > "$1" && shift && exec "$@"', "lab-cpu", str(procs)]
    assert "nsenter" in argv and "--reuid=10202" in argv and argv[-1] == "id"
    root_argv = execute.exec_argv(hosts["phone2"], 1234, ["id"], root=True)  # adb root: same slow CPU
    assert root_argv[4] == str(procs) and root_argv[5] == "nsenter"
    assert execute.exec_argv(hosts["linux1"], 99, ["id"])[0] == "nsenter"


def test_missing_cpu_controller_or_tc_is_reported_before_building(tmp_path, monkeypatch):
    monkeypatch.setattr(profiles, "CPU_ROOT", tmp_path / "llamafleet-lab")
    mixed = plan_hosts(2, 2, profile="mixed")
    monkeypatch.setattr(profiles.shutil, "which", lambda program: None)
    missing = profiles.missing_pieces(mixed)
    assert any("cgroup v1 cpu controller" in line for line in missing) and any("tc" in line for line in missing)
    assert profiles.missing_pieces(plan_hosts(2, 2)) == []
    (tmp_path / "cpu.cfs_quota_us").write_text("-1\n")
    monkeypatch.setattr(profiles.shutil, "which", lambda program: "/usr/sbin/tc")
    assert profiles.missing_pieces(mixed) == []


def test_lab_down_and_the_leftover_check_cover_the_cpu_cgroups(tmp_path, monkeypatch):
    assert profiles.CPU_ROOT in phone.LAB_CGROUP_ROOTS
    monkeypatch.setattr(phone, "LAB_CGROUP_ROOTS", (tmp_path / "freezer", tmp_path / "cpu"))
    assert phone.cgroup_leftovers() == []
    (tmp_path / "cpu/lflab-phone2").mkdir(parents=True)
    assert phone.cgroup_leftovers() == [f"cgroup {tmp_path / 'cpu'}"]
    monkeypatch.setattr(hostsetup, "FREEZER_ROOT", tmp_path / "freezer")
    assert phone.remove_cgroups() == [] and not (tmp_path / "cpu").exists()


# --- link ---------------------------------------------------------------------------------------


def test_the_link_is_shaped_on_both_ends_of_the_veth():
    phone2 = hosts_by_name(2, 2, profile="mixed")["phone2"]
    shaper = ["tbf", "rate", "20000kbit", "burst", "16384", "latency", "50ms"]
    assert profiles.link_commands(phone2) == [
        ["tc", "qdisc", "replace", "dev", "lfl-phone2", "root", *shaper],  # what the phone downloads
        ["tc", "-n", "lflab-phone2", "qdisc", "replace", "dev", "eth0", "root", *shaper],  # what it uploads
    ]
    assert profiles.link_commands(hosts_by_name(2, 2, profile="mixed")["linux1"]) == []


def test_the_bucket_holds_5_ms_of_the_rate_and_at_least_16_kib():
    assert profiles.burst_bytes(20) == 16384  # 12,500 bytes would be too small a bucket
    assert profiles.burst_bytes(100) == 62_500
    assert profiles.tbf_args(2.5)[:3] == ["tbf", "rate", "2500kbit"]


def test_link_down_and_up_act_on_the_machine_end_of_the_veth(monkeypatch, tmp_path):
    phone1 = hosts_by_name(2, 2)["phone1"]
    assert profiles.link_state_command(phone1, False) == ["ip", "link", "set", "dev", "lfl-phone1", "down"]
    assert profiles.link_state_command(phone1, True)[-1] == "up"
    state = LabState(directory=tmp_path, phones=2, linux=2, hosts=plan_hosts(2, 2))
    with pytest.raises(LabError, match="no lab host named 'phone9'"):
        profiles.set_link("phone9", False, state=state)
    monkeypatch.setattr(profiles, "link_is_up", lambda host: None)
    with pytest.raises(LabError, match="phone1 has no link lfl-phone1"):  # the lab is not up
        profiles.set_link("phone1", False, state=state)
    ran = []
    monkeypatch.setattr(profiles, "link_is_up", lambda host: True)
    monkeypatch.setattr(profiles, "_run", lambda argv, what: ran.append(argv))
    profiles.set_link("phone1", False, state=state)
    assert ran == [["ip", "link", "set", "dev", "lfl-phone1", "down"]]

    def refused(argv, what):
        raise RuntimeError(f"{what} failed: RTNETLINK answers: Operation not permitted")
    monkeypatch.setattr(profiles, "_run", refused)
    with pytest.raises(LabError, match="taking phone1's link up failed"):  # reported, not a traceback
        profiles.set_link("phone1", True, state=state)


def test_limit_links_runs_the_tc_commands_of_limited_hosts_only(monkeypatch):
    ran = []
    monkeypatch.setattr(profiles, "_run", lambda argv, what: ran.append(argv))
    profiles.limit_links(plan_hosts(2, 2, profile="mixed"))
    assert [argv[argv.index("dev") + 1] for argv in ran] == ["lfl-phone1", "eth0", "lfl-phone2", "eth0"]


def test_status_describes_the_profile_and_the_link_state(monkeypatch):
    phone2 = hosts_by_name(2, 2, profile="mixed")["phone2"]
    for up, shown in ((None, "missing"), (True, "up"), (False, "down")):
        monkeypatch.setattr(profiles, "link_is_up", lambda host: up)
        assert profiles.describe(phone2) == {"cpu_percent": 25, "link_mbit": 20, "link": shown}


# --- state and command line ---------------------------------------------------------------------


def test_the_profile_round_trips_through_the_state(tmp_path):
    state = LabState(directory=tmp_path, phones=2, linux=2, hosts=plan_hosts(2, 2, profile="mixed"), profile="mixed")
    state.save()
    loaded = load_state(tmp_path)
    assert loaded.profile == "mixed" and loaded.hosts == state.hosts
    # A state written before profiles existed: no profile, hosts at full speed.
    data = json.loads((tmp_path / "state.json").read_text())
    del data["profile"]
    for host in data["hosts"]:
        del host["cpu_percent"], host["link_mbit"]
    (tmp_path / "state.json").write_text(json.dumps(data))
    old = load_state(tmp_path)
    assert old.profile == "none" and old.hosts == plan_hosts(2, 2)


def test_a_lab_up_with_another_profile_is_refused(tmp_path):
    state = LabState(directory=tmp_path, phones=2, linux=2, hosts=plan_hosts(2, 2), profile="none")
    with pytest.raises(LabError, match="profile none is up; run `llamafleet lab down` first to get .*profile mixed"):
        lifecycle._check_existing(state, 2, 2, [], "linux1", {}, "mixed")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    lab_cli.register(parser.add_subparsers())
    return parser


def test_lab_up_takes_a_profile_and_defaults_to_none():
    assert parser().parse_args(["lab", "up"]).profile == "none"
    assert parser().parse_args(["lab", "up", "--profile", "mixed"]).profile == "mixed"
    with pytest.raises(SystemExit):
        parser().parse_args(["lab", "up", "--profile", "turbo"])


def test_lab_link_takes_a_host_down_and_up(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(profiles, "set_link", lambda name, up: calls.append((name, up)))
    for argv in (["lab", "link", "phone2", "down"], ["lab", "link", "phone2", "up"]):
        args = parser().parse_args(argv)
        assert args.func(args) == 0
    assert calls == [("phone2", False), ("phone2", True)]
    with pytest.raises(SystemExit):
        parser().parse_args(["lab", "link", "phone2", "sideways"])


def test_lab_link_reports_errors_without_a_traceback(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("LLAMAFLEET_LAB_DIR", str(tmp_path / "none"))
    args = parser().parse_args(["lab", "link", "phone2", "down"])
    assert args.func(args) == 1
    assert "the lab is not up" in capsys.readouterr().err


def test_lab_status_shows_cpu_share_link_rate_and_a_link_that_is_down(monkeypatch, capsys):
    rows = [
        {"name": "linux1", "kind": "linux", "address": "198.18.0.11", "ssh_port": 22, "user": "root", "up": True,
         "cpu_percent": None, "link_mbit": None, "link": "up"},
        {"name": "phone2", "kind": "phone", "address": "198.18.0.102", "ssh_port": 8022, "user": "u0_a202", "up": False,
         "cpu_percent": 25, "link_mbit": 20, "link": "down"},
    ]
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(hosts_running, "status", lambda: rows)
    args = parser().parse_args(["lab", "status"])
    assert args.func(args) == 1  # phone2's sshd does not answer: its link is down
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "ADDRESS", "PORT", "USER", "UP", "CPU", "LINK"]
    assert lines[1].split()[-3:] == ["yes", "-", "full"]
    assert lines[2].split()[-5:] == ["NO", "25%", "20", "Mbit/s", "down"]
