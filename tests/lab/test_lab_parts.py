"""The lab's pure parts, checked without bringing the lab up (no root needed)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llamafleet_lab import android_edge, cli as lab_cli
from llamafleet_lab import execute, inventory, sshd, termux
from llamafleet_lab.state import LabNotUp, LabState, load_state
from llamafleet_lab.termux_packages import BOOTSTRAP, PACKAGES, render_packages_index
from llamafleet_lab.termux_programs import LAB_PAYLOAD
from llamafleet_lab.topology import plan_hosts

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "lab/llamafleet_lab/bin/pkg"
SYSTEM_PYTHON = "/usr/bin/python3"


# --- topology ---------------------------------------------------------------------------------


def test_default_plan_names_addresses_and_users():
    hosts = {host.name: host for host in plan_hosts(2, 2)}
    assert list(hosts) == ["linux1", "linux2", "phone1", "phone2", "outsider"]
    assert (hosts["linux1"].address, hosts["linux1"].ssh_port, hosts["linux1"].user) == ("198.18.0.11", 22, "root")
    assert (hosts["phone1"].address, hosts["phone1"].ssh_port, hosts["phone1"].user) == ("198.18.0.101", 8022, "u0_a201")
    assert hosts["phone2"].uid == 10202 and hosts["phone2"].user == "u0_a202"
    assert hosts["outsider"].kind == "outsider" and hosts["outsider"].address == "198.18.0.250"
    assert len({host.address for host in hosts.values()}) == 5
    assert all(len(host.veth) <= 15 for host in plan_hosts(99, 80))  # Linux interface name limit


@pytest.mark.parametrize("phones, linux", [(-1, 2), (100, 2), (2, 0), (2, 81)])
def test_impossible_sizes_are_refused(phones, linux):
    with pytest.raises(ValueError, match="--(phones|linux)"):
        plan_hosts(phones, linux)


# --- ssh ----------------------------------------------------------------------------------------


def test_known_hosts_lines_use_brackets_for_other_ports():
    phone, linux = plan_hosts(1, 1)[1], plan_hosts(1, 1)[0]
    assert sshd.known_hosts_line(phone, "ssh-ed25519 AAAAkey u@h") == "[198.18.0.101]:8022 ssh-ed25519 AAAAkey"
    assert sshd.known_hosts_line(linux, "ssh-ed25519 AAAAkey root@h") == "198.18.0.11 ssh-ed25519 AAAAkey"


def test_sshd_config_is_key_only_and_carries_the_session_environment():
    config = sshd.render_sshd_config(port=8022, host_key="/k", user="u0_a201", env={"PREFIX": "/p", "TMPDIR": "/p/tmp"})
    assert "PasswordAuthentication no" in config and "KbdInteractiveAuthentication no" in config
    assert "AllowUsers u0_a201" in config and "PermitRootLogin no" in config
    assert "SetEnv PREFIX=/p TMPDIR=/p/tmp" in config


# --- Termux -------------------------------------------------------------------------------------


def test_package_index_has_the_names_deploys_use_and_no_dangling_dependency():
    names = {package.name for package in PACKAGES}
    required = {
        "clang", "cmake", "ninja", "git", "ccache", "openssh", "termux-services", "termux-api",
        "termux-tools", "python", "make", "binutils", "wget", "curl", "rsync", "iperf3", "jq",
        "procps", "net-tools", "openssl", "libandroid-support", "build-essential", "runit",
        "coreutils", "proot", "tmux", "nano", "vim",
    }
    assert required <= names
    assert not {"ninja-build", "g++", "build-essentials"} & names  # Debian names are not Termux's
    assert {dep for package in PACKAGES for dep in package.depends} <= names
    assert set(BOOTSTRAP) <= names
    assert len(names) == len(PACKAGES)


def test_phone_environment_is_termuxs_own():
    phone = plan_hosts(1, 1)[1]
    env = termux.termux_env(phone)
    assert env["PATH"] == "/data/data/com.termux/files/usr/bin"
    assert "SVDIR" not in env and "LOGDIR" not in env
    assert env["TMPDIR"] == env["PREFIX"] + "/tmp"
    assert env["HOME"] == "/data/data/com.termux/files/home" and env["TERMUX_VERSION"]


def test_exec_runs_phone_commands_as_the_app_user_with_termux_environment():
    phone, linux = plan_hosts(1, 1)[1], plan_hosts(1, 1)[0]
    argv = execute.exec_argv(phone, 1234, ["id"])
    # Into the app's cgroup with the netlink denial every app process has, then into the phone.
    assert argv[3:9] == [
        android_edge.__file__,
        "--cgroup", "/sys/fs/cgroup/freezer/llamafleet-lab/lflab-phone1",
        "--cgroup", "/sys/fs/cgroup/cpuset/llamafleet-lab/lflab-phone1/top-app",
        "--",
    ]
    assert argv[9:12] == ["nsenter", "-t", "1234"]
    assert "--reuid=10201" in argv and "PREFIX=/data/data/com.termux/files/usr" in argv
    assert argv[-1] == "id" and "--chdir=/data/data/com.termux/files/home" in argv
    assert "setpriv" not in execute.exec_argv(phone, 1234, ["id"], root=True)
    assert "HOME=/root" in execute.exec_argv(linux, 99, ["id"])


@pytest.fixture()
def prefix(tmp_path):
    """A bare $PREFIX with the Termux index, for running the lab's pkg outside a phone."""
    for directory in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/apt/lists"):
        (tmp_path / directory).mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text("")
    (tmp_path / "var/lib/apt/lists/termux-main_Packages").write_text(render_packages_index(termux.machine_dpkg_architecture()))
    shutil.copytree(REPO / "lab/llamafleet_lab/bin", tmp_path / LAB_PAYLOAD)
    return tmp_path


def pkg(prefix: Path, *arguments: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [SYSTEM_PYTHON, "-I", str(PKG), *arguments],
        # As root, like `lab up` writing a phone's bootstrap (a phone's pkg refuses root).
        env={"PREFIX": str(prefix), "PATH": "/usr/bin:/bin", "LLAMAFLEET_LAB_BOOTSTRAP": "1"},
        input=stdin,
        capture_output=True,
        text=True,
    )


def installed(prefix: Path) -> list[str]:
    result = subprocess.run(
        ["dpkg-query", f"--admindir={prefix}/var/lib/dpkg", "-W", "-f", "${Package}\n"],
        capture_output=True, text=True, check=True,
    )
    return result.stdout.split()


def test_pkg_records_a_package_and_its_dependencies_once(prefix):
    first = pkg(prefix, "install", "-y", "ninja")
    assert first.returncode == 0, first.stderr
    assert "Setting up ninja (1.12.1) ..." in first.stdout
    again = pkg(prefix, "install", "-y", "ninja")
    assert again.returncode == 0
    assert "ninja is already the newest version (1.12.1)." in again.stdout
    assert installed(prefix).count("ninja") == 1
    assert "libc++" in installed(prefix)  # ninja's dependency came along
    assert (prefix / "var/lib/dpkg/status").read_text().count("Package: ninja\n") == 1


def test_pkg_unknown_package_fails_like_apt_and_changes_nothing(prefix):
    result = pkg(prefix, "install", "-y", "ninja", "no-such-pkg")
    assert result.returncode == 100
    assert "E: Unable to locate package no-such-pkg" in result.stderr
    assert installed(prefix) == []


def test_pkg_without_yes_aborts_when_dependencies_need_confirmation(prefix):
    result = pkg(prefix, "install", "cmake", stdin="")
    assert result.returncode == 1
    assert "Do you want to continue? [Y/n]" in result.stdout and "Abort." in result.stdout
    assert installed(prefix) == []
    assert pkg(prefix, "install", "cmake", stdin="y\n").returncode == 0
    assert "cmake" in installed(prefix)


def test_pkg_uninstall_and_list_installed(prefix):
    assert pkg(prefix, "install", "-y", "make").returncode == 0
    listing = pkg(prefix, "list-installed").stdout
    assert listing.startswith("Listing... Done\n") and "make/stable,now 4.4.1" in listing
    removed = pkg(prefix, "uninstall", "-y", "make")
    assert removed.returncode == 0 and "Removing make (4.4.1) ..." in removed.stdout
    assert "make" not in installed(prefix)
    assert pkg(prefix, "uninstall", "-y", "no-such-pkg").returncode == 100


# --- inventory and state ------------------------------------------------------------------------


def known_data_keys() -> set[str]:
    """The keys group_data/all.py documents (the contract between modules)."""
    tree = ast.parse((REPO / "group_data/all.py").read_text())
    return {target.id for node in tree.body if isinstance(node, ast.Assign) for target in node.targets}


def test_pkg_puts_a_packages_programs_in_prefix_bin_and_removes_them(prefix):
    assert not (prefix / "bin/ss").exists()
    result = pkg(prefix, "install", "-y", "-o", "Dpkg::Options::=--force-confold", "iproute2")
    assert result.returncode == 0, result.stderr
    assert os.readlink(prefix / "bin/ss") == "/usr/bin/ss" or os.readlink(prefix / "bin/ss").endswith("/ss")
    listed = (prefix / "var/lib/dpkg/info/iproute2.list").read_text().split()
    assert "/data/data/com.termux/files/usr/bin/ss" in listed  # dpkg -L names the phone's paths
    assert pkg(prefix, "install", "-y", "termux-services").returncode == 0
    start_services = prefix / "etc/profile.d/start-services.sh"
    assert "service-daemon start" in start_services.read_text()  # the stand-in script, copied
    assert os.access(prefix / "bin/service-daemon", os.X_OK) and (prefix / "bin/runsvdir").is_symlink()
    assert pkg(prefix, "uninstall", "-y", "iproute2").returncode == 0
    assert not os.path.lexists(prefix / "bin/ss") and os.path.lexists(prefix / "bin/runsvdir")


def test_pkg_refuses_root_like_termux(prefix):
    result = subprocess.run(
        [SYSTEM_PYTHON, "-I", str(PKG), "install", "-y", "cmake"],
        env={"PREFIX": str(prefix), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
    )
    if os.geteuid() == 0:
        assert result.returncode == 1 and "Cannot run 'pkg' command as root" in result.stderr
        assert installed(prefix) == []
    else:
        assert result.returncode == 0


def test_netlink_filter_denies_only_netlink_sockets(tmp_path):
    probe = (
        "import socket\n"
        "socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()\n"
        "socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()\n"
        "try:\n    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)\nexcept PermissionError:\n    print('denied')\n"
        "else:\n    print('allowed')\n"
    )
    plain = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True)
    assert plain.stdout.strip() == "allowed"  # positive control: the machine allows it
    probe_file = tmp_path / "probe.py"
    probe_file.write_text(probe)
    cgroup = tmp_path / "cgroup"  # stands for the phone's cgroup directory
    cgroup.mkdir()
    (cgroup / "cgroup.procs").write_text("")
    edged = subprocess.run(
        [SYSTEM_PYTHON, "-I", "-S", android_edge.__file__, "--cgroup", str(cgroup), "--", SYSTEM_PYTHON, str(probe_file)],
        capture_output=True, text=True,
    )
    assert edged.returncode == 0, edged.stderr
    assert edged.stdout.strip() == "denied"
    assert (cgroup / "cgroup.procs").read_text() == "0"  # joined: a real cgroup moves the writer


def test_inventory_groups_and_host_data(tmp_path):
    state = LabState(directory=tmp_path, phones=2, linux=2, hosts=plan_hosts(2, 2), phase="up")
    groups = inventory.inventory_groups(state)
    assert [name for name, _ in groups["termux"]] == ["phone1", "phone2"]
    assert [name for name, _ in groups["linux"]] == ["linux1", "linux2"]
    phone1 = dict(groups["termux"])["phone1"]
    linux1, linux2 = dict(groups["linux"])["linux1"], dict(groups["linux"])["linux2"]
    assert phone1["ssh_port"] == 8022 and phone1["ssh_user"] == "u0_a201"
    assert phone1["_temp_dir"] == "/data/data/com.termux/files/usr/tmp"
    assert phone1["ssh_strict_host_key_checking"] == "yes"
    assert phone1["ssh_known_hosts_file"] == str(tmp_path / "ssh/known_hosts")
    assert linux1["llama_role"] == "master" and "llama_role" not in linux2
    assert linux2["cluster_address"] == "198.18.0.12"
    assert linux2["api_allowed_sources"] == ["198.18.0.1"]
    # Every llamafleet key is documented in group_data/all.py; the rest are pyinfra's.
    for _, data in groups["termux"] + groups["linux"]:
        unknown = {key for key in data if not key.startswith(("ssh_", "_"))} - known_data_keys()
        assert not unknown


def test_no_lab_means_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMAFLEET_LAB_DIR", str(tmp_path / "none"))
    with pytest.raises(LabNotUp, match="llamafleet lab up"):
        load_state()
    with pytest.raises(LabNotUp, match="llamafleet lab up"):
        inventory.inventory_groups()


def test_state_round_trips(tmp_path):
    state = LabState(directory=tmp_path, phones=1, linux=1, hosts=plan_hosts(1, 1), init_pids={"linux1": 42})
    state.created_paths = ["/data"]
    state.save()
    loaded = load_state(tmp_path)
    assert loaded.hosts == state.hosts and loaded.init_pids == {"linux1": 42}
    assert loaded.created_paths == ["/data"] and loaded.phase == "starting"
    assert oct((tmp_path / "state.json").stat().st_mode & 0o777) == "0o600"


def test_lab_commands_refuse_to_run_without_root(monkeypatch, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    lab_cli.register(parser.add_subparsers())
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for command in (["lab", "up"], ["lab", "status", "--json"], ["lab", "down"], ["lab", "exec", "outsider", "--", "true"]):
        args = parser.parse_args(command)
        assert args.func(args) == 2
        assert "needs root" in capsys.readouterr().err
