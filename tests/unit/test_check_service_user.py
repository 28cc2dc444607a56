"""`llamafleet check` on who the services run as: `service_user` must be a Linux user name, root
only with service_user_allow_root (and a warning), never chosen for a phone, and no port below
1024 for a service an unprivileged user runs."""

from __future__ import annotations

import pytest

from llamafleet.inventory_data import InventoryHost
from llamafleet.validate_cli import warnings

from check_hosts import MASTER, check, linux, phone

NOT_A_USER = ("is not a Linux user name (lower-case letters, digits, _ and -, starting with a letter or _, "
              "at most 31 characters)")


@pytest.mark.parametrize("name", ["Llamafleet", "1000", "-llm", "llm user", "llm$", "llm;reboot", "a" * 32, ""])
def test_a_service_user_no_linux_tool_takes_is_refused(name):
    assert check(MASTER, linux("board", "198.18.0.31", service_user=name)) == [
        f"board: service_user: {name!r} {NOT_A_USER}"]


@pytest.mark.parametrize("name", ["llamafleet", "_llm", "llm-rpc2", "a" * 31])
def test_a_plain_user_name_is_accepted(name):
    assert check(MASTER, linux("board", "198.18.0.31", service_user=name)) == []


def test_root_needs_the_explicit_opt_in():
    refused = check(MASTER, linux("board", "198.18.0.31", service_user="root"))
    assert len(refused) == 1 and refused[0].startswith("board: service_user: 'root': llama.cpp's RPC has no authentication")
    assert "service_user_allow_root = True" in refused[0]
    assert check(MASTER, linux("board", "198.18.0.31", service_user="root", service_user_allow_root=True)) == []


def test_root_with_the_opt_in_is_warned_about_and_the_default_is_not():
    board = linux("board", "198.18.0.31", service_user="root", service_user_allow_root=True)
    found = warnings([MASTER, board, phone("phone1", "198.18.0.21")])
    assert len(found) == 1 and found[0].startswith("board: service_user: llamafleet's services run as root")
    assert warnings([MASTER, linux("board", "198.18.0.31")]) == []


def test_a_phone_cannot_be_given_a_service_user():
    assert check(MASTER, phone("phone1", "198.18.0.21", service_user="llm")) == [
        "phone1: service_user: 'llm': Termux runs every process as the app's own user, the only user an app "
        "has: remove service_user for this phone"]
    # The default, and a cluster-wide value from group_data/all.py, are meant for the Linux hosts.
    assert check(MASTER, phone("phone1", "198.18.0.21")) == []
    cluster_wide = phone("phone1", "198.18.0.21", service_user="llm")
    cluster_wide = InventoryHost(cluster_wide.name, cluster_wide.groups, cluster_wide.data, {"service_user": "all"})
    assert check(MASTER, cluster_wide) == []
    # Nor does root on a phone mean anything: no opt-in asked of it.
    assert check(MASTER, InventoryHost("phone2", ("termux",), {**phone("phone2", "198.18.0.22").data,
                                                               "service_user": "root"}, {"service_user": "all"})) == []


def test_no_port_below_1024_for_an_unprivileged_service():
    box = linux("box", "198.18.0.10", llama_role="master", llama_server_port=80)
    assert check(box, linux("board", "198.18.0.31")) == [
        "box: llama_server_port: port 80 is below 1024: llama-server runs as the unprivileged service_user "
        "'llamafleet', which cannot bind it; use a port from 1024 (a reverse proxy can serve 80 or 443)"]
    root_box = linux("box", "198.18.0.10", llama_role="master", llama_server_port=80, service_user="root",
                     service_user_allow_root=True)
    assert check(root_box, linux("board", "198.18.0.31")) == []
    assert check(MASTER, linux("board", "198.18.0.31", rpc_port=600, service_user="llm")) == [
        "board: rpc_port: port 600 is below 1024: rpc-server runs as the unprivileged service_user 'llm', which "
        "cannot bind it; use a port from 1024 (a reverse proxy can serve 80 or 443)"]


def test_a_tunnel_listens_as_the_masters_user():
    board = linux("board", "198.18.0.31", rpc_port=600, rpc_transport="tunnel", service_user="root",
                  service_user_allow_root=True)
    assert check(MASTER, board) == [
        "board: rpc_port: port 600 is below 1024: the tunnel to board on box runs as the unprivileged "
        "service_user 'llamafleet', which cannot bind it; use a port from 1024 (a reverse proxy can serve 80 or 443)"]


def test_a_phone_below_1024_still_reads_as_before():
    assert check(MASTER, phone("phone1", "198.18.0.21", rpc_port=80)) == [
        "phone1: rpc_port: port 80 is below 1024: Termux has no root to bind it"]
