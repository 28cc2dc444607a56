"""How `llamafleet status` shows its rows: a rich table on a terminal, plain aligned text
otherwise (stable, for logs and scripts that grep), JSON with --json; --watch refreshes."""

from __future__ import annotations

import json
import time
from typing import Callable, TextIO

from llamafleet.status import HostStatus, ServiceState, to_json
from llamafleet.tables import aligned, rich_table

COLUMNS = ("host", "role", "rank", "ssh", "services", "bound", "RAM used/avail", "CPU temp", "phone",
           "share / serving", "build")


def duration(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours}h{minutes % 60:02d}m" if hours < 24 else f"{hours // 24}d{hours % 24:02d}h"


def service_text(service: ServiceState) -> str:
    """"llama-rpc up 3h05m, 1 restart"; the time is how long it has been in its state."""
    name = service.name.replace("llama-tunnel-", "tunnel ")
    state = "up" if service.state == "running" else service.state.upper()
    text = f"{name} {state}" + (f" {duration(service.uptime_s)}" if service.uptime_s is not None else "")
    if service.restarts is None:  # unknown (a tunnel under runit): said in --json as null
        return text
    return f"{text}, {service.restarts} restart" + "s" * (service.restarts != 1)


def serving_text(s: HostStatus) -> str:
    if s.share is not None:
        if s.share["fraction"] is None:
            return "share unknown (a host's RAM unread)"
        return f"{s.share['fraction']:.1%} ({s.share['mb']:.0f} MB)"
    server = s.server
    if not server:
        return "-"
    if server["source"] == "metrics":
        rate = server["tokens_per_second"]
        average = server["tokens_per_second_avg"]
        tps = f"{rate:.1f} tok/s" if rate else f"avg {average:.1f} tok/s" if average else "no tokens yet"
        return f"{tps}; queue {server['processing'] or 0:.0f} running, {server['deferred'] or 0:.0f} waiting"
    if server["source"] == "slots":
        return f"{server['processing']}/{server['slots']} slots busy (no /metrics)"
    return "no /metrics, no /slots"


def phone_text(s: HostStatus) -> str:
    phone = s.phone
    if phone is None:
        return "-"
    battery = phone["battery"]
    power = (f"battery {battery['percentage']}% {str(battery['status'] or '').lower()}".rstrip() if battery
             else "battery unknown")
    cpus = f"{phone['cpuset'] or '?'} CPUs {phone['cpus_allowed'] or '?'}"
    return f"wake lock {phone['wake_lock']}\n{power}\n{cpus}"


def cells(s: HostStatus) -> list[str]:
    """One row's cells, in COLUMNS order; several facts in one cell are on separate lines."""
    if not s.reachable:
        return [s.host, s.role, str(s.rank), "DOWN", "?", "?", "?", "?", "?" if s.platform == "termux" else "-",
                serving_text(s) if s.share else "?", "?"]
    memory = s.memory
    ram = f"{memory['used_mb']} / {memory['available_mb']} MB" if memory else "unknown"
    temp = f"{s.temperature_c:.0f} °C" if s.temperature_c is not None else "unknown"
    build = "-"
    if s.build:
        step = f" {s.build['step']}/{s.build['total']}" if s.build["step"] is not None else ""
        left = s.build.get("left_s")
        build = s.build["phase"] + step + (f", ~{duration(left)} left" if left is not None else "")
    return [s.host, s.role, str(s.rank), "ok", "\n".join(map(service_text, s.services)) or "-",
            s.bound, ram, temp, phone_text(s), serving_text(s), build]


def problem_lines(statuses: list[HostStatus]) -> list[str]:
    lines = []
    for s in statuses:
        for p in s.problems:
            mark = "FAIL" if p.severity == "fail" else "WARN"
            lines.append(f"{mark} {s.host} {p.check}: {p.detail}")
            lines.append(f"     fix: {p.fix}")
    return lines


def summary(statuses: list[HostStatus]) -> str:
    problems = sum(len(s.problems) for s in statuses)
    hosts = sum(bool(s.problems) for s in statuses)
    count = f"{len(statuses)} host" + "s" * (len(statuses) != 1)
    return f"{count}: " + (f"{problems} problem{'s' * (problems != 1)} on {hosts} of them" if problems else "no problems")


def render_plain(statuses: list[HostStatus], notes: list[str] = ()) -> str:
    """Aligned columns, one line per host ("; " between a cell's facts), then the problems."""
    lines = aligned(COLUMNS, [cells(s) for s in statuses])
    header_and_rows = len(lines)
    lines += ["", *problem_lines(statuses), *[f"note: {note}" for note in notes], summary(statuses)]
    return "\n".join(line for i, line in enumerate(lines) if line or i == header_and_rows)


def render_rich(statuses: list[HostStatus], notes: list[str] = ()):
    from rich.console import Group
    from rich.text import Text

    rows = []
    for s in statuses:
        row = [Text(cell) for cell in cells(s)]
        row[3].stylize("green" if s.reachable else "bold red")
        rows.append(row)
    styles = ["red" if any(p.severity == "fail" for p in s.problems) else "yellow" if s.problems else None
              for s in statuses]
    table = rich_table(COLUMNS, rows, f"llamafleet status  {time.strftime('%H:%M:%S')}",
                       ("host", "role", "rank", "ssh"), styles)
    below = []
    for line in problem_lines(statuses):
        style = "bold red" if line.startswith("FAIL") else "yellow" if line.startswith("WARN") else "dim"
        below.append(Text(line, style=style))
    below += [Text(f"note: {note}", style="dim") for note in notes]
    below.append(Text(summary(statuses), style="bold"))
    return Group(table, *below)


def show(fetch: Callable[[], list[HostStatus]], args, out: TextIO, notes: list[str] = (),
         sleep: Callable[[float], None] = time.sleep, tty: bool | None = None) -> int:
    """Fetch, print, and with --watch fetch again every args.watch seconds until interrupted.
    The exit code is the last snapshot's: 1 when a host has a problem."""
    from rich.console import Console
    from rich.live import Live

    tty = out.isatty() if tty is None else tty
    console = Console(file=out, force_terminal=tty)
    live = Live(console=console, auto_refresh=False) if tty and args.watch and not args.json else None
    code = 0
    try:
        if live is not None:
            live.start()
        while True:
            statuses = fetch()
            code = 1 if any(s.problems for s in statuses) else 0
            if args.json:
                print(json.dumps(to_json(statuses, notes), indent=None if args.watch else 2), file=out, flush=True)
            elif live is not None:
                live.update(render_rich(statuses, notes), refresh=True)
            elif tty:
                console.print(render_rich(statuses, notes))
            else:
                print(render_plain(statuses, notes) + ("\n" if args.watch else ""), file=out, flush=True)
            if not args.watch:
                return code
            sleep(args.watch)
    except KeyboardInterrupt:
        return code
    finally:
        if live is not None:
            live.stop()
