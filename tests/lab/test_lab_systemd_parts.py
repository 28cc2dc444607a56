"""The lab's systemd hosts, checked without booting them: topology, the overlay's files, nspawn's
flags, the state and inventory they produce (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamafleet_lab import execute, find_inits, inventory, rootfs, systemd_host
from llamafleet_lab.state import LabState, load_state
from llamafleet_lab.topology import plan_hosts

pytestmark = pytest.mark.lab


def test_systemd_hosts_get_names_addresses_and_their_firewall():
    hosts = {host.name: host for host in plan_hosts(1, 1, ("ufw", "firewalld", "none"))}
    assert list(hosts) == ["linux1", "phone1", "sysd1", "sysd2", "sysd3", "outsider"]
    assert [hosts[name].firewall for name in ("sysd1", "sysd2", "sysd3")] == ["ufw", "firewalld", "none"]
    assert hosts["sysd1"].address == "198.18.0.231" and hosts["sysd1"].kind == "linux"
    assert hosts["sysd1"].boots_systemd and not hosts["linux1"].boots_systemd
    assert len({host.address for host in hosts.values()}) == len(hosts)


@pytest.mark.parametrize("systemd, message", [(("iptables",), "unknown firewall"), (("none",) * 20, "at most")])
def test_bad_systemd_hosts_are_refused(systemd, message):
    with pytest.raises(ValueError, match=message):
        plan_hosts(1, 1, systemd)


def _build(tmp_path: Path, firewall: str):
    host = next(h for h in plan_hosts(0, 1, (firewall,)) if h.boots_systemd)
    lower = tmp_path / "rootfs"
    (lower / "etc/skel").mkdir(parents=True)
    (lower / "etc/skel/.bashrc").write_text("# skel\n")
    (lower / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (lower / "etc/shadow").write_text("root:*:20000:0:99999:7:::\n")
    (lower / "etc/group").write_text("root:x:0:\nsudo:x:27:\n")
    host_dir = tmp_path / "hosts" / host.name
    spec = systemd_host.build_systemd_host(host, host_dir, "ssh-ed25519 AAAAlab lab", lower)
    return host, host_dir, Path(spec["overlay"]["upper"]), spec


def test_ufw_host_enables_ufw_at_first_boot_and_masks_firewalld(tmp_path):
    host, host_dir, upper, spec = _build(tmp_path, "ufw")
    assert (upper / "etc/systemd/system/firewalld.service").readlink() == Path("/dev/null")
    assert not (upper / "etc/systemd/system/ufw.service").exists()
    unit = (upper / "etc/systemd/system/lab-ufw-setup.service").read_text()
    assert "ufw allow 22/tcp" in unit and "ufw --force enable" in unit
    assert "ConditionPathExists=!/etc/ufw/.lab-enabled" in unit  # once: later boots load ufw's own rules
    wants = upper / "etc/systemd/system/multi-user.target.wants/lab-ufw-setup.service"
    assert wants.readlink() == Path("/etc/systemd/system/lab-ufw-setup.service")
    assert (upper / "etc/hostname").read_text() == "sysd1\n"
    assert (upper / "root/.ssh/authorized_keys").read_text() == "ssh-ed25519 AAAAlab lab\n"
    assert oct((upper / "root/.ssh/authorized_keys").stat().st_mode & 0o777) == "0o600"
    # The key known_hosts is made from is the one the host serves.
    assert (upper / "etc/ssh/ssh_host_ed25519_key.pub").read_text() == (host_dir / "ssh/ssh_host_ed25519_key.pub").read_text()
    assert oct((upper / "etc/ssh/ssh_host_ed25519_key").stat().st_mode & 0o777) == "0o600"


def test_firewalld_host_keeps_firewalld_and_plain_host_masks_it(tmp_path):
    _, _, upper, _ = _build(tmp_path / "a", "firewalld")
    assert not (upper / "etc/systemd/system/firewalld.service").exists()
    assert not (upper / "etc/systemd/system/lab-ufw-setup.service").exists()
    assert (upper / "etc/systemd/system/ufw.service").readlink() == Path("/dev/null")
    _, _, upper, _ = _build(tmp_path / "b", "none")
    assert (upper / "etc/systemd/system/firewalld.service").readlink() == Path("/dev/null")
    assert (upper / "etc/systemd/system/ufw.service").readlink() == Path("/dev/null")


def test_nspawn_boots_in_the_hosts_namespace_with_its_firewall_capability(tmp_path):
    host, host_dir, _, spec = _build(tmp_path, "ufw")
    argv = spec["nspawn_argv"]
    assert argv[0] == systemd_host.NSPAWN and "--boot" in argv and "--register=no" in argv
    assert f"--network-namespace-path=/run/netns/{host.netns}" in argv
    assert "--capability=CAP_NET_ADMIN" in argv
    assert f"--setenv={find_inits.CONTAINER_MARK}={host_dir}" in argv  # how `lab down` finds it
    assert spec["overlay"]["lower"] == str(tmp_path / "rootfs")


def test_find_containers_by_their_mark(tmp_path):
    # This test process is no container: nothing of tmp_path is found, and the scan survives
    # processes it cannot read.
    assert find_inits.containers_below(tmp_path) == set()


def test_exec_enters_every_namespace_of_the_containers_systemd():
    host = next(h for h in plan_hosts(0, 1, ("ufw",)) if h.boots_systemd)
    argv = execute.exec_argv(host, 4242, ["uname", "-n"])
    assert argv[:5] == ["nsenter", "-t", "4242", "-a", "--"] and argv[-2:] == ["uname", "-n"]


def test_state_and_inventory_carry_systemd_hosts_and_the_master(tmp_path):
    state = LabState(directory=tmp_path, phones=0, linux=1, hosts=plan_hosts(0, 1, ("ufw",)),
                     systemd=["ufw"], master="sysd1", phase="up")
    state.save()
    loaded = load_state(tmp_path)
    assert loaded.systemd == ["ufw"] and loaded.master == "sysd1" and loaded.hosts == state.hosts
    linux = dict(inventory.inventory_groups(loaded)["linux"])
    assert linux["sysd1"]["llama_role"] == "master" and "llama_role" not in linux["linux1"]


def test_rootfs_directory_changes_with_its_recipe(tmp_path, monkeypatch):
    first = rootfs.rootfs_dir(tmp_path)
    monkeypatch.setattr(rootfs, "BASE_PACKAGES", rootfs.BASE_PACKAGES + ("vim",))
    assert rootfs.rootfs_dir(tmp_path) != first and not rootfs.is_complete(first)


def test_a_sudo_user_host_is_an_ordinary_account_with_passwordless_sudo(tmp_path):
    host, _, upper, _ = _build(tmp_path, "ufw@alice")
    assert (host.user, host.uid, host.home) == ("alice", 1000, "/home/alice")
    assert "alice:x:1000:1000::/home/alice:/bin/bash" in (upper / "etc/passwd").read_text()
    assert "sudo:x:27:alice" in (upper / "etc/group").read_text().splitlines()
    assert (upper / "etc/shadow").read_text().splitlines()[-1].startswith("alice:*:")  # no password: keys only
    assert (upper / "etc/sudoers.d/010_alice-nopasswd").read_text() == "alice ALL=(ALL) NOPASSWD: ALL\n"
    keys = upper / "home/alice/.ssh/authorized_keys"
    assert keys.read_text() == "ssh-ed25519 AAAAlab lab\n" and keys.stat().st_uid == 1000
    assert not (upper / "root/.ssh").exists()
    state = LabState(directory=tmp_path, phones=0, linux=1, hosts=plan_hosts(0, 1, ("ufw@alice",)), systemd=["ufw@alice"])
    data = dict(inventory.inventory_groups(state)["linux"])["sysd1"]
    assert data["ssh_user"] == "alice" and data["_sudo"] is True


@pytest.mark.parametrize("spec", ["ufw@root", "ufw@Bad Name", "pf@alice"])
def test_bad_sudo_users_and_firewalls_are_refused(spec):
    with pytest.raises(ValueError, match="--systemd"):
        plan_hosts(0, 1, (spec,))


def test_lab_lock_is_reentrant_within_one_process(tmp_path, monkeypatch):
    # A second flock on a new descriptor of the same file would wait for this process's own lock.
    import threading

    from llamafleet_lab import lifecycle

    monkeypatch.setenv("LLAMAFLEET_LAB_DIR", str(tmp_path / "lab"))
    done = threading.Event()

    def nested():
        with lifecycle.lab_lock():
            with lifecycle.lab_lock():
                done.set()

    worker = threading.Thread(target=nested, daemon=True)
    worker.start()
    worker.join(5)
    assert done.is_set()
    with lifecycle.lab_lock():  # released: taken again at once
        pass


def test_lab_lock_held_by_a_forgotten_descriptor_of_this_process_does_not_block_it(tmp_path, monkeypatch):
    import fcntl
    import os
    import threading

    from llamafleet_lab import lifecycle

    monkeypatch.setenv("LLAMAFLEET_LAB_DIR", str(tmp_path / "lab"))
    forgotten = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(forgotten, fcntl.LOCK_EX)
    done = threading.Event()

    def take():
        with lifecycle.lab_lock():
            done.set()

    worker = threading.Thread(target=take, daemon=True)
    worker.start()
    worker.join(5)
    os.close(forgotten)
    assert done.is_set()
