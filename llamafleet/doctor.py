"""`llamafleet doctor INVENTORY`: is each phone set up to keep a worker running?

What Android decides and Termux cannot change by itself: the Android version, the phantom
process killer, whether the wake lock was taken in this boot (llamafleet's own record: Android
cannot be asked), the Termux:Boot script, the cpuset Android holds Termux to, heat, the number
of processes against Android's limit of 32. One SSH command per phone collects everything
(`probe_command`); `parse_probe` and `evaluate` turn its output into rows without a phone, so
they are unit-tested. One row per check (ok / warn / fail / unknown / info) with the fix to
try; exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field

from llamafleet.diagnose import Row, render
from llamafleet.layout import TERMUX_BOOT_SCRIPT, paths_for, resolve_base
from llamafleet.probe_output import parse_sections, sh_path
from llamafleet.serving.wakelock import BOOT_ID_FILE, parse_record

GETPROP = "/system/bin/getprop"  # not on Termux's PATH
PHANTOM_PROP = "persist.sys.fflag.override.settings_enable_monitor_phantom_procs"
PHANTOM_LIMIT = 32
HOT_CELSIUS = 70
MARK = "@@llamafleet-doctor "
BATTERY_FIX = "Android settings → Apps → Termux and Termux:Boot → Battery → Unrestricted"
# cpusets Android puts an app in when it is in the background or restricted.
BACKGROUND_CPUSETS = ("background", "system-background", "restricted")


def record_path(name: str, data: dict) -> str:
    """The wake-lock record on a phone, "~/..." when it is under the (not yet known) home."""
    base = resolve_base(name, data.get("llamafleet_dir"), {"platform": "termux", "home": "~"})
    return paths_for(base).wake_lock_record


def probe_command(record: str, boot_script: str = f"~/{TERMUX_BOOT_SCRIPT}") -> str:
    """One sh command printing every section `parse_probe` reads, each after a marker line.
    Only Termux's own tools, /proc and /sys: no ss, ip or netstat on a phone."""
    record, boot = sh_path(record), sh_path(boot_script)
    sections = [
        ("release", f"{GETPROP} ro.build.version.release"),
        ("sdk", f"{GETPROP} ro.build.version.sdk"),
        ("model", f"{GETPROP} ro.product.model"),
        ("phantom", f"{GETPROP} {PHANTOM_PROP}"),
        ("boot_id", f"cat {BOOT_ID_FILE}"),
        ("now", "date +%s"),
        ("record", f"cat {record}"),
        ("boot_script", f"if [ -f {boot} ] && [ -x {boot} ]; then echo executable; "
                        f"elif [ -e {boot} ]; then echo present; else echo missing; fi"),
        ("cpuset", "cat /proc/self/cpuset"),
        ("status", "cat /proc/self/status"),
        ("cpus", "cat /sys/devices/system/cpu/present"),
        ("temps", "cat /sys/class/thermal/thermal_zone*/temp"),
        ("uid", "id -u"),
        ("procs", "ls -ldn /proc/[0-9]*"),
    ]
    return "exec 2>/dev/null; " + " ".join(f"echo '{MARK}{key}'; {command};" for key, command in sections) + " true"


def cpu_list(text: str) -> set[int]:
    """"0-3,6" -> {0, 1, 2, 3, 6}; empty for anything else."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        match = re.fullmatch(r"\s*(\d+)(?:-(\d+))?\s*", part)
        if not match:
            return set()
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        cpus.update(range(low, high + 1))
    return cpus


@dataclass
class Phone:
    """What the probe found on one phone (empty / None: could not be read)."""

    release: str = ""
    sdk: int | None = None
    model: str = ""
    phantom: str = ""  # "true", "false", or "" when unset
    boot_id: str = ""
    now: int | None = None
    record: str = ""
    boot_script: str = ""  # "executable", "present", "missing"
    cpuset: str = ""
    allowed: set[int] = field(default_factory=set)
    cpus: set[int] = field(default_factory=set)
    temps: list[float] = field(default_factory=list)
    processes: int | None = None


def parse_probe(output: str) -> Phone:
    sections = parse_sections(output, MARK)

    def get(name: str) -> str:
        return sections.get(name, "").strip()

    phone = Phone(release=get("release"), model=get("model"), phantom=get("phantom").lower(),
                  boot_id=get("boot_id").lower(), record=get("record"), boot_script=get("boot_script"),
                  cpuset=get("cpuset"), cpus=cpu_list(get("cpus")))
    phone.sdk = int(get("sdk")) if get("sdk").isdigit() else None
    phone.now = int(get("now")) if get("now").isdigit() else None
    allowed = re.search(r"^Cpus_allowed_list:\s*(\S+)", sections.get("status", ""), re.M)
    phone.allowed = cpu_list(allowed.group(1)) if allowed else set()
    for value in get("temps").split():
        if re.fullmatch(r"-?\d+", value):
            celsius = int(value) / 1000 if abs(int(value)) >= 1000 else int(value)  # most zones: m°C
            if 0 < celsius < 150:  # unused zones report 0 or -273
                phone.temps.append(celsius)
    uid = get("uid")
    if uid.isdigit():
        owners = [line.split()[2] for line in sections.get("procs", "").splitlines() if len(line.split()) > 2]
        phone.processes = sum(owner == uid for owner in owners) or None
    return phone


def _ago(seconds: int) -> str:
    minutes = max(seconds, 0) // 60
    if minutes < 60:
        return f"{minutes} min ago"
    if minutes < 24 * 60:
        return f"{minutes // 60} h {minutes % 60} min ago"
    return f"{minutes // (24 * 60)} d {minutes // 60 % 24} h ago"


def phantom_fix(sdk: int) -> str:
    """How to turn the phantom process killer off on this Android version (from a computer)."""
    if sdk <= 31:  # Android 12
        return ("adb shell device_config set_sync_disabled_for_tests persistent; "
                "adb shell device_config put activity_manager max_phantom_processes 2147483647")
    command = "adb shell settings put global settings_enable_monitor_phantom_procs false"
    if sdk >= 34:  # Android 14+
        return f'Developer options → "Disable child process restrictions" (or {command})'
    return command  # Android 12L, 13


def evaluate(name: str, phone: Phone, record: str, termux_boot: bool = True) -> list[Row]:
    """The rows for one phone, from what the probe found."""
    rows: list[Row] = []

    def row(check: str, status: str, detail: str, fix: str = "") -> None:
        rows.append(Row(name, check, status, detail, fix))

    if phone.sdk is None:
        row("Android", "unknown", "getprop gave no version (not an Android phone?)", "")
    else:
        model = f", {phone.model}" if phone.model else ""
        row("Android", "ok", f"Android {phone.release or '?'} (SDK {phone.sdk}){model}", "")

    if phone.sdk is None:
        row("phantom process killer", "unknown", "Android version unknown", "")
    elif phone.sdk < 31:
        row("phantom process killer", "ok", "none before Android 12", "")
    elif phone.phantom == "false":
        row("phantom process killer", "ok", "disabled", "")
    else:
        if phone.phantom == "true":
            detail = "enabled"
        elif phone.sdk == 31:
            detail = "probably enabled (Android 12 keeps it in device_config, which Termux cannot read)"
        else:
            detail = "enabled (the default)"
        row("phantom process killer", "warn",
            f"{detail}: Android kills Termux's processes beyond {PHANTOM_LIMIT} (signal 9)", phantom_fix(phone.sdk))

    taken = parse_record(phone.record)
    rerun = f"run ~/{TERMUX_BOOT_SCRIPT} in Termux (takes and records it); for the next boot, see the boot script row"
    if not phone.boot_id:
        row("wake lock", "unknown", f"{BOOT_ID_FILE} unreadable", "")
    elif taken is None:
        row("wake lock", "fail", f"not taken since boot (no record in {record}): the phone dozes when idle", rerun)
    elif taken.boot_id != phone.boot_id:
        row("wake lock", "fail", "not taken since boot: the phone dozes when idle (the record is from an earlier boot)",
            rerun)
    else:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(taken.taken_at))
        ago = f" ({_ago(phone.now - taken.taken_at)})" if phone.now else ""
        row("wake lock", "ok", f"taken in this boot at {when}{ago}", "")

    script = f"~/{TERMUX_BOOT_SCRIPT}"
    if phone.boot_script == "executable":
        row("boot script", "ok", f"{script} present and executable", "")
    elif not termux_boot:
        row("boot script", "warn", "termux_boot = False: nothing brings the worker back after a reboot",
            "set termux_boot = True and deploy again")
    elif phone.boot_script == "present":
        row("boot script", "fail", f"{script} is not executable", f"chmod 700 {script} (or deploy again)")
    else:
        row("boot script", "fail", f"{script} missing: nothing brings the worker back after a reboot",
            "deploy again; install Termux:Boot from the same source as Termux (F-Droid) and open it once")
    row("Termux:Boot unlock", "info", "with a screen lock, Termux:Boot runs only after the first unlock after a reboot",
        "unlock the phone once after every reboot")

    background = phone.cpuset.strip("/") in BACKGROUND_CPUSETS
    if not phone.allowed or not phone.cpus:
        row("cpuset", "unknown", f"cpuset {phone.cpuset or '?'}; allowed CPUs unreadable", "")
    elif phone.allowed < phone.cpus or background:
        allowed = ",".join(map(str, sorted(phone.allowed)))
        row("cpuset", "warn", f"{phone.cpuset or '?'}: held to CPUs {allowed} of {len(phone.cpus)}",
            f"battery: Unrestricted ({BATTERY_FIX}); keep Termux in the foreground")
    else:
        row("cpuset", "ok", f"{phone.cpuset or '?'}: all {len(phone.cpus)} CPUs", "")

    if not phone.temps:
        row("temperature", "unknown", "thermal zones unreadable (Android hides them from apps)",
            "feel the phone; keep it cool")
    elif max(phone.temps) >= HOT_CELSIUS:
        row("temperature", "warn", f"{max(phone.temps):.0f} °C",
            "throttling likely: cool the phone, fewer threads (rpc_threads)")
    else:
        row("temperature", "ok", f"{max(phone.temps):.0f} °C", "")

    if phone.processes is None:
        row("processes", "unknown", "could not count the app's processes", "")
    else:
        detail = f"{phone.processes} processes of the Termux user (this check's shell included), limit {PHANTOM_LIMIT}"
        killer_off = phone.phantom == "false" or (phone.sdk is not None and phone.sdk < 31)
        if killer_off:
            row("processes", "ok", detail + " not enforced", "")
        elif phone.sdk is None:
            row("processes", "unknown", detail + " (Android version unknown)", "")
        elif phone.processes >= PHANTOM_LIMIT:
            row("processes", "fail", detail + ": Android kills the ones beyond it",
                phantom_fix(phone.sdk) + "; or stop the processes you do not need")
        elif phone.processes >= PHANTOM_LIMIT * 3 // 4:
            row("processes", "warn", detail + ": close to it", phantom_fix(phone.sdk))
        else:
            row("processes", "ok", detail, "")

    row("battery optimisation", "info", "Termux cannot read it; an optimised app is stopped in the background",
        BATTERY_FIX)
    return rows


def check_phone(name: str, data: dict) -> list[Row]:
    """Connect to one phone, run the probe, evaluate it."""
    from llamafleet.connect import run, ssh_client

    record = record_path(name, data)
    client = ssh_client(name, data)
    try:
        code, output, error = run(client, probe_command(record), timeout=60)
    finally:
        client.close()
    if MARK not in output:
        return [Row(name, "probe", "fail", f"the check's shell command failed (exit {code}): {error.strip()[:120]}",
                    "is this a Termux phone? (`sh` and coreutils on the SSH user's PATH)")]
    return evaluate(name, parse_probe(output), record, bool(data.get("termux_boot", True)))


def chat_rows(name: str, data: dict) -> list[Row]:
    """The master's chat template: a model without one answers chat clients with ChatML tokens."""
    from llamafleet.serving.chat_template import missing_template_advice

    advice = missing_template_advice(data.get("model_file"), data.get("llama_chat_template"))
    if advice:
        return [Row(name, "chat template", "warn", advice.split(":")[0],
                    'set llama_chat_template (e.g. "gemma3" for Gemma 3) in group_data/all.py')]
    return []


def _cmd_doctor(args: argparse.Namespace) -> int:
    from llamafleet.inventory_data import InventoryError, load_inventory

    try:
        inventory = load_inventory(args.inventory)
    except InventoryError as error:
        print(error, file=sys.stderr)
        return 2
    hosts = [h for h in inventory if h.is_termux]
    rows: list[Row] = [row for h in inventory if h.data.get("llama_role") == "master" for row in chat_rows(h.name, h.data)]
    if not hosts:
        print(render(rows) + "\n" if rows else "", end="")
        print(f"{args.inventory}: no phones (hosts in the `termux` group)")
        return 0
    for phone in hosts:
        try:
            rows.extend(check_phone(phone.name, phone.data))
        except Exception as error:  # one unreachable phone must not hide the others' rows
            rows.append(Row(phone.name, "ssh", "fail", f"{phone.name} unreachable: {type(error).__name__}: {error}",
                            "is Termux open and sshd running on the phone (`sshd`, port 8022)?"))
    print(render(rows))
    counts = {status: sum(r.status == status for r in rows) for status in ("ok", "warn", "fail", "unknown", "info")}
    print(f"\n{len(rows)} checks: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    return 1 if counts["fail"] else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "doctor", help="check each phone's Android settings (wake lock, phantom process killer, boot script)")
    parser.add_argument("inventory")
    parser.set_defaults(func=_cmd_doctor)
