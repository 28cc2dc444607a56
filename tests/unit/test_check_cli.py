"""`llamafleet check` on the inventories in tests/data/inventories: one bad input per file.

Each case must exit 2 and print a line `host: key: message` naming the host and key at fault;
the valid inventories exit 0 with a one-line summary.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path

import pytest

from llamafleet import validate_cli

INVENTORIES = Path(__file__).resolve().parents[1] / "data" / "inventories"
REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^[^:\s]+: [^:\s]+: .+$")

# file -> (host, key, a fragment the message must contain)
BAD_CASES = {
    "bad_unknown_key": ("phone1", "rpc_prot", "did you mean 'rpc_port'"),
    "bad_type_int": ("phone1", "rpc_threads", "must be an integer"),
    "bad_type_bool": ("board", "firewall_enabled", "must be True or False"),
    "bad_type_list": ("box", "llama_tensor_split", "list of numbers"),
    "bad_port_range": ("box", "llama_server_port", "out of range"),
    "bad_ram_fraction": ("phone2", "rpc_ram_fraction", "(0, 0.95]"),
    "bad_overhead": ("board", "rpc_overhead_mb", "at least 0"),
    "bad_threads": ("board", "rpc_threads", "at least 1"),
    "bad_port_clash": ("phone2", "rpc_port", "clashes with board's RPC server"),
    "bad_api_clash": ("board", "rpc_port", "clashes with box's llama-server"),
    "bad_tunnel_clash": ("phone2", "rpc_port", "clashes with box's tunnel to phone1"),
    "bad_termux_low_port": ("phone1", "rpc_port", "below 1024"),
    "bad_split_length": ("box", "llama_tensor_split", "2 proportions for 3 workers"),
    "bad_split_sum": ("box", "llama_tensor_split", "sum to 1.2"),
    "bad_no_master": ("cluster", "llama_role", "no master"),
    "bad_two_masters": ("board", "llama_role", "second master"),
    "bad_sha256": ("phone1", "model_sha256", "64 hex digits"),
    "bad_no_source": ("box", "llama_cpp_ref", "no llama.cpp source"),
    "bad_archive_missing": ("phone1", "llama_cpp_archive", "no such file on the controller"),
    "bad_ref_mismatch": ("phone2", "llama_cpp_ref", "differs from 'b6500' on box"),
    "bad_no_model": ("board", "model_url", "no model"),
    "bad_model_file_missing": ("phone2", "model_file", "no such file on the controller"),
    "bad_url_without_sha": ("box", "model_sha256", "model_url without model_sha256"),
    "bad_wildcard_no_firewall": ("board", "rpc_bind", "firewall_enabled = False"),
    "bad_wildcard_termux": ("phone1", "rpc_bind", "cannot firewall"),
    "bad_transport": ("board", "rpc_transport", "not one of direct, tunnel"),
    "bad_direct_termux": ("phone2", "rpc_transport", "cannot firewall"),
    "bad_load_mode": ("box", "llama_load_mode", "did you mean 'mmap'"),
    "bad_firewall_backend": ("board", "firewall_backend", "not one of iptables"),
    "bad_service_manager": ("board", "service_manager", "not one of termux-services"),
    "bad_service_manager_termux": ("phone1", "service_manager", "does not exist on a termux host"),
    "bad_cluster_address": ("board", "cluster_address", "not an IP address or host name"),
    "bad_direct_loopback": ("board", "rpc_bind", "box cannot reach it"),
    "bad_api_sources": ("box", "api_allowed_sources", "not an address or CIDR"),
    "bad_chat_template": ("box", "llama_chat_template", "neither a shipped template"),
    # Who the services run as (llamafleet.serving.account).
    "bad_service_user_root": ("board", "service_user", "'root': llama.cpp's RPC has no authentication"),
    "bad_service_user_name": ("board", "service_user", "'Llama Fleet' is not a Linux user name"),
    "bad_service_user_termux": ("phone1", "service_user", "'llm': Termux runs every process as the app's own user"),
    "bad_low_port_unprivileged": ("box", "llama_server_port", "runs as the unprivileged service_user 'llamafleet'"),
    # Values that reach a device's shell, command lines or paths (llamafleet.validate.patterns).
    "bad_model_name_escape": ("box", "model_name", "must stay inside its directory"),
    "bad_dir_relative": ("board", "llamafleet_dir", "is not an absolute path"),
    "bad_url_scheme": ("phone1", "model_url", "not an http:// or https:// URL"),
    "bad_repo_url": ("box", "llama_cpp_repo", "not an http:// or https:// URL"),
    "bad_ref_shell": ("board", "llama_cpp_ref", "not a git tag, branch or commit"),
    "bad_package_name": ("phone2", "extra_packages", "'git; reboot' is not a package name"),
    "bad_cmake_arg": ("board", "llama_cmake_args", "'-DCMAKE_C_FLAGS=$(reboot)' is not -DNAME=VALUE"),
    "bad_cpu_arch": ("phone1", "llama_cpu_arch", "is not an ARM -march value"),
    "bad_compiler": ("board", "llama_compiler", "is not an absolute path"),
    # The offline fit with ram_mb on every host.
    "bad_ram_fit": ("cluster", "model_size_mb", "1200 MB does not fit the workers' usable RAM (600 MB"),
    # llama-server beyond the cluster with nothing to firewall it.
    "bad_api_no_firewall": ("box", "llama_server_host", "every network with firewall_enabled = False"),
    "bad_api_termux_master": ("phone1", "llama_server_host", "every network of a phone that cannot firewall"),
    # What pyinfra lets slide.
    "bad_group_data_typo/inventory": ("cluster", "rpc_threads", "group 'pixl7'"),
    "bad_group_shadowed": ("phone1", "rpc_transport", "'direct' from group 'pixel7' is replaced by 'tunnel'"),
    "bad_termux_no_ssh_port": ("phone1", "ssh_port", "not set: pyinfra would log in on port 22"),
    "bad_termux_no_temp_dir": ("phone2", "_temp_dir", "not set: pyinfra would put its temporary files in /tmp"),
    "bad_same_machine_twice": ("phone2", "ssh_hostname", "198.18.0.21 port 8022 is phone1 again"),
    "bad_sha256_placeholder": ("phone1", "model_sha256", "is a placeholder"),
}


def run_cli(argv: list[str]) -> int:
    """Run one llamafleet sub-command through the parser validate_cli registers."""
    parser = argparse.ArgumentParser(prog="llamafleet")
    validate_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_every_bad_inventory_file_has_an_expectation():
    # A new bad_*.py without an expected line would otherwise be silently untested. A case that
    # needs group data of its own sits in a folder: bad_<case>/inventory.py.
    on_disk = {path.stem for path in INVENTORIES.glob("bad_*.py")}
    on_disk |= {f"{path.parent.name}/inventory" for path in INVENTORIES.glob("bad_*/inventory.py")}
    assert on_disk == set(BAD_CASES)
    assert len(BAD_CASES) >= 15


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_inventory_exits_2_naming_host_and_key(case, capsys):
    host, key, fragment = BAD_CASES[case]
    assert run_cli(["check", str(INVENTORIES / f"{case}.py")]) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == ""
    assert lines, "no problem printed"
    assert all(LINE.match(line) for line in lines), lines
    matching = [line for line in lines if line.startswith(f"{host}: {key}: ")]
    assert matching, f"no line for {host}: {key} in {lines}"
    assert any(fragment in line for line in matching), matching


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_inventory_reports_only_its_own_mistake(case, capsys):
    # One mistake, one kind of line: the bad value does not cascade into other rules' messages.
    host, key, _ = BAD_CASES[case]
    run_cli(["check", str(INVENTORIES / f"{case}.py")])
    keys = {line.split(": ")[1] for line in capsys.readouterr().err.splitlines()}
    assert keys == {key}


@pytest.mark.parametrize("inventory", ["good.py", "ok_insecure_allowed.py", "ok_api_allowed.py"])
def test_valid_inventory_exits_0_with_summary(inventory, capsys):
    assert run_cli(["check", str(INVENTORIES / inventory)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.strip() == (
        "ok: 4 hosts, master box, workers board, phone1, phone2, model tiny-Q8_0.gguf, ref b6500"
    )


def test_example_inventory_passes_once_its_placeholder_sha256_is_replaced(tmp_path, capsys):
    # The example is copied and filled in: check refuses its placeholder sha256 ("0" * 64) on
    # every host, and nothing else.
    example = REPO / "inventory" / "example.py"
    assert run_cli(["check", str(example)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[:2] for line in lines] == [
        ["homeserver", "model_sha256"], ["pixel7", "model_sha256"], ["galaxy-s21", "model_sha256"],
        ["raspberrypi", "model_sha256"]]
    assert all("placeholder" in line for line in lines)
    mine = tmp_path / "mine.py"
    mine.write_text(example.read_text().replace('"0" * 64', repr(hashlib.sha256(b"qwen").hexdigest())))
    assert run_cli(["check", str(mine)]) == 0
    summary, warned = capsys.readouterr()
    assert "4 hosts, master homeserver, workers pixel7, galaxy-s21, raspberrypi" in summary
    assert warned == "", "the Pi logged into as alice has _sudo: nothing to warn about"
    assert "ref b6500" in summary


def test_missing_inventory_file(tmp_path, capsys):
    assert run_cli(["check", str(tmp_path / "nope.py")]) == 2
    assert capsys.readouterr().err.startswith("cluster: inventory: ")


def test_inventory_with_python_error(tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("hosts = [\n")
    assert run_cli(["check", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cluster: inventory: ")
    assert "SyntaxError" in err


def test_group_data_option_selects_the_directory(tmp_path, capsys):
    # --group-data DIR is loaded like `pyinfra --group-data DIR`: it wins over other group data.
    group_data = tmp_path / "gd"
    group_data.mkdir()
    (group_data / "termux.py").write_text("rpc_port_base = 80\n")
    assert run_cli(["check", str(INVENTORIES / "good.py"), "--group-data", str(group_data)]) == 2
    lines = capsys.readouterr().err.splitlines()
    # Without the deploy's all.py only the inventory folder's group data is there: the phones'
    # low ports are what this directory brought in (the lowest free from 80 up, board's 50052
    # being far off).
    assert "phone1: rpc_port_base: port 80 is below 1024: Termux has no root to bind it" in lines
    assert "phone2: rpc_port_base: port 81 is below 1024: Termux has no root to bind it" in lines


def test_missing_group_data_directory(tmp_path, capsys):
    assert run_cli(["check", str(INVENTORIES / "good.py"), "--group-data", str(tmp_path / "x")]) == 2
    assert "no such group data directory" in capsys.readouterr().err


def test_a_master_model_without_a_chat_template_is_a_warning_not_a_refusal(tmp_path, capsys):
    from test_chat_template import model

    bare = model(tmp_path, None)
    inventory = tmp_path / "inv.py"
    inventory.write_text(
        "linux = [('box', {'ssh_hostname': '198.18.0.10', 'llama_role': 'master', 'llama_cpp_ref': 'b6500',"
        f" 'model_file': {str(bare)!r}}}), ('board', {{'ssh_hostname': '198.18.0.31', 'llama_cpp_ref': 'b6500',"
        f" 'model_file': {str(bare)!r}}})]\n"
    )
    assert run_cli(["check", str(inventory)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: 2 hosts")
    assert err.startswith("warning: box: llama_chat_template: model.gguf carries no chat template"), err
    assert "board" not in err  # the master's model is the one that formats chats


def test_a_non_root_linux_host_without_sudo_is_a_warning(tmp_path, capsys):
    example = (REPO / "inventory" / "example.py").read_text().replace('"0" * 64', repr(hashlib.sha256(b"q").hexdigest()))
    without_sudo = tmp_path / "mine.py"
    without_sudo.write_text(example.replace(', "_sudo": True}', "}"))
    assert run_cli(["check", str(without_sudo)]) == 0, "it deploys as far as root is not needed: not a refusal"
    out, err = capsys.readouterr()
    assert out.startswith("ok: 4 hosts")
    assert err.splitlines() == [
        "warning: raspberrypi: _sudo: ssh_user 'alice' is not root and _sudo is not set: the deploy cannot "
        "install packages, write /etc (services, sysctl) or set firewall rules there; set _sudo = True "
        "(sudo without a password), as the Pi in inventory/example.py does"]


def test_sudo_on_a_termux_phone_is_refused_naming_host_and_key(tmp_path, capsys):
    example = (REPO / "inventory" / "example.py").read_text().replace('"0" * 64', repr(hashlib.sha256(b"q").hexdigest()))
    phone_sudo = tmp_path / "mine.py"
    phone_sudo.write_text(example.replace('("pixel7", {"ssh_hostname": "192.168.1.21"})',
                                          '("pixel7", {"ssh_hostname": "192.168.1.21", "_sudo": True})'))
    assert run_cli(["check", str(phone_sudo)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "pixel7: _sudo: a Termux phone has no root and no sudo, so every command would fail; remove it "
        "(Termux runs everything llamafleet does as the app's user)"]
