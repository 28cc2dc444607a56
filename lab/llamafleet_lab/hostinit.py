"""PID 1 of one lab host, and the launcher that starts it inside the host's namespaces.

Stands for: the host's boot and init system. For a phone that is Android booting, the Termux
app's service daemon (runsvdir on $PREFIX/var/service) and the Termux:Boot app running
~/.termux/boot/*; for a Linux host it is a Debian box booted with runit (`runsvdir -P
/etc/service`) instead of systemd. A systemd host's init (SPEC "boot": "systemd") only mounts
its overlay root and boots real systemd under systemd-nspawn (hostinit_nspawn.py).

    python hostinit.py launch SPEC.json   # run by `lab up`: prints {"init_pid": N, ...}
    python hostinit.py init SPEC.json FD   # the init itself (started by launch)

`launch` enters the host's network namespace, unshares mount, UTS and PID namespaces and
forks the init, which becomes PID 1 of the new PID namespace: when it dies, the kernel kills
every process of the host, which is how `lab down` stops a host. The init mounts the host's
own /proc and /sys, bind-mounts the host's storage (SPEC "mounts"), sets the hostname, starts
sshd, then "boots" (see `boot`). It then reaps orphans and waits for signals: SIGUSR1 = reboot,
SIGUSR2 = the phone's first unlock, SIGTERM = power off.

A Linux host's sshd is a system service: restarted if it dies, spared by a reboot. A phone's sshd
is the one its user started by hand in Termux (`lab up`): nobody restarts it, and a reboot kills
every process of the phone; what comes back is what the Termux:Boot scripts start. A phone's
init also applies Android's policies to the app's processes (android_edge.py: no netlink, no
/proc/net, Doze, the phantom process killer).

Standard library only, and every module is imported up front: the init bind-mounts other
directories over /root, where the interpreter may live, so a later import could fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import traceback


def _load_sibling(filename: str, name: str):
    """Load a file beside this one by path, as module `name`: `-I` keeps this script's
    directory off sys.path, and nothing may be imported after the mounts."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(os.path.abspath(__file__)), filename))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# In this order: hostinit_pid1.py imports the first two by the names given here.
android_edge = _load_sibling("android_edge.py", "llamafleet_android_edge")  # the Android edge of a phone
_load_sibling("hostinit_system.py", "llamafleet_hostinit_system")  # syscalls, spawning children
HostInit = _load_sibling("hostinit_pid1.py", "llamafleet_hostinit_pid1").HostInit  # the init's state and loop
NspawnHost = _load_sibling("hostinit_nspawn.py", "llamafleet_hostinit_nspawn").NspawnHost  # a systemd host's

from llamafleet_hostinit_system import (  # noqa: E402 (found in sys.modules, loaded just above)
    CLONE_NEWCGROUP, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, MS_PRIVATE, MS_REC, WATCHED, mount, setns, unshare,
)


def run_init(spec_path: str, ready_fd: int) -> int:
    with open(spec_path) as handle:
        spec = json.load(handle)
    # Handlers make the kernel deliver these signals to a PID 1 at all; blocking them lets
    # sigtimedwait collect them one at a time, never in the middle of a reboot.
    for number in WATCHED:
        signal.signal(number, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
    if spec.get("boot") == "systemd":
        # A systemd host: its init is systemd itself, in systemd-nspawn (hostinit_nspawn.py).
        host = NspawnHost(spec)
        return _start_then_serve(host, [host.boot], ready_fd)
    init = HostInit(spec)
    return _start_then_serve(init, [init.setup, init.start_sshd, init.boot], ready_fd)


def _start_then_serve(init, steps, ready_fd: int) -> int:
    """Run the boot steps, tell the launcher "ready" (or the error), then serve until power-off."""
    try:
        for step in steps:
            step()
    except BaseException as error:
        traceback.print_exc()
        os.write(ready_fd, f"error: {error}\n".encode())
        return 1
    os.write(ready_fd, b"ready\n")
    os.close(ready_fd)
    init.serve()
    return 0


# --- the launcher -------------------------------------------------------------------------


def launch(spec_path: str) -> int:
    """Start the host's init in fresh namespaces; print its pid (as seen by the machine)."""
    with open(spec_path) as handle:
        spec = json.load(handle)
    if spec.get("boot") == "systemd":
        # A private mount namespace holding only the host's overlay root: nspawn enters the
        # network namespace itself, and systemd makes its own PID namespace and mounts.
        unshare(CLONE_NEWNS)
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        overlay = spec["overlay"]
        mount("overlay", overlay["merged"], "overlay", 0,
              f"lowerdir={overlay['lower']},upperdir={overlay['upper']},workdir={overlay['work']}")
        return _fork_init(spec, spec_path)
    netns_fd = os.open(f"/run/netns/{spec['netns']}", os.O_RDONLY)
    setns(netns_fd, CLONE_NEWNET)
    os.close(netns_fd)
    namespaces = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWPID
    if spec.get("cpu_cgroup"):
        # The host's CPU share (profiles.py): the init and everything it starts inherit it.
        with open(os.path.join(spec["cpu_cgroup"], "cgroup.procs"), "w") as handle:
            handle.write("0")
    if spec.get("android"):
        # The phone's cpuset cgroup becomes the root of its cgroup namespace: its processes read
        # Android-like paths in /proc/self/cpuset ("/top-app"), not the machine's.
        with open(os.path.join(spec["android"]["cpuset_cgroup"], "cgroup.procs"), "w") as handle:
            handle.write("0")
        namespaces |= CLONE_NEWCGROUP
    unshare(namespaces)
    # Nothing the host mounts may propagate back to the machine.
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    return _fork_init(spec, spec_path)


def _fork_init(spec: dict, spec_path: str) -> int:
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setsid()
            log_fd = os.open(os.path.join(spec["log_dir"], "init.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            devnull = os.open("/dev/null", os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.execv(sys.executable, [sys.executable, "-I", "-S", os.path.abspath(__file__), "init", spec_path, str(write_end)])
        finally:
            os._exit(127)
    os.close(write_end)
    message = b""
    while chunk := os.read(read_end, 4096):
        message += chunk
    text = message.decode(errors="replace").strip()
    ready = text == "ready"
    print(json.dumps({"init_pid": pid, "ready": ready, "message": text or "init exited before it was ready"}))
    return 0 if ready else 1


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "launch":
        return launch(argv[1])
    if len(argv) == 3 and argv[0] == "init":
        return run_init(argv[1], int(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
