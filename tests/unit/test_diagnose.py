"""diagnose's rows from real sockets: a HELLO against a fake RPC server, the bind address from
the worker's own probes (no ss, as on a phone), and heat that cannot be read."""

from __future__ import annotations

import socket

import pytest

from llamafleet.diagnose import bind_row, hello_row, temperature_row
from llamafleet.serving.listening import check_listening
from llamafleet.serving.probes import rpc_hello_probe, rpc_hello_request
from rpc_fakes import (
    FAKE_BINARY,
    FakeRpcServer,
    answer,
    fake_rpc_process,
    free_port,
    path_without_ss,
    planned_worker,
    runner,
)


@pytest.fixture
def server(request):
    fake = FakeRpcServer(request.param)
    yield fake
    fake.close()


def _hello_row(fake: FakeRpcServer):
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        return hello_row("phone1", sock)


@pytest.mark.parametrize("server", [(7, 1, 2)], indirect=True)
def test_matching_major_version_is_ok(server):
    row = _hello_row(server)
    assert (row.status, row.detail, row.fix) == ("ok", "v7.1.2 (llamafleet expects v7.x)", "")
    assert server.requests == [rpc_hello_request()]
    assert rpc_hello_request()[:9] == bytes([14, 24, 0, 0, 0, 0, 0, 0, 0]) and len(rpc_hello_request()) == 33


@pytest.mark.parametrize("server", [(6, 9, 0), (8, 0, 0)], indirect=True)
def test_another_major_version_fails(server):
    row = _hello_row(server)
    assert row.status == "fail" and row.detail.startswith(f"v{server.version[0]}.")
    assert "llama_cpp_ref" in row.fix


@pytest.mark.parametrize("server", [None], indirect=True)
def test_a_server_that_hangs_up_fails(server):
    row = _hello_row(server)
    assert row.status == "fail" and row.detail.startswith("no HELLO answer")


@pytest.mark.parametrize("server", [(7, 0, 0)], indirect=True)
def test_the_shell_hello_probe_hears_an_idle_server(server):
    assert answer(rpc_hello_probe("127.0.0.1", server.port, seconds=2)) == "answered"
    assert server.requests == [rpc_hello_request()]  # the shell sends the same bytes


@pytest.mark.parametrize("server", [None], indirect=True)
def test_the_shell_hello_probe_hears_a_hang_up(server):
    assert answer(rpc_hello_probe("127.0.0.1", server.port, seconds=2)) == "closed"


def test_bind_row_from_the_worker_probes(tmp_path):
    phone = runner(path_without_ss(tmp_path / "bin"))
    port = free_port()
    planned = planned_worker("127.0.0.1", port, "127.0.0.2")

    def row():
        return bind_row("phone1", check_listening(phone, planned, FAKE_BINARY, seconds=1))

    with fake_rpc_process("127.0.0.1", port):
        ok = row()
    with fake_rpc_process("127.0.0.1", port, bind="0.0.0.0"):
        everywhere = row()
    with fake_rpc_process("127.0.0.1", port + 1, bind_port=port):
        other_flags = row()
    nothing = row()

    assert ok.status == "ok" and f"127.0.0.1:{port} accepted" in ok.detail and f"127.0.0.2:{port} refused" in ok.detail
    assert everywhere.status == "warn" and "open to the whole network" in everywhere.detail
    assert other_flags.status == "fail" and f"-p {port}" in other_flags.detail
    assert nothing.status == "fail" and nothing.detail == f"nothing listens on 127.0.0.1:{port} (refused)"


def test_unreadable_heat_is_unknown_not_ok():
    row = temperature_row("phone1", "")
    assert row.status == "warn" and row.detail.startswith("unknown")


def test_heat_from_thermal_zones():
    warm = temperature_row("phone1", "41000\n53000\n")
    assert (warm.status, warm.detail) == ("ok", "53 °C")
    hot = temperature_row("phone1", "45000 75000")
    assert hot.status == "warn" and hot.detail == "75 °C" and "rpc_threads" in hot.fix
