"""The cluster as a picture: `llamafleet plan INVENTORY --svg FILE` and `llamafleet status ... --svg FILE`.

One box per device, its width proportional to the device's share of the model (the plan's tensor
split), with host, role and rank, platform, RAM, threads and where it listens; the master on top
and a link to each worker labelled with its transport and bandwidth; problems in colour, listed
with their fixes below. Plain SVG built with xml.etree (nothing to install; any browser shows it).

Text widths are estimated, not measured (no font metrics without a renderer): a box is made wide
enough for its longest line at CHAR_WIDTH per character, which errs on the wide side for DejaVu
Sans and similar fonts.
"""

from __future__ import annotations

import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from llamafleet.plan import Plan, PlannedHost, host_port

SVG_NS = "http://www.w3.org/2000/svg"
FONT = "DejaVu Sans, Verdana, Arial, sans-serif"
FONT_SIZE, LINE = 13, 18
CHAR_WIDTH = 0.62  # em: a generous average advance for a sans-serif font
MARGIN, GAP, PAD = 24, 24, 12
ROW_WIDTH, MAX_ROW_WIDTH = 900, 1600  # the workers' row: at least, and at most
MASTER_WIDTH_MIN = 260
BOX_HEIGHT = PAD * 2 + LINE * 6  # a name and five lines; a sixth for the problem count when any
BAND = 130  # from the master's bottom to the workers' top: the links and their labels

# Colours: a box's outline and fill, and the links by transport.
OK_COLOURS = {"master": ("#2e6b3a", "#eaf5ec"), "worker": ("#2f5d8a", "#eaf1f9")}
PROBLEM_COLOURS = {"fail": ("#c62828", "#fdecea"), "warn": ("#b26a00", "#fff4df")}
LINK_STYLES = {"direct": ("#2f5d8a", ""), "tunnel": ("#6a3d9a", "7 5")}
TRANSPORT_NAMES = {"direct": "direct", "tunnel": "SSH tunnel"}
TEXT, MUTED = "#1a1a1a", "#555555"


@dataclass
class Mark:
    """A problem on a host: "fail" or "warn", what is wrong, and the fix to try (may be empty)."""

    severity: str
    detail: str
    fix: str = ""


@dataclass
class Device:
    """One box: the plan's entry and what the picture adds to it."""

    planned: PlannedHost
    listens: str  # "address:port" it binds (workers: ggml-rpc-server; master: llama-server)
    share: float | None  # fraction of the model it holds; None when unknown
    ram_mb: float | None  # None when unknown
    marks: list[Mark] = field(default_factory=list)
    bandwidth_mbit: float | None = None  # master to this worker, once something measures it
    link_down: bool = False  # status: the master's tunnel to this worker is not running

    @property
    def severity(self) -> str | None:
        severities = {mark.severity for mark in self.marks}
        return "fail" if "fail" in severities else "warn" if severities else None


# --- from a plan or a status snapshot ------------------------------------------------------------


def from_plan(plan: Plan, bandwidth_mbit: Mapping[str, float] | None = None) -> str:
    """The plan's picture; its hints are warnings, on the host they name or below the picture."""
    names = {host.name for host in plan.hosts}
    marks: dict[str, list[Mark]] = {name: [] for name in names}
    notes = []
    for hint in plan.hints:
        name, _, rest = hint.partition(": ")
        if name in names:
            marks[name].append(Mark("warn", rest))
        else:
            notes.append(hint)
    api = plan.master.api_url.split("://", 1)[-1]
    devices = [
        Device(host, api if host.role == "master" else host_port(host.address, host.rpc_port),
               host.split, host.ram_mb, marks[host.name], (bandwidth_mbit or {}).get(host.name))
        for host in plan.hosts
    ]
    title = f"llamafleet plan: model {plan.model_size_mb:.0f} MB, -ts {plan.master.tensor_split}"
    return draw(devices, title, notes)


def from_status(targets: Sequence, statuses: Sequence, notes: Sequence[str] = (), title: str = "") -> str:
    """A `llamafleet status` snapshot: the plan's boxes (status_probe.Target) with each host's
    problems (status.HostStatus, same order)."""
    devices = []
    # The master's problems that are about one worker's tunnel colour that worker's link.
    down = {p.check.removeprefix("llama-tunnel-") for s in statuses for p in s.problems if p.check.startswith("llama-tunnel-")}
    for target, status in zip(targets, statuses):
        planned = target.planned
        share = (status.share or {}).get("fraction") if planned.role == "worker" else planned.split
        listens = host_port(*target.server) if planned.role == "master" else host_port(planned.address, planned.rpc_port)
        # The RAM read now, else the plan's: unless a host's facts were unread, when the plan
        # holds a stand-in for it (status_probe.targets_from).
        ram = (status.memory or {}).get("total_mb") or (planned.ram_mb if target.share_known else None)
        marks = [Mark(p.severity, f"{p.check}: {p.detail}", p.fix) for p in status.problems]
        devices.append(Device(planned, listens, share, ram, marks, link_down=planned.name in down))
    return draw(devices, title or "llamafleet status", list(notes))


def drawing_status(fetch: Callable[[], list], targets: Sequence, path: str | None,
                   notes: Sequence[str] = ()) -> Callable[[], list]:
    """`fetch` that also redraws the picture at `path` from every snapshot (so --watch keeps it
    fresh); `fetch` itself when there is no path. A picture that cannot be written is said on
    stderr and the status is still shown."""
    if not path:
        return fetch

    def fetch_and_draw() -> list:
        statuses = fetch()
        title = f"llamafleet status {time.strftime('%Y-%m-%d %H:%M:%S')}"
        try:
            Path(path).write_text(from_status(targets, statuses, notes, title), encoding="utf-8")
        except OSError as error:
            print(f"cluster: svg: {error}", file=sys.stderr)
        return statuses
    return fetch_and_draw


# --- drawing -----------------------------------------------------------------------------------


def text_width(text: str, size: float = FONT_SIZE) -> float:
    return len(text) * CHAR_WIDTH * size


def box_lines(device: Device) -> list[str]:
    """The box's text, after its bold title (the host name)."""
    host = device.planned
    if host.role == "master":
        share = f"holds {device.share:.1%} of the model" if device.share else "no layers: serves the API"
    elif device.share is None:
        share = "share unknown"
    else:
        share = f"share {device.share:.1%} ({host.share_mb:.0f} MB)"
    problems = len(device.marks)
    lines = [
        f"{host.role}, rank {host.rank}",
        f"{host.platform}, {host.arch or 'arch unknown'}",
        f"RAM {'unknown' if device.ram_mb is None else f'{device.ram_mb:.0f} MB'}, "
        f"{host.threads} thread{'s' * (host.threads != 1)}",
        f"{'API' if host.role == 'master' else 'RPC'} on {device.listens}",
        share,
    ]
    return lines + [f"{problems} problem{'s' * (problems != 1)}, see below"] if problems else lines


def widths(devices: Sequence[Device]) -> list[float]:
    """Each box's width: proportional to its share, and wide enough for its text.

    The scale is the smallest that fits every box's text, at least ROW_WIDTH for the whole model.
    A share too small to fit at MAX_ROW_WIDTH gets the width its text needs instead (the only
    case where widths are not proportional); a device without a share (the master that serves
    only, or an unknown share) gets its text's width.
    """
    needed = [max(text_width(line) for line in [*box_lines(d), d.planned.name]) + 2 * PAD for d in devices]
    shared = [(d.share, need) for d, need in zip(devices, needed) if d.share]
    scale = max([ROW_WIDTH, *(need / share for share, need in shared)])
    scale = min(scale, MAX_ROW_WIDTH)
    return [max(need, (d.share or 0) * scale) if d.share else need for d, need in zip(devices, needed)]


def _text(parent: ET.Element, x: float, y: float, content: str, size: int = FONT_SIZE, colour: str = TEXT,
          anchor: str = "start", bold: bool = False) -> ET.Element:
    element = ET.SubElement(parent, "text", x=f"{x:.1f}", y=f"{y:.1f}", fill=colour, **{
        "font-size": str(size), "text-anchor": anchor})
    if bold:
        element.set("font-weight", "bold")
    element.text = content
    return element


def _box(parent: ET.Element, device: Device, x: float, y: float, width: float, height: float) -> None:
    host = device.planned
    stroke, fill = PROBLEM_COLOURS[device.severity] if device.severity else OK_COLOURS[host.role]
    group = ET.SubElement(parent, "g", id=f"host-{host.name}", **{
        "class": f"host {host.role}", "data-host": host.name, "data-share": "" if device.share is None else f"{device.share:g}"})
    ET.SubElement(group, "rect", x=f"{x:.1f}", y=f"{y:.1f}", width=f"{width:.1f}", height=f"{height:.0f}",
                  rx="8", fill=fill, stroke=stroke, **{"stroke-width": "3" if device.severity else "2"})
    _text(group, x + PAD, y + PAD + 15, host.name, 16, stroke, bold=True)
    for i, line in enumerate(box_lines(device)):
        is_problem_line = device.marks and i == 5
        _text(group, x + PAD, y + PAD + 15 + LINE * (i + 1), line, colour=stroke if is_problem_line else TEXT,
              bold=bool(is_problem_line))


def _link(parent: ET.Element, device: Device, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A path from the master down to a worker; its last part is vertical and carries the label,
    so no label sits on another worker's link."""
    transport = device.planned.transport or "direct"
    colour, dash = LINK_STYLES.get(transport, LINK_STYLES["direct"])
    if device.link_down:
        colour = PROBLEM_COLOURS["fail"][0]
    (sx, sy), (ex, ey) = start, end
    bend = sy + 40
    group = ET.SubElement(parent, "g", id=f"link-{device.planned.name}", **{
        "class": "link", "data-worker": device.planned.name, "data-transport": transport})
    path = ET.SubElement(group, "path", d=f"M {sx:.1f} {sy:.1f} L {ex:.1f} {bend:.1f} L {ex:.1f} {ey:.1f}",
                         fill="none", stroke=colour, **{"stroke-width": "2.5"})
    if dash:
        path.set("stroke-dasharray", dash)
    bandwidth = (f"{device.bandwidth_mbit:.0f} Mbit/s measured" if device.bandwidth_mbit is not None
                 else "bandwidth not measured")
    lines = [TRANSPORT_NAMES.get(transport, transport) + (" DOWN" if device.link_down else ""), bandwidth]
    label_width = max(text_width(line, 12) for line in lines) + 12
    top = bend + 12
    ET.SubElement(group, "rect", x=f"{ex - label_width / 2:.1f}", y=f"{top:.1f}", width=f"{label_width:.1f}",
                  height="40", rx="4", fill="#ffffff", stroke=colour, **{"stroke-width": "1"})
    _text(group, ex, top + 16, lines[0], 12, colour, "middle", bold=True)
    _text(group, ex, top + 33, lines[1], 12, MUTED, "middle")


def _problem_lines(devices: Sequence[Device], notes: Sequence[str], columns: int) -> list[tuple[int, str, str, bool]]:
    """(indent, text, colour, bold) per line of the list below the picture, wrapped to `columns`."""
    lines = []

    def add(text: str, colour: str, bold: bool, indent: int) -> None:
        for i, part in enumerate(textwrap.wrap(text, columns - indent - 4, break_on_hyphens=False)):
            lines.append((indent + 4 * bool(i), part, colour, bold))

    for device in devices:
        for mark in device.marks:
            add(f"{mark.severity.upper()} {device.planned.name} {mark.detail}", PROBLEM_COLOURS[mark.severity][0], True, 0)
            if mark.fix:
                add(f"fix: {mark.fix}", MUTED, False, 5)
    for note in notes:
        add(f"WARN cluster: {note}", PROBLEM_COLOURS["warn"][0], False, 0)
    return lines


LEGEND = [("direct", "direct link"), ("tunnel", "SSH tunnel"), ("warn", "warning"), ("fail", "problem")]
LEGEND_NOTE = "box width: share of the model"
LEGEND_KEY, LEGEND_GAP = 38, 24  # the key's room before its name; between entries


def _legend_width() -> float:
    return sum(LEGEND_KEY + text_width(name, 12) + LEGEND_GAP for _, name in LEGEND) + text_width(LEGEND_NOTE, 12)


def _legend(svg: ET.Element, x: float, y: float) -> None:
    """What the line styles and problem colours mean, on one line starting at (x, y)."""
    for key, name in LEGEND:
        if key in LINK_STYLES:
            colour, dash = LINK_STYLES[key]
            line = ET.SubElement(svg, "line", x1=f"{x}", y1=f"{y - 4}", x2=f"{x + 30}", y2=f"{y - 4}",
                                 stroke=colour, **{"stroke-width": "2.5"})
            if dash:
                line.set("stroke-dasharray", dash)
        else:
            stroke, fill = PROBLEM_COLOURS[key]
            ET.SubElement(svg, "rect", x=f"{x + 8}", y=f"{y - 12}", width="14", height="14", rx="3",
                          fill=fill, stroke=stroke, **{"stroke-width": "2"})
        _text(svg, x + LEGEND_KEY, y, name, 12, MUTED)
        x += LEGEND_KEY + text_width(name, 12) + LEGEND_GAP
    _text(svg, x, y, LEGEND_NOTE, 12, MUTED)


def draw(devices: Sequence[Device], title: str, notes: Sequence[str] = ()) -> str:
    """The SVG document: the master (first device with role master) on top, the workers below."""
    master = next(d for d in devices if d.planned.role == "master")
    workers = [d for d in devices if d is not master]
    sizes = dict(zip((d.planned.name for d in devices), widths(devices)))
    sizes[master.planned.name] = max(sizes[master.planned.name], MASTER_WIDTH_MIN)
    row = sum(sizes[w.planned.name] for w in workers) + GAP * (len(workers) - 1)
    inner = max(row, sizes[master.planned.name], text_width(title, 16), _legend_width())
    width = inner + 2 * MARGIN
    columns = int(inner / text_width(' ', 12))
    below = _problem_lines(devices, notes, columns)
    box_height = BOX_HEIGHT + LINE * any(d.marks for d in devices)
    master_top = MARGIN + 40
    workers_top = master_top + box_height + BAND
    legend_top = workers_top + box_height + 36
    height = legend_top + 16 + (LINE * (len(below) + 1) if below else 0) + MARGIN

    svg = ET.Element("svg", xmlns=SVG_NS, width=f"{width:.0f}", height=f"{height:.0f}",
                     viewBox=f"0 0 {width:.0f} {height:.0f}", **{"font-family": FONT})
    ET.SubElement(svg, "rect", width="100%", height="100%", fill="#ffffff")
    _text(svg, MARGIN, MARGIN + 16, title, 16, bold=True)

    master_width = sizes[master.planned.name]
    master_x = MARGIN + (inner - master_width) / 2
    _box(svg, master, master_x, master_top, master_width, box_height)
    x = MARGIN + (inner - row) / 2
    for i, worker in enumerate(workers):
        start_x = master_x + master_width * (i + 1) / (len(workers) + 1)
        worker_width = sizes[worker.planned.name]
        _link(svg, worker, (start_x, master_top + box_height), (x + worker_width / 2, workers_top))
        _box(svg, worker, x, workers_top, worker_width, box_height)
        x += worker_width + GAP

    _legend(svg, MARGIN, legend_top)
    for i, (indent, line, colour, bold) in enumerate(below):
        _text(svg, MARGIN + indent * text_width(" ", 12), legend_top + LINE * (i + 2), line, 12, colour, bold=bold)
    ET.indent(svg)  # one element a line: a picture kept in git diffs readably
    return ET.tostring(svg, encoding="unicode", xml_declaration=True) + "\n"
