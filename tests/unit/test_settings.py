"""The settings' declarations (llamafleet.settings): group_data/all.py is rendered from them, the
checks read their rules, and a host's typed settings are filled from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamafleet.settings import BY_NAME, SETTINGS, Setting, SettingError, default_settings, settings_for
from llamafleet.settings.all_py import literal, render
from llamafleet.settings.declare import declare
from llamafleet.settings.kinds import INT, STR

REPO = Path(__file__).resolve().parents[2]


def test_group_data_all_py_is_rendered_from_the_declarations():
    assert (REPO / "group_data" / "all.py").read_text() == render(), (
        "group_data/all.py differs from llamafleet/settings/tunables.py: "
        "run `python -m llamafleet.settings.all_py > group_data/all.py`")


def test_all_py_shows_each_llamafleet_key_once_with_its_doc_and_no_pyinfra_key():
    text = render()
    for setting in SETTINGS:
        line = f"\n{setting.name} = {literal(setting.default)}\n"
        if setting.in_all_py:
            assert text.count(line) == 1, setting.name
            assert setting.doc.strip().splitlines()[-1] in text, f"{setting.name}: doc not shown"
        else:
            assert f"\n{setting.name} =" not in text
    assert "\n# --- RPC workers ---" in text and 'termux_packages = ["clang", "cmake"' in text


def test_every_default_passes_its_own_declaration():
    for setting in SETTINGS:
        assert setting.problems(setting.default) == [], setting.name
        assert setting.doc.strip() or not setting.in_all_py, f"{setting.name}: no doc"


def test_typed_settings_take_data_over_defaults_and_none_means_the_default():
    settings = settings_for("box", {"rpc_port_base": 6000, "rpc_overhead_mb": None, "unknown": 1})
    assert settings.rpc_port_base == 6000
    assert settings.rpc_overhead_mb == 500 and settings.rpc_ram_fraction == 0.7
    assert settings.rpc_transport is None  # decided by the plan
    assert default_settings().llama_server_port == 8080
    assert not hasattr(settings, "unknown") and not hasattr(settings, "_temp_dir")
    assert settings_for("p", {"ssh_port": 8022}).ssh_port == 8022  # pyinfra's keys llamafleet reads


def test_typed_list_defaults_are_copies_and_items_lose_surrounding_blanks():
    first = default_settings()
    first.termux_packages.append("vim")
    assert "vim" not in default_settings().termux_packages
    assert settings_for("b", {"llama_cmake_args": [" -DGGML_VULKAN=ON "]}).llama_cmake_args == ["-DGGML_VULKAN=ON"]


@pytest.mark.parametrize("key, value, message", [
    ("rpc_port", True, "must be an integer, not bool True"),
    ("termux_packages", "clang cmake", "must be a list of strings, not str 'clang cmake'"),
    ("rpc_ram_fraction", "0.7", "must be a number, not str '0.7'"),
])
def test_typed_settings_refuse_a_value_of_another_kind_naming_host_and_key(key, value, message):
    with pytest.raises(SettingError) as caught:
        settings_for("phone1", {key: value})
    assert str(caught.value) == f"phone1: {key}: {message}"
    assert (caught.value.host_name, caught.value.key) == ("phone1", key)


def test_values_are_held_to_their_range_choices_and_pattern_by_their_declaration():
    assert BY_NAME["rpc_ram_fraction"].value_problems(0) == ["0 is out of range: must be in (0, 0.95]"]
    assert BY_NAME["rpc_ram_fraction"].value_problems(0.95) == []
    assert BY_NAME["rpc_transport"].value_problems("tunel") == [
        "'tunel' is not one of direct, tunnel; did you mean 'tunnel'?"]
    assert BY_NAME["api_allowed_sources"].value_problems(["10.0.0.0/8", "nowhere"]) == [
        "'nowhere' is not an address or CIDR"]
    assert BY_NAME["rpc_bind"].value_problems("bad host") == ["'bad host' is not an IP address or host name"]
    assert BY_NAME["llama_role"].problems(3) == ["must be a string, not int 3"]


def test_a_key_is_declared_once():
    with pytest.raises(ValueError, match="declared twice: x"):
        declare("A", Setting("x", INT, 1), "B", Setting("x", STR))
    assert [s.section for s in declare("A", Setting("x", INT, 1), "B", Setting("y", STR))] == ["A", "B"]


def test_tasks_read_typed_settings_not_raw_data():
    """Every task reads its host's data as typed settings (kinds and defaults from the
    declarations), never `host.data` with a default or a check of its own."""
    readers = [path.name for path in sorted((REPO / "tasks").glob("*.py")) if "host.data" in path.read_text()]
    assert readers == []
