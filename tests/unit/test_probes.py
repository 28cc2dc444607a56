"""The socket probes, run for real in a local shell against real sockets on this machine.

They must decide on a phone, where `ss`, `netstat` and `ip` are denied (Android 10+): a closed
local port is refused, a listener with a full backlog (an rpc-server busy with the master) still
counts as listening, a socket bound to 127.0.0.1 is refused on another local address, the
rpc-server's own command line carries the planned -H/-p, and a missing or denied `ss` never
passes for an established connection.
"""

from __future__ import annotations

import socket

import pytest

from llamafleet.serving.listening import (
    check_listening,
    master_connections,
    other_local_address,
    rpc_server_endpoint,
)
from llamafleet.serving.probes import (
    ACCEPTED,
    REFUSED,
    SS_UNUSABLE,
    TIMEOUT,
    connect_probe,
    established_to,
    process_argvs,
    rpc_hello_request,
    tcp_reachable,
)
from rpc_fakes import (
    FAKE_BINARY,
    FakeRpcServer,
    answer,
    fake_rpc_process,
    fill_backlog,
    free_port,
    lan_address,
    listener,
    path_with_fake_ss,
    path_without_ss,
    planned_worker,
    run_local,
    runner,
)

SHELLS = ["bash", "sh"]  # the login shell on the other end may be either


@pytest.fixture
def no_ss(tmp_path):
    return path_without_ss(tmp_path / "phone-bin")


@pytest.fixture
def lan():
    address = lan_address()
    if not address:
        pytest.skip("this machine has no non-loopback address")
    return address


# --- connect_probe ------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_a_listening_socket_is_accepted(shell):
    with listener() as sock:
        assert answer(connect_probe("127.0.0.1", sock.getsockname()[1]), shell) == ACCEPTED


@pytest.mark.parametrize("shell", SHELLS)
def test_a_closed_port_is_refused_at_once(shell):
    assert answer(connect_probe("127.0.0.1", free_port(), seconds=5), shell) == REFUSED


def test_a_full_backlog_times_out_which_counts_as_listening(no_ss):
    with listener() as sock:
        port = sock.getsockname()[1]
        clients = fill_backlog("127.0.0.1", port)
        assert answer(connect_probe("127.0.0.1", port, seconds=1), path=no_ss) == TIMEOUT
        for client in clients:
            client.close()


def test_a_socket_bound_to_loopback_is_refused_on_other_local_addresses():
    with listener("127.0.0.1") as sock:
        port = sock.getsockname()[1]
        assert answer(connect_probe("127.0.0.1", port)) == ACCEPTED
        assert answer(connect_probe("127.0.0.2", port)) == REFUSED
        address = lan_address()
        if address:
            assert answer(connect_probe(address, port)) == REFUSED


def test_a_wildcard_socket_is_accepted_on_other_local_addresses():
    with listener("0.0.0.0") as sock:
        assert answer(connect_probe("127.0.0.2", sock.getsockname()[1])) == ACCEPTED


def test_only_plain_addresses_reach_the_shell():
    with pytest.raises(ValueError):
        connect_probe("127.0.0.1/1; touch /tmp/x", 1)


# --- established_to and tcp_reachable -----------------------------------------------------------


def test_established_lists_this_host_connections_to_the_endpoint():
    with listener() as sock:
        port = sock.getsockname()[1]
        code, out = run_local(established_to("127.0.0.1", port))
        assert (code, out) == (0, "")
        with socket.create_connection(("127.0.0.1", port)) as client:
            mine = f"127.0.0.1:{client.getsockname()[1]}"
            code, out = run_local(established_to("127.0.0.1", port))
        assert code == 0
        lines = out.splitlines()
        # Only the client's side (peer = the endpoint), not the server's queued side.
        assert len(lines) == 1 and lines[0].split()[-2:] == [mine, f"127.0.0.1:{port}"]


DENIED_SS = {
    "missing": None,
    "netlink denied": "echo 'Cannot open netlink socket: Permission denied' >&2; exit 1",
    "silent, exit 0": "exit 0",
    "header only": "echo 'State Recv-Q Send-Q Local Address:Port Peer Address:Port Process'",
}


def _ss_path(tmp_path, behaviour: str) -> str:
    script = DENIED_SS[behaviour]
    return path_without_ss(tmp_path / "bin") if script is None else path_with_fake_ss(tmp_path / "bin", script)


@pytest.mark.parametrize("behaviour", ["missing", "netlink denied", "silent, exit 0"])
def test_an_unusable_ss_says_so_instead_of_no_connections(tmp_path, behaviour):
    with listener() as sock, socket.create_connection(sock.getsockname()):
        code, out = run_local(established_to(*sock.getsockname()), path=_ss_path(tmp_path, behaviour))
    assert (code, out) == (SS_UNUSABLE, "")


@pytest.mark.parametrize("behaviour", list(DENIED_SS))
def test_a_missing_or_denied_ss_never_makes_a_closed_port_reachable(tmp_path, behaviour):
    code, _ = run_local(tcp_reachable("127.0.0.1", free_port()), path=_ss_path(tmp_path, behaviour))
    assert code != 0


def test_a_connection_from_the_endpoint_is_not_one_to_it(tmp_path):
    port = free_port()
    server_side = f"echo '0 0 127.0.0.1:{port} 127.0.0.1:40000'"  # the worker's accepted socket
    path = path_with_fake_ss(tmp_path / "bin", server_side)
    assert run_local(established_to("127.0.0.1", port), path=path) == (0, "")
    assert run_local(tcp_reachable("127.0.0.1", port), path=path)[0] != 0


def test_reachable_listening_and_unreachable_closed(no_ss):
    with listener() as sock:
        port = sock.getsockname()[1]
        for path in (None, no_ss):
            assert run_local(tcp_reachable("127.0.0.1", port), path=path)[0] == 0
    assert run_local(tcp_reachable("127.0.0.1", free_port()))[0] != 0


def test_a_busy_loopback_endpoint_is_reachable_with_or_without_ss(no_ss):
    with listener() as sock:
        port = sock.getsockname()[1]
        clients = fill_backlog("127.0.0.1", port)
        assert run_local(established_to("127.0.0.1", port))[1].strip(), "ss should see the queued clients"
        assert run_local(tcp_reachable("127.0.0.1", port))[0] == 0  # the established connections
        assert run_local(tcp_reachable("127.0.0.1", port), path=no_ss)[0] == 0  # the timeout, on loopback
        for client in clients:
            client.close()


def test_off_loopback_a_timeout_is_not_reachable_without_ss(lan, no_ss):
    """Off loopback a timeout may be a firewall dropping SYNs: only ss's established counts."""
    with listener(lan) as sock:
        port = sock.getsockname()[1]
        clients = fill_backlog(lan, port)
        assert run_local(tcp_reachable(lan, port))[0] == 0
        assert run_local(tcp_reachable(lan, port), path=no_ss)[0] != 0
        for client in clients:
            client.close()


# --- process_argvs and the rpc-server's flags ---------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_the_rpc_server_command_line_is_read_from_proc(shell):
    port = free_port()
    with fake_rpc_process("127.0.0.1", port) as process:
        out = answer(process_argvs(FAKE_BINARY), shell)
    lines = [line.split("\t") for line in out.splitlines()]
    assert [line[0] for line in lines] == [str(process.pid)]  # not the probing shell nor grep
    assert lines[0][1] == f"/opt/fake/bin/{FAKE_BINARY}"
    assert rpc_server_endpoint(lines[0][1:]) == ("127.0.0.1", str(port))


def test_no_rpc_server_prints_nothing():
    assert run_local(process_argvs(FAKE_BINARY + "-absent")) == (0, "")


def test_rpc_server_flags_short_long_and_last_wins():
    assert rpc_server_endpoint(["x", "-H", "10.0.0.2", "--port", "50052", "-t", "4"]) == ("10.0.0.2", "50052")
    assert rpc_server_endpoint(["x", "--host", "a", "-p", "1", "-H", "b"]) == ("b", "1")
    assert rpc_server_endpoint(["x", "-t", "4"]) == (None, None)


# --- check_listening: the worker's own view, no ss ----------------------------------------------


def test_other_local_address_per_bind():
    assert other_local_address(planned_worker("127.0.0.1", 1, "192.168.1.20")) == "192.168.1.20"
    assert other_local_address(planned_worker("192.168.1.20", 1, "192.168.1.20", platform="linux")) == "127.0.0.1"
    assert other_local_address(planned_worker("127.0.0.1", 1, "127.0.0.1")) == "127.0.0.2"
    assert other_local_address(planned_worker("0.0.0.0", 1, "192.168.1.20")) is None


def test_a_tunnelled_phone_worker_listening_as_planned(no_ss):
    port = free_port()
    cluster = lan_address() or "127.0.0.2"
    with fake_rpc_process("127.0.0.1", port):
        found = check_listening(runner(no_ss), planned_worker("127.0.0.1", port, cluster), FAKE_BINARY, seconds=1)
    assert found.problems() == []
    assert (found.at_endpoint, found.elsewhere, found.at_elsewhere) == (ACCEPTED, f"{cluster}:{port}", REFUSED)


def test_a_busy_worker_still_listens(no_ss):
    port = free_port()
    with fake_rpc_process("127.0.0.1", port):
        clients = fill_backlog("127.0.0.1", port)
        found = check_listening(runner(no_ss), planned_worker("127.0.0.1", port, "127.0.0.2"), FAKE_BINARY, seconds=1)
        for client in clients:
            client.close()
    assert found.at_endpoint == TIMEOUT and found.listening and found.problems() == []


def test_a_worker_bound_everywhere_is_caught_although_its_flags_look_right(no_ss):
    port = free_port()
    with fake_rpc_process("127.0.0.1", port, bind="0.0.0.0"):
        found = check_listening(runner(no_ss), planned_worker("127.0.0.1", port, "127.0.0.2"), FAKE_BINARY, seconds=1)
    assert found.process_matches and found.listening
    assert found.exposed and found.at_elsewhere == ACCEPTED
    assert found.problems() == [f"127.0.0.2:{port} is not refused (accepted): listening beyond 127.0.0.1:{port}"]


def test_nothing_running(no_ss):
    port = free_port()
    found = check_listening(runner(no_ss), planned_worker("127.0.0.1", port, "127.0.0.2"), FAKE_BINARY, seconds=1)
    assert not found.listening and found.at_endpoint == REFUSED and not found.processes
    assert len(found.problems()) == 2


def test_a_process_started_with_other_flags_is_not_the_planned_one(no_ss):
    port = free_port()
    with fake_rpc_process("127.0.0.1", port + 1, bind="127.0.0.1", bind_port=port):
        found = check_listening(runner(no_ss), planned_worker("127.0.0.1", port, "127.0.0.2"), FAKE_BINARY, seconds=1)
    assert found.listening and not found.exposed and not found.process_matches
    assert found.problems() == [
        f"no rpc-server started with -H 127.0.0.1 -p {port} "
        f"(/opt/fake/bin/{FAKE_BINARY} -c {found.processes[0][2]} -H 127.0.0.1 -p {port + 1} -t 2)"
    ]


def test_a_linux_worker_bound_to_its_address_refuses_loopback(lan):
    port = free_port()
    with fake_rpc_process(lan, port):
        found = check_listening(runner(), planned_worker(lan, port, lan, platform="linux"), FAKE_BINARY, seconds=1)
    assert found.problems() == []
    assert (found.elsewhere, found.at_elsewhere) == (f"127.0.0.1:{port}", REFUSED)


# --- master_connections: read on the master -----------------------------------------------------


def test_master_connection_seen_by_ss_on_the_master():
    with listener() as sock:
        worker = planned_worker("127.0.0.1", sock.getsockname()[1], "127.0.0.2")
        assert not master_connections(runner(), worker, seconds=1)
        with socket.create_connection(sock.getsockname()):
            found = master_connections(runner(), worker, seconds=1)
    assert found and found.method == "ss on the master" and len(found.evidence) == 1


def test_master_without_ss_reads_a_busy_worker_from_its_silence(no_ss):
    server = FakeRpcServer()
    worker = planned_worker("127.0.0.1", server.port, "127.0.0.2")
    try:
        idle = master_connections(runner(no_ss), worker, seconds=1)
        assert not idle and idle.method.endswith(": answered")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as master:
            master.sendall(rpc_hello_request())
            assert master.recv(8)  # the master is served; the worker is now busy
            busy = master_connections(runner(no_ss), worker, seconds=1)
        assert busy and busy.method.endswith(": silent")
    finally:
        server.close()


def test_master_without_ss_and_no_worker(no_ss):
    found = master_connections(runner(no_ss), planned_worker("127.0.0.1", free_port(), "127.0.0.2"), seconds=1)
    assert not found and found.method.endswith(": unreachable")
