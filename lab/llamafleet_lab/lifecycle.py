"""Bring the lab up, take it down, reboot a host, report status.

`up` records every piece it creates in the state file before creating the next, and on any
failure calls `down`, which removes whatever the state (or the lab's naming prefix) shows:
a failed or interrupted `up` leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from llamafleet_lab.locking import lab_lock
from llamafleet_lab import arm_phone, find_inits, hostinit, hostsetup, network, phone, profiles, rootfs, sshd, systemd_host
from llamafleet_lab.state import MARKER_FILE, LabError, LabNotUp, LabState, load_state
from llamafleet_lab.topology import LabHost, plan_hosts, state_dir

SSH_WAIT_SECONDS = 20.0
LAUNCH_TIMEOUT = 60.0
INIT_EXIT_TIMEOUT = 10.0
REQUIRED_PROGRAMS = ("ip", "nft", "nsenter", "setpriv", "ssh-keygen", "dpkg", sshd.SSHD, hostsetup.RUNSVDIR)
SYSTEMD_HOST_PROGRAMS = (systemd_host.NSPAWN, "debootstrap")  # only when the topology has systemd hosts


def require_root() -> None:
    if os.geteuid() != 0:
        raise PermissionError(
            "llamafleet lab needs root: it creates network namespaces, a bridge, mounts and sshd "
            "processes. Run it as root (e.g. `sudo llamafleet lab ...`)."
        )


def _missing_programs(systemd: bool) -> list[str]:
    needed = REQUIRED_PROGRAMS + (SYSTEMD_HOST_PROGRAMS if systemd else ())
    return [program for program in needed if not shutil.which(program)]


# --- up -------------------------------------------------------------------------------------


@dataclass
class UpResult:
    state: LabState
    already_up: bool
    seconds: float


def up(phones: int = 2, linux: int = 2, *, systemd: tuple[str, ...] = (), master: str = "linux1",
       socs: dict[str, str] | None = None, profile: str = "none", progress=None) -> UpResult:
    """Bring the lab up (idempotent: an identical running lab is left as it is).

    `systemd` names the firewall of each systemd host (sysd1, sysd2, ...); `master` is the host
    the lab's inventory makes the cluster's master; `socs` makes phones ARM devices of real SoCs
    ({"phone2": "google-tensor-g2"}, llamafleet_lab.arm_phone); `profile` their speeds (profiles.py).
    Raises LabError when another lab is up (take it down first) or a previous lab left pieces behind.
    """
    require_root()
    socs = dict(socs or {})
    hosts = plan_hosts(phones, linux, systemd, socs, profile)  # ValueError for impossible sizes, before touching anything
    if master not in {host.name for host in hosts if host.kind == "linux"}:
        raise ValueError(f"--master must be one of the lab's Linux hosts, got {master!r}")
    say = progress or (lambda message: None)
    with lab_lock():
        try:
            existing = load_state()
        except LabNotUp:
            existing = None
        if existing is not None:
            return UpResult(_check_existing(existing, phones, linux, list(systemd), master, socs, profile), already_up=True, seconds=0.0)
        leftovers = network.leftovers() + phone.cgroup_leftovers()
        leftovers += [f"cgroup {path}" for path in systemd_host.container_cgroups()]
        if leftovers:
            raise LabError(
                "pieces of an earlier lab are still there (" + ", ".join(leftovers) + "): run `llamafleet lab down` first"
            )
        missing = _missing_programs(bool(systemd)) + arm_phone.missing_programs(socs) + profiles.missing_pieces(hosts)
        if missing:
            raise LabError("the lab needs these programs, which are missing: " + ", ".join(missing))
        started = time.monotonic()
        directory = state_dir()
        _check_state_dir_location(directory, hosts)
        if directory.exists() and any(directory.iterdir()):
            raise LabError(f"{directory} exists and is not empty, but holds no lab: remove it or set LLAMAFLEET_LAB_DIR")
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)  # phone users must not reach the lab key or other hosts' files
        (directory / MARKER_FILE).write_text("state directory of `llamafleet lab`; `lab down` deletes it\n")
        state = LabState(directory=directory, phones=phones, linux=linux, hosts=hosts, started_at=time.time(),
                         systemd=list(systemd), master=master, socs=socs, profile=profile)
        state.save()
        try:
            _build(state, say)
        except BaseException:
            say("lab up failed: taking down what was built")
            _down_locked(state_dir())
            raise
        return UpResult(state, already_up=False, seconds=time.monotonic() - started)


def _check_state_dir_location(directory: Path, hosts: list[LabHost]) -> None:
    """Hosts read their sshd config and write logs in the state dir, so it must not be below
    a path that the hosts replace with their own (/tmp, /root, /run, ...)."""
    resolved = directory.resolve()
    for point in hostsetup.mount_points(hosts):
        if resolved == Path(point) or Path(point) in resolved.parents:
            raise LabError(
                f"the lab state dir {directory} is below {point}, which every lab host replaces with "
                "its own: set LLAMAFLEET_LAB_DIR to a directory elsewhere (default /var/lib/llamafleet-lab)"
            )


def _check_existing(state: LabState, phones: int, linux: int, systemd: list[str], master: str,
                    socs: dict[str, str], profile: str) -> LabState:
    wanted = (phones, linux, systemd, master, socs, profile)
    if (state.phones, state.linux, state.systemd, state.master, state.socs, state.profile) != wanted:
        def shape(p, l, s, m, c, speeds):
            arm = ",".join(f"{name}={chosen}" for name, chosen in sorted(c.items())) or "none"
            return f"{p} phones (ARM: {arm}), {l} Linux hosts, systemd hosts [{','.join(s)}], master {m}, profile {speeds}"
        raise LabError(
            f"a lab with {shape(state.phones, state.linux, state.systemd, state.master, state.socs, state.profile)} is up; "
            f"run `llamafleet lab down` first to get {shape(*wanted)}"
        )
    dead = [host.name for host in state.hosts if not find_inits.init_alive(state.init_pids.get(host.name))]
    if state.phase != "up" or dead:
        raise LabError(
            "the lab's state says it is up, but "
            + (f"these hosts are not running: {', '.join(dead)}" if dead else "it never finished starting")
            + " (machine rebooted?): run `llamafleet lab down`, then `llamafleet lab up`"
        )
    return state


def _build(state: LabState, say) -> None:
    say("generating the lab key")
    authorized_key = sshd.generate_keypair(state.ssh_key, "llamafleet-lab")

    say("creating mount points the hosts need")
    state.created_paths = hostsetup.create_missing_dirs(hostsetup.mount_points(state.hosts))
    state.save()

    if state.socs:
        say("registering qemu-user for the ARM phones' programs (binfmt_misc)")
        arm_phone.install_machine_pieces(state.socs)

    root = None
    if any(host.boots_systemd for host in state.hosts):
        from llamafleet_lab.assets import cache_dir

        root = rootfs.ensure_rootfs(cache_dir(), say)
    say("building each host's storage")
    specs = {host.name: hostsetup.prepare_host(host, state.host_dir(host.name), authorized_key, root) for host in state.hosts}

    say("creating the bridge and network namespaces")
    state.network_created = True  # saved first: a half-made network must be cleaned up too
    state.save()
    network.create_network(state.hosts)
    profiles.limit_links(state.hosts)

    say("starting the hosts")
    launchers = {
        name: subprocess.Popen(
            [sys.executable, "-I", "-S", hostinit.__file__, "launch", str(spec)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, spec in specs.items()
    }
    failures = []
    for name, launcher in launchers.items():
        stdout, stderr = launcher.communicate(timeout=LAUNCH_TIMEOUT)
        try:
            report = json.loads(stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            failures.append(f"{name}: launcher failed: {stderr.strip() or stdout.strip()}")
            continue
        state.init_pids[name] = int(report["init_pid"])
        if not report["ready"]:
            failures.append(f"{name}: {report['message']} (see {state.log_dir(name) / 'init.log'})")
    state.save()
    if failures:
        raise LabError("lab hosts failed to start:\n  " + "\n  ".join(failures))

    say("waiting for every sshd")
    _wait_for_ssh(state)
    lines = [sshd.known_hosts_line(host, hostsetup.host_public_key(host, state.host_dir(host.name))) for host in state.hosts]
    state.known_hosts.write_text("\n".join(lines) + "\n")
    state.phase = "up"
    state.save()


def _wait_for_ssh(state: LabState) -> None:
    deadline = time.monotonic() + SSH_WAIT_SECONDS
    waiting = list(state.hosts)
    while waiting:
        waiting = [host for host in waiting if not sshd.ssh_answers(host.address, host.ssh_port, timeout=0.5)]
        if waiting and time.monotonic() > deadline:
            names = ", ".join(f"{host.name} ({host.address}:{host.ssh_port})" for host in waiting)
            raise LabError(f"sshd did not answer within {SSH_WAIT_SECONDS:.0f}s on: {names}")
        if waiting:
            time.sleep(0.05)


# --- down -----------------------------------------------------------------------------------


@dataclass
class DownResult:
    was_up: bool
    seconds: float
    problems: list[str]


def down() -> DownResult:
    """Remove everything the lab created: processes, namespaces, bridge, mount points, state.

    Works on half-built labs too, and finds a crashed lab's network pieces by their names.
    """
    require_root()
    with lab_lock():
        return _down_locked(state_dir())


def _down_locked(directory: Path) -> DownResult:
    started = time.monotonic()
    try:
        state = load_state(directory)
    except LabNotUp:
        state = None
    init_pids = set(state.init_pids.values()) if state else set()
    init_pids |= find_inits.running_inits(directory)
    leftovers = network.leftovers() + phone.cgroup_leftovers() + systemd_host.container_cgroups()
    if state is None and not init_pids and not leftovers and not directory.exists():
        return DownResult(was_up=False, seconds=0.0, problems=[])

    problems = []
    phone.thaw_all()  # a dozing phone's frozen processes would not take the kernel's SIGKILL
    # A systemd host's systemd is not killed with its nspawn: SIGKILL to it (PID 1 of its own
    # PID namespace) ends the whole container; found by its environment, so a crashed lab's too.
    containers = find_inits.containers_below(directory)
    for pid in containers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in init_pids:
        if find_inits.init_alive(pid):
            # PID 1 of the host's PID namespace: the kernel kills the whole host with it.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + INIT_EXIT_TIMEOUT
    # The containers too: their cgroups can be removed only once their processes are gone.
    waited = init_pids | containers
    while (alive := [pid for pid in waited if find_inits.process_exists(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive:
        problems.append(f"init processes still present after {INIT_EXIT_TIMEOUT:.0f}s: {sorted(alive)}")

    problems += network.destroy_network()
    problems += arm_phone.remove_machine_pieces()
    problems += systemd_host.remove_container_cgroups()
    problems += phone.remove_cgroups()
    if state is not None:
        kept = hostsetup.remove_created_dirs(state.created_paths)
        problems += [f"kept {path}: not empty any more" for path in kept]
    if directory.exists():
        if (directory / MARKER_FILE).exists():
            shutil.rmtree(directory)
        else:
            problems.append(f"kept {directory}: it has no {MARKER_FILE} marker, so it is not the lab's")
    return DownResult(was_up=True, seconds=time.monotonic() - started, problems=problems)
