"""Where a host runs: Termux on Android or plain Linux (pure parsing of a probe's output).

The probe (llamafleet.facts.device.DevicePlatform) prints `key=value` lines; this module turns
them into the platform dict the deploy branches on.
"""

from __future__ import annotations

SERVICE_MANAGERS = ("termux-services", "systemd", "runit")


def parse_platform(lines: list[str]) -> dict:
    """Probe lines → {"platform": "termux"|"linux", "android_version", "is_root", "home",
    "prefix", "has_systemd", "service_manager"}.

    Termux: `$PREFIX` contains "com.termux" or `$TERMUX_VERSION` is set (the Termux app sets
    both; sshd started from Termux passes them on). service_manager: termux-services on
    Termux (the packages task installs it; before that `sv-enable` may not exist yet); systemd when /run/systemd/system exists (systemd's own test
    for "booted with systemd"); runit when `runsvdir` exists; else None."""
    raw: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            raw[key.strip()] = value.strip()

    prefix = raw.get("prefix") or None
    is_termux = bool(raw.get("termux_version")) or "com.termux" in (prefix or "")
    has_systemd = raw.get("systemd") == "1"
    if is_termux:
        manager = "termux-services"
    elif has_systemd:
        manager = "systemd"
    elif raw.get("runsvdir"):
        manager = "runit"
    else:
        manager = None
    uid = raw.get("uid", "")
    return {
        "platform": "termux" if is_termux else "linux",
        "android_version": raw.get("android") or None,
        "is_root": uid == "0",
        "home": raw.get("home") or None,
        "prefix": prefix,
        "has_systemd": has_systemd,
        "service_manager": manager,
    }
