"""The validation rules and the offline inventory loader, case by case."""

from __future__ import annotations

import hashlib
import socket
import textwrap
from pathlib import Path

import pytest

from llamafleet.inventory_data import (
    REPO_GROUP_DATA,
    InventoryError,
    load_inventory,
    load_inventory_full,
    read_defaults,
)
from llamafleet.settings import SETTINGS
from llamafleet.validate import (
    Problem,
    Schema,
    is_ip_or_hostname,
    validate_inventory,
)

GOOD_HOSTS = """
linux = [
    ("box", {"ssh_hostname": "198.18.0.10", "llama_role": "master"}),
    ("board", {"ssh_hostname": "198.18.0.31"%(board)s}),
]
termux = (
    [("phone1", {"ssh_hostname": "198.18.0.21"%(phone)s})],
    {"ssh_port": 8022, "_temp_dir": "/data/data/com.termux/files/usr/tmp"},
)
"""
CLUSTER_DATA = 'llama_cpp_ref = "b6500"\nmodel_url = "https://example.invalid/m.gguf"\n' \
               'model_sha256 = "%s"\nmodel_size_mb = 900\n' % hashlib.sha256(b"m.gguf").hexdigest()


def write_inventory(tmp_path: Path, board: str = "", phone: str = "", extra: str = "") -> Path:
    """An inventory in tmp_path with cluster-wide settings in its own group_data/all.py."""
    (tmp_path / "group_data").mkdir(exist_ok=True)
    (tmp_path / "group_data" / "all.py").write_text(CLUSTER_DATA)
    path = tmp_path / "inv.py"
    path.write_text(GOOD_HOSTS % {"board": board, "phone": phone} + extra)
    return path


def lines(problems: list[Problem]) -> list[str]:
    return [str(problem) for problem in problems]


# --- the key table ---------------------------------------------------------------------------------


def test_every_key_has_a_kind_and_all_py_documents_each_llamafleet_key():
    # A key without a kind would go unchecked; all.py is what pyinfra loads as the defaults.
    schema = Schema.load()
    assert all(schema.kinds[setting.name] is setting.kind for setting in SETTINGS)
    documented = {setting.name: setting.default for setting in SETTINGS if setting.in_all_py}
    assert read_defaults() == documented


def test_known_keys_are_the_declared_settings_and_pyinfras():
    kinds = Schema.load().kinds
    assert kinds["rpc_port_base"].accepts(4) and not kinds["rpc_port_base"].accepts("4")
    assert "ssh_port" in kinds and "_sudo" in kinds
    assert "new_key" not in kinds and "os" not in kinds


def test_int_keys_refuse_bool_and_float_keys_take_int(tmp_path):
    path = write_inventory(tmp_path, board=', "rpc_port": True', phone=', "rpc_ram_fraction": 1')
    problems = lines(validate_inventory(path))
    assert "board: rpc_port: must be an integer, not bool True" in problems
    # 1 is a number (accepted as a float) but out of (0, 0.95].
    assert "phone1: rpc_ram_fraction: 1 is out of range: must be in (0, 0.95]" in problems


def test_pyinfra_global_argument_typo_is_unknown(tmp_path):
    path = write_inventory(tmp_path, board=', "_sudoo": True, "_sudo": True')
    assert lines(validate_inventory(path)) == ["board: _sudoo: unknown key; did you mean '_sudo'?"]


def test_connector_keys_are_typed_from_pyinfra(tmp_path):
    path = write_inventory(tmp_path, board=', "ssh_port": "22"')
    assert lines(validate_inventory(path)) == ["board: ssh_port: must be an integer, not str '22'"]


def test_problem_names_the_group_that_set_the_value(tmp_path):
    path = write_inventory(tmp_path)
    (tmp_path / "group_data" / "termux.py").write_text("rpc_overhead_mb = -1\n")
    assert lines(validate_inventory(path)) == [
        "phone1: rpc_overhead_mb: -1 is out of range: must be at least 0 (set in group 'termux')"
    ]


# --- loading like pyinfra --------------------------------------------------------------------------


def test_later_group_wins_and_host_data_wins_over_groups(tmp_path):
    path = tmp_path / "inv.py"
    path.write_text(textwrap.dedent("""
        first = (["a", "b"], {"rpc_threads": 1, "llama_cmake_args": ["-DA=1"]})
        second = (["a", "b"], {"rpc_threads": 2, "llama_cmake_args": ["-DB=2"]})
        third = [("b", {"rpc_threads": 3})]
    """))
    hosts = {host.name: host for host in load_inventory(path)}
    assert hosts["a"].data["rpc_threads"] == 2
    assert hosts["a"].where("rpc_threads") == "group 'second'"
    # Lists (and dicts) are replaced, not merged.
    assert hosts["a"].data["llama_cmake_args"] == ["-DB=2"]
    assert hosts["b"].data["rpc_threads"] == 3
    assert hosts["b"].where("rpc_threads") == "host data"
    # Defaults from the deploy's group_data/all.py are there.
    assert hosts["a"].data["rpc_port_base"] == read_defaults()["rpc_port_base"]
    assert hosts["a"].where("rpc_port_base") == "all"
    assert [host.name for host in load_inventory(path)] == ["a", "b"]


def test_inventory_all_data_replaced_by_group_data_is_reported(tmp_path):
    path = write_inventory(tmp_path, extra='all = (["box", "board", "phone1"], {"rpc_port_base": 6000})\n')
    (tmp_path / "group_data" / "all.py").write_text(CLUSTER_DATA + "rpc_port_base = 7000\n")
    loaded = load_inventory_full(path)
    assert loaded.hosts[0].data["rpc_port_base"] == 7000  # pyinfra's behaviour, faithfully
    problems = lines(validate_inventory(path))
    assert len(problems) == 1
    assert problems[0].startswith("cluster: rpc_port_base: 6000 in the inventory's group 'all' is replaced by 7000")


def test_termux_membership_is_the_group(tmp_path):
    hosts = {host.name: host for host in load_inventory(write_inventory(tmp_path))}
    assert hosts["phone1"].is_termux and not hosts["board"].is_termux


def test_check_never_connects(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("check tried to use the network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    path = write_inventory(tmp_path, board=', "cluster_address": "board.lan.invalid"')
    assert validate_inventory(path) == []


def test_load_error_is_an_inventory_error(tmp_path):
    with pytest.raises(InventoryError, match="no such inventory file"):
        load_inventory(tmp_path / "missing.py")
    bad = tmp_path / "bad.py"
    bad.write_text("hosts = [undefined_name]\n")
    with pytest.raises(InventoryError, match="NameError"):
        load_inventory(bad)


def test_repo_group_data_is_the_default():
    assert (REPO_GROUP_DATA / "all.py").is_file()


# --- rules not covered by the data files -----------------------------------------------------------


def test_files_present_on_the_controller_pass(tmp_path):
    archive = tmp_path / "llama.tar.gz"
    archive.write_bytes(b"x")
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "all.py").write_text(
        f'llama_cpp_archive = "{archive}"\nmodel_file = "{model}"\nmodel_sha256 = "{hashlib.sha256(b"m.gguf").hexdigest()}"\n'
    )
    path = tmp_path / "inv.py"
    path.write_text('hosts = [("m", {"llama_role": "master"}), "w"]\n')
    assert validate_inventory(path) == []


def test_ref_and_archive_together_is_ambiguous(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"x")
    path = write_inventory(tmp_path)
    (tmp_path / "group_data" / "all.py").write_text(CLUSTER_DATA + f'llama_cpp_archive = "{archive}"\n')
    problems = lines(validate_inventory(path))
    assert "board: llama_cpp_archive: both llama_cpp_ref ('b6500') and llama_cpp_archive are set: keep one" in problems


def test_rpc_port_on_the_ssh_port_clashes_with_sshd(tmp_path):
    # Its services run as root (by choice), so the low port alone is not refused.
    path = write_inventory(tmp_path, board=', "rpc_port": 22, "service_user": "root", "service_user_allow_root": True')
    assert lines(validate_inventory(path)) == [
        "board: rpc_port: board's RPC server on 198.18.0.31:22 clashes with board's sshd (same machine 198.18.0.31)"
    ]


def test_no_free_port_from_the_base(tmp_path):
    # board holds 65535, the only port from phone1's base up: a first deploy has none for phone1.
    path = write_inventory(tmp_path, board=', "rpc_port": 65535', phone=', "rpc_port_base": 65535')
    assert lines(validate_inventory(path)) == [
        "phone1: rpc_port_base: no free port from 65535 to 65535: the other workers hold them; lower "
        "rpc_port_base or set rpc_port"]
    # Alone from that base, it gets 65535.
    (tmp_path / "alone").mkdir()
    path = write_inventory(tmp_path / "alone", phone=', "rpc_port_base": 65535')
    assert lines(validate_inventory(path)) == []


def test_no_workers(tmp_path):
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "all.py").write_text(CLUSTER_DATA)
    path = tmp_path / "inv.py"
    path.write_text('hosts = [("solo", {"llama_role": "master"})]\n')
    assert lines(validate_inventory(path)) == [
        "cluster: llama_role: no workers: the master needs at least one RPC worker"
    ]


def test_empty_inventory(tmp_path):
    path = tmp_path / "inv.py"
    path.write_text("hosts = []\n")
    assert lines(validate_inventory(path)) == ["cluster: inventory: no hosts in the inventory"]


def test_loopback_direct_is_fine_on_the_masters_own_machine(tmp_path):
    path = write_inventory(tmp_path, board=', "cluster_address": "198.18.0.10", "rpc_bind": "127.0.0.1"')
    assert validate_inventory(path) == []


def test_problem_str_is_the_line():
    assert str(Problem("phone1", "rpc_port", "bad")) == "phone1: rpc_port: bad"


@pytest.mark.parametrize(
    "value, ok",
    [
        ("198.18.0.1", True),
        ("fe80::1", True),
        ("phone1", True),
        ("board.lan", True),
        ("my board", False),
        ("-bad.example", False),
        ("999.1.1.1", False),
        ("", False),
        ("a" * 64, False),
    ],
)
def test_ip_or_hostname(value, ok):
    assert is_ip_or_hostname(value) is ok


def test_validating_the_inventory_pyinfra_loaded(tmp_path):
    # deploy.py validates `pyinfra.inventory` with the same rules before touching any host.
    from pyinfra.api import State
    from pyinfra.context import ctx_state

    from llamafleet.inventory_data import make_pyinfra_inventory
    from llamafleet.validate import validate_pyinfra_inventory

    path = write_inventory(tmp_path, board=', "rpc_transport": "carrier-pigeon"')
    with ctx_state.use(State()):
        inventory = make_pyinfra_inventory(path)
    assert lines(validate_pyinfra_inventory(inventory)) == [
        "board: rpc_transport: 'carrier-pigeon' is not one of direct, tunnel"
    ]


def test_a_malformed_source_is_reported_once(tmp_path):
    path = write_inventory(tmp_path, board=', "llama_cpp_ref": 6500')
    assert lines(validate_inventory(path)) == ["board: llama_cpp_ref: must be a string, not int 6500"]


def test_a_good_cpu_table_file_passes(tmp_path):
    good = tmp_path / "cpu.yaml"
    good.write_text("cores:\n  - {implementer: 0x43, part: 0x0a2, name: thunderxt81}\n")
    assert validate_inventory(write_inventory(tmp_path, board=f', "llama_cpu_table": "{good}"')) == []


def test_a_bad_cpu_table_row_names_host_key_file_and_row(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cores:\n  - {implementer: 0x43, part: 162, name: thunderxt81}\n")
    assert lines(validate_inventory(write_inventory(tmp_path, board=f', "llama_cpu_table": "{bad}"'))) == [
        f"board: llama_cpu_table: {bad}: line 2 (cores row 1): part must be hex as /proc/cpuinfo prints it "
        "(e.g. 0x41, 0xd0b), not '162'"
    ]


def test_cpu_table_per_device_class_missing_or_not_a_string(tmp_path):
    path = write_inventory(tmp_path, board=', "llama_cpu_table": 3')
    (tmp_path / "group_data" / "termux.py").write_text(f'llama_cpu_table = "{tmp_path}/phones.yaml"\n')
    assert lines(validate_inventory(path)) == [
        "board: llama_cpu_table: must be a string, not int 3",
        f"phone1: llama_cpu_table: {tmp_path}/phones.yaml: no such file (set in group 'termux')",
    ]
