"""The cluster picture (llamafleet.picture): `plan --svg` and `status --svg` draw one box per host,
as wide as its share of the model, a link per worker with its transport, problems in colour; and
rsvg-convert (installed by scripts/setup) renders it to a PNG that is not blank."""

from __future__ import annotations

import argparse
import io
import json
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path

import pytest
from test_status import LINUX2_OK, fake_runner, healthy_outputs, host_inputs, output

from llamafleet import picture, status, validate_cli
from llamafleet.gather import Gathered, hosts_with_recorded_facts
from llamafleet.plan import make_plan

INVENTORIES = Path(__file__).resolve().parents[1] / "data" / "inventories"
NS = {"svg": picture.SVG_NS}
FAIL, WARN = picture.PROBLEM_COLOURS["fail"][0], picture.PROBLEM_COLOURS["warn"][0]


def planned(inventory: str = "good", model_mb: float | None = None, **ram_mb):
    facts = json.loads((INVENTORIES / f"{inventory}.facts.json").read_text())
    for name, total in ram_mb.items():
        facts[name]["MemInfo"]["total_mb"] = total
    hosts = hosts_with_recorded_facts(INVENTORIES / f"{inventory}.py", facts).hosts
    master = next(h for h in hosts if h.data.get("llama_role") == "master")
    return make_plan(hosts, model_mb or master.data["model_size_mb"])


def boxes(svg: str) -> dict[str, ET.Element]:
    """Each host's rectangle, by host name."""
    root = ET.fromstring(svg)
    return {group.get("data-host"): group.find("svg:rect", NS)
            for group in root.iter(f"{{{picture.SVG_NS}}}g") if "host" in group.get("class", "").split()}


def links(svg: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)
    return {group.get("data-worker"): group for group in root.iter(f"{{{picture.SVG_NS}}}g")
            if group.get("class") == "link"}


def texts(element: ET.Element) -> list[str]:
    return [node.text for node in element.iter(f"{{{picture.SVG_NS}}}text")]


def test_one_box_per_host_as_wide_as_its_share():
    plan = planned()  # good.py: the split 0.207, 0.46, 0.333
    rects = boxes(picture.from_plan(plan))
    assert list(rects) == ["box", "board", "phone1", "phone2"]
    shares = {host.name: host.split for host in plan.workers()}
    per_share = {name: float(rects[name].get("width")) / share for name, share in shares.items()}
    assert max(per_share.values()) == pytest.approx(min(per_share.values()), rel=0.01)
    assert float(rects["phone1"].get("width")) > 2 * float(rects["board"].get("width"))
    # The master holds no layers: it is as wide as its text, and says so.
    assert float(rects["box"].get("width")) >= picture.MASTER_WIDTH_MIN


def test_each_box_names_host_role_platform_ram_threads_and_address():
    svg = picture.from_plan(planned())
    group = ET.fromstring(svg).find(".//svg:g[@id='host-phone2']", NS)
    assert texts(group) == ["phone2", "worker, rank 3", "termux, aarch64", "RAM 6000 MB, 4 threads",
                            "RPC on 127.0.0.1:50054", "share 33.3% (400 MB)"]
    master = ET.fromstring(svg).find(".//svg:g[@id='host-box']", NS)
    assert "API on 198.18.0.10:8080" in texts(master) and "no layers: serves the API" in texts(master)


def test_a_link_per_worker_with_its_transport_and_bandwidth_when_known():
    svg = picture.from_plan(planned(), bandwidth_mbit={"board": 312.4})
    found = links(svg)
    assert {name: link.get("data-transport") for name, link in found.items()} == {
        "board": "direct", "phone1": "tunnel", "phone2": "tunnel"}
    assert texts(found["board"]) == ["direct", "312 Mbit/s measured"]
    assert texts(found["phone1"]) == ["SSH tunnel", "bandwidth not measured"]
    assert found["phone1"].find("svg:path", NS).get("stroke-dasharray")  # a tunnel is dashed
    assert found["board"].find("svg:path", NS).get("stroke-dasharray") is None


def test_plan_warnings_colour_the_host_they_name_and_the_rest_are_listed():
    plan = planned(model_mb=9000, board=2000)  # every worker nearly full: "tight"
    svg = picture.from_plan(plan)
    rects = boxes(svg)
    assert {name: rect.get("stroke") for name, rect in rects.items()} == {
        "box": picture.OK_COLOURS["master"][0], "board": WARN, "phone1": WARN, "phone2": WARN}
    lines = texts(ET.fromstring(svg))
    assert any(line.startswith("WARN board tight: 837 of 900 MB usable RAM") for line in lines)
    assert any(line.startswith("WARN cluster: 3 RPC workers") for line in lines)


def status_command(tmp_path: Path, outputs: dict, gathered: Gathered | None = None) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    status.register(parser.add_subparsers())
    path = tmp_path / "status.svg"
    args = parser.parse_args(["status", "inventory/mine.py", "--svg", str(path)])
    out = io.StringIO()
    out.isatty = lambda: False
    code = status.run_status(args, runner=fake_runner(outputs), gather=lambda _: gathered or Gathered(host_inputs()), out=out)
    return code, out.getvalue(), path.read_text()


def test_status_problems_in_colour_with_their_fix(tmp_path):
    outputs = healthy_outputs()
    outputs["phone1"] = ConnectionRefusedError(111, "Connection refused")
    outputs["linux2"] = output(**{**LINUX2_OK, "meminfo": "MemTotal: 4000000 kB\nMemAvailable: 100000 kB\n"})
    code, table, svg = status_command(tmp_path, outputs)
    assert code == 1 and "FAIL phone1 ssh: unreachable" in table  # the table is still printed
    rects = boxes(svg)
    assert (rects["phone1"].get("stroke"), rects["linux2"].get("stroke")) == (FAIL, WARN)
    assert rects["linux1"].get("stroke") == picture.OK_COLOURS["master"][0]
    lines = texts(ET.fromstring(svg))
    assert "FAIL phone1 ssh: unreachable: ConnectionRefusedError: [Errno 111] Connection refused" in lines
    assert any(line.startswith("fix: is the device on and sshd running?") for line in lines)
    assert "1 problem, see below" in texts(ET.fromstring(svg).find(".//svg:g[@id='host-phone1']", NS))


def test_a_healthy_status_has_no_problem_colour(tmp_path):
    code, _, svg = status_command(tmp_path, healthy_outputs())
    assert code == 0
    assert not {FAIL, WARN} & {rect.get("stroke") for rect in boxes(svg).values()}
    assert set(links(svg)) == {"linux2", "phone1"}


def test_a_host_whose_facts_are_unread_has_its_ram_and_every_share_unknown(tmp_path):
    hosts = [replace(h, facts={}) if h.name == "phone1" else h for h in host_inputs()]
    outputs = {**healthy_outputs(), "phone1": ConnectionRefusedError(111, "Connection refused")}
    _, _, svg = status_command(tmp_path, outputs, Gathered(hosts, {"phone1": "cannot connect: refused"}))
    root = ET.fromstring(svg)
    phone, worker = (texts(root.find(f".//svg:g[@id='host-{name}']", NS)) for name in ("phone1", "linux2"))
    assert "share unknown" in phone and "share unknown" in worker
    assert any(line.startswith("RAM unknown") for line in phone)
    assert any(line.startswith("RAM 3829 MB") for line in worker)
    assert any("cannot connect: refused" in line for line in texts(root))  # the status note


def run_plan(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="llamafleet")
    validate_cli.register(parser.add_subparsers())
    args = parser.parse_args(["plan", str(INVENTORIES / "lab_like.py"),
                              "--facts", str(INVENTORIES / "lab_like.facts.json"), *argv])
    out = io.StringIO()
    with redirect_stdout(out):
        code = args.func(args)
    return code, out.getvalue()


def test_plan_svg_writes_the_picture_and_prints_the_same_table(tmp_path):
    path = tmp_path / "cluster.svg"
    assert run_plan("--svg", str(path)) == run_plan()
    rects = boxes(path.read_text())
    assert list(rects) == ["linux1", "phone1", "phone2", "linux2"]
    assert {name: link.get("data-transport") for name, link in links(path.read_text()).items()} == {
        "linux2": "direct", "phone1": "tunnel", "phone2": "tunnel"}


def test_plan_svg_into_a_missing_directory_exits_2(tmp_path, capsys):
    code, _ = run_plan("--svg", str(tmp_path / "missing" / "cluster.svg"))
    assert code == 2 and "cluster: svg: " in capsys.readouterr().err


# --- rendering ---------------------------------------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and unfiltered rows of an 8-bit RGB or RGBA PNG (what rsvg-convert writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, header = 8, [], None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, colour_type, *_ = header
    assert depth == 8 and colour_type in (2, 6)
    step = 3 if colour_type == 2 else 4
    raw, stride, rows, previous = zlib.decompress(b"".join(chunks)), width * step, [], bytearray(width * step)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left, up = line[i - step] if i >= step else 0, previous[i]
            upper_left = previous[i - step] if i >= step else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - upper_left
                near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - upper_left), 2, upper_left))
                line[i] = (line[i] + near[2]) & 0xFF
        rows.append([bytes(line[j:j + 3]) for j in range(0, stride, step)])
        previous = line
    return width, height, rows


def test_rsvg_renders_the_picture_to_a_png_of_its_size_that_is_not_blank(tmp_path):
    svg = picture.from_plan(planned("lab_like"))
    root = ET.fromstring(svg)
    (tmp_path / "cluster.svg").write_text(svg)
    subprocess.run(["rsvg-convert", str(tmp_path / "cluster.svg"), "-o", str(tmp_path / "cluster.png")], check=True)
    width, height, rows = png_pixels((tmp_path / "cluster.png").read_bytes())
    assert (width, height) == (int(root.get("width")), int(root.get("height")))
    pixels = [pixel for row in rows for pixel in row]
    white = pixels.count(b"\xff\xff\xff")
    assert 0.5 < white / len(pixels) < 0.98  # a white page with the drawing on it
    colours = set(pixels)
    ok_fill = bytes.fromhex(picture.OK_COLOURS["worker"][1][1:])
    assert ok_fill in colours and len(colours) > 20  # the boxes' fill, and anti-aliased text


def test_problem_text_is_escaped_not_markup():
    plan = planned()
    devices = [picture.Device(host, "x", host.split, host.ram_mb, [picture.Mark("fail", 'bound: "<[::]:50052>" & more')])
               for host in plan.hosts]
    svg = picture.draw(devices, "a <title> & more")
    lines = texts(ET.fromstring(svg))
    assert lines[0] == "a <title> & more" and 'FAIL box bound: "<[::]:50052>" & more' in lines


def test_the_readme_picture_is_what_the_lab_plan_draws_now():
    # README shows docs/cluster.png, rendered from docs/cluster.svg: regenerate both (README says
    # how) when the drawing or the lab-like plan changes.
    docs = Path(__file__).resolve().parents[2] / "docs" / "cluster.svg"
    assert docs.read_text() == picture.from_plan(planned("lab_like"))


def test_a_dead_tunnel_turns_its_link_red():
    from types import SimpleNamespace

    plan = planned()
    targets = [SimpleNamespace(planned=host, server=("198.18.0.10", 8080), share_known=True) for host in plan.hosts]
    problem = SimpleNamespace(check="llama-tunnel-phone1", detail="llama-tunnel-phone1 is down", fix="sv up", severity="fail")
    statuses = [SimpleNamespace(problems=[problem] if host.role == "master" else [], share=None, memory=None)
                for host in plan.hosts]
    found = links(picture.from_status(targets, statuses))
    assert found["phone1"].find("svg:path", NS).get("stroke") == FAIL
    assert texts(found["phone1"])[0] == "SSH tunnel DOWN"
    assert found["phone2"].find("svg:path", NS).get("stroke") != FAIL  # the other tunnel is up
