"""`llamafleet lab up|status|down|reboot|link|screen|pin|unlock|setprop|exec`: the lab from the command line."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from llamafleet_lab import arm_phone, execute, hosts_running, lifecycle, phone, profiles
from llamafleet_lab.state import LabError, LabNotUp, load_state

EXIT_NOT_ROOT = 2


def register(subparsers) -> None:
    """Add the `lab` command and its sub-commands to the llamafleet parser."""
    lab = subparsers.add_parser(
        "lab",
        help="a cluster of SSH hosts (simulated phones, Linux hosts) on this machine",
        description="Run a lab cluster on this machine: each host has its own network, mount, "
        "hostname and process namespaces and an sshd. Needs root.",
    )
    commands = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND")
    lab.set_defaults(func=lambda args: (lab.print_help(), 2)[1])

    up = commands.add_parser("up", help="start the lab (idempotent)")
    up.add_argument("--phones", type=int, default=2, metavar="N", help="simulated Termux phones (default 2)")
    up.add_argument("--linux", type=int, default=2, metavar="M", help="Linux hosts booting runit (default 2)")
    up.add_argument(
        "--systemd", default="", metavar="FW[,FW...]",
        help="Debian hosts booting systemd (sysd1, sysd2, ...), one per firewall named: ufw, firewalld or none "
             "(e.g. --systemd ufw,firewalld); default none",
    )
    up.add_argument("--master", default="linux1", metavar="HOST", help="the cluster's master in the lab inventory (default linux1)")
    up.add_argument(
        "--soc", action="append", default=None, metavar="PHONE=SOC",
        help="make a phone an ARM device of a real SoC, its programs run by qemu-user (SoCs: "
             + ", ".join(sorted(arm_phone.SOCS)) + f"); repeatable; default phone2={arm_phone.DEFAULT_SOC} "
             "when there are 2 phones or more; --soc none: every phone of this machine's architecture",
    )
    up.add_argument(
        "--profile", default="none", choices=sorted(profiles.PROFILES),
        help="the hosts' speeds: none (default: every host as fast as this machine) or mixed (phone1 a mid-range "
             "phone, phone2 an old one on a slow link; see llamafleet_lab/profiles.py)",
    )
    up.set_defaults(func=_guarded(cmd_up))

    status = commands.add_parser("status", help="list the hosts and whether their sshd answers")
    status.add_argument("--json", action="store_true", help="print a JSON list of hosts")
    status.set_defaults(func=_guarded(cmd_status))

    down = commands.add_parser("down", help="stop the lab and remove everything it created")
    down.set_defaults(func=_guarded(cmd_down))

    reboot = commands.add_parser("reboot", help="reboot one host (a phone keeps nothing; Termux:Boot scripts run)")
    reboot.add_argument("host")
    reboot.set_defaults(func=_guarded(cmd_reboot))

    link = commands.add_parser("link", help="take a host's network link down (it leaves Wi-Fi: connections hang) or up")
    link.add_argument("host")
    link.add_argument("state", choices=("down", "up"))
    link.set_defaults(func=_guarded(lambda args: _phone_action(profiles.set_link, args.host, args.state == "up")))

    screen = commands.add_parser("screen", help="turn a phone's screen on or off (Doze needs it off)")
    screen.add_argument("host")
    screen.add_argument("state", choices=("on", "off"))
    screen.set_defaults(func=_guarded(lambda args: _phone_action(phone.set_screen, args.host, args.state == "on")))

    pin = commands.add_parser("pin", help="set or clear a phone's screen lock (Termux:Boot waits for the first unlock)")
    pin.add_argument("host")
    pin.add_argument("state", choices=("on", "off"))
    pin.set_defaults(func=_guarded(lambda args: _phone_action(phone.set_pin, args.host, args.state == "on")))

    unlock = commands.add_parser("unlock", help="unlock a phone after a reboot (runs its Termux:Boot scripts)")
    unlock.add_argument("host")
    unlock.set_defaults(func=_guarded(lambda args: _phone_action(phone.unlock, args.host)))

    cpuset = commands.add_parser("cpuset", help="hold a phone's app to an Android cpuset (background: the little cores)")
    cpuset.add_argument("host")
    cpuset.add_argument("cpuset", choices=phone.CPUSETS)
    cpuset.set_defaults(func=_guarded(lambda args: _phone_action(phone.set_cpuset, args.host, args.cpuset)))

    setprop = commands.add_parser("setprop", help="set an Android property of a phone (as adb shell would)")
    setprop.add_argument("host")
    setprop.add_argument("key")
    setprop.add_argument("value")
    setprop.set_defaults(func=_guarded(lambda args: _phone_action(phone.set_property, args.host, args.key, args.value)))

    run = commands.add_parser(
        "exec",
        help="run a command in a host as its user; exits with the command's status",
        usage="llamafleet lab exec [--root] HOST -- CMD...",
    )
    run.add_argument("--root", action="store_true", help="on a phone, run as root instead of the app user")
    run.add_argument("host")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (after --)")
    run.set_defaults(func=_guarded(cmd_exec))


def _guarded(command):
    """Root check and uniform error reporting for every sub-command."""

    def run(args) -> int:
        if os.geteuid() != 0:
            print(
                "llamafleet lab needs root: it creates network namespaces, a bridge, mounts and sshd "
                "processes. Run it as root (e.g. `sudo llamafleet lab ...`).",
                file=sys.stderr,
            )
            return EXIT_NOT_ROOT
        try:
            return command(args)
        except (LabError, ValueError) as error:
            print(f"llamafleet lab: {error}", file=sys.stderr)
            return 1

    return run


def _phone_action(action, *arguments) -> int:
    action(*arguments)
    return 0


def _socs(args) -> dict[str, str]:
    if args.soc is None:
        return {"phone2": arm_phone.DEFAULT_SOC} if args.phones >= 2 else {}
    socs = {}
    for spec in args.soc:
        if spec == "none":
            continue
        name, sep, chosen = spec.partition("=")
        if not sep:
            raise ValueError(f"--soc {spec}: expected PHONE=SOC, e.g. phone2={arm_phone.DEFAULT_SOC}")
        socs[name.strip()] = chosen.strip()
    return socs


def cmd_up(args) -> int:
    systemd = tuple(name.strip() for name in args.systemd.split(",") if name.strip())
    result = lifecycle.up(args.phones, args.linux, systemd=systemd, master=args.master, socs=_socs(args),
                          profile=args.profile, progress=lambda message: print(f"  {message}", file=sys.stderr))
    names = ", ".join(host.name for host in result.state.hosts)
    if result.already_up:
        print(f"lab is already up ({names})")
    else:
        print(f"lab is up in {result.seconds:.1f}s: {names}")
        print("inventory: inventory/lab.py   status: llamafleet lab status")
    return 0


def cmd_status(args) -> int:
    try:
        hosts = hosts_running.status()
    except LabNotUp as error:
        if args.json:
            print("[]")
        print(str(error), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(hosts, indent=2))
        return 0
    print(f"{'NAME':<10} {'KIND':<9} {'ADDRESS':<15} {'PORT':>5}  {'USER':<9} {'UP':<4} {'CPU':>5}  LINK")
    for host in hosts:
        print(
            f"{host['name']:<10} {host['kind']:<9} {host['address']:<15} {host['ssh_port']:>5}  "
            f"{host['user']:<9} {'yes' if host['up'] else 'NO':<4} {_speeds(host)}"
        )
    return 0 if all(host["up"] for host in hosts) else 1


def _speeds(host: dict) -> str:
    """The CPU and LINK columns: "25%  20 Mbit/s", "-  full down" (profiles.describe)."""
    cpu = f"{host['cpu_percent']}%" if host["cpu_percent"] is not None else "-"
    rate = f"{host['link_mbit']:g} Mbit/s" if host["link_mbit"] is not None else "full"
    return f"{cpu:>5}  {rate}" + ("" if host["link"] == "up" else f" {host['link']}")


def cmd_down(args) -> int:
    result = lifecycle.down()
    if not result.was_up:
        print("lab is not up: nothing to do")
        return 0
    for problem in result.problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"lab is down in {result.seconds:.1f}s")
    return 1 if result.problems else 0


def cmd_reboot(args) -> int:
    status = hosts_running.reboot(args.host)
    scripts = status.get("boot_scripts") or []
    ran = f"; boot scripts started: {', '.join(scripts)}" if scripts else ""
    print(f"{args.host} rebooted (boot {status['boot_count']}){ran}")
    return 0


def cmd_exec(args) -> int:
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        raise LabError("no command given: llamafleet lab exec HOST -- CMD...")
    state = load_state()
    argv = execute.exec_argv(state.host(args.host), execute.entry_pid(state, args.host), command, root=args.root)
    code = subprocess.run(argv).returncode
    # A command killed by signal N exits like a shell reports it: 128+N.
    return code if code >= 0 else 128 - code
