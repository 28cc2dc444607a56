"""`llamafleet` loads extra sub-commands from the `llamafleet.commands` entry points.

The entry points are faked here (the lab need not be installed): a plugin module put in
sys.modules, or the ones lab/pyproject.toml declares.
"""

from __future__ import annotations

import argparse
import sys
import types
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from llamafleet import cli

REPO = Path(__file__).resolve().parents[2]


def _fake_plugin(monkeypatch, calls: list) -> None:
    """A module `fake_llamafleet_plugin` whose register adds `hello NAME`."""
    module = types.ModuleType("fake_llamafleet_plugin")

    def register(subparsers):
        hello = subparsers.add_parser("hello", help="a plugin's command")
        hello.add_argument("name")
        hello.set_defaults(func=lambda args: calls.append(args.name) or 7)

    def broken(subparsers):
        raise RuntimeError("half installed")

    module.register, module.broken = register, broken
    monkeypatch.setitem(sys.modules, module.__name__, module)


def _serve_entry_points(monkeypatch, *entries: EntryPoint) -> list[str]:
    """Make the CLI see these entry points; returns the groups it asked for."""
    asked = []

    def entry_points(*, group):
        asked.append(group)
        return [entry for entry in entries if entry.group == group]

    monkeypatch.setattr(cli, "entry_points", entry_points)
    return asked


def _entry(name: str, value: str, group: str = "llamafleet.commands") -> EntryPoint:
    return EntryPoint(name=name, value=value, group=group)


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    return set(next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction)).choices)


def test_a_plugin_entry_point_adds_a_command_that_runs(monkeypatch):
    calls: list = []
    _fake_plugin(monkeypatch, calls)
    asked = _serve_entry_points(monkeypatch, _entry("hello", "fake_llamafleet_plugin:register"))
    assert cli.main(["hello", "world"]) == 7
    assert calls == ["world"]
    assert asked == ["llamafleet.commands"]


def test_entry_points_of_another_group_are_not_loaded(monkeypatch):
    _fake_plugin(monkeypatch, [])
    _serve_entry_points(monkeypatch, _entry("hello", "fake_llamafleet_plugin:register", group="other.commands"))
    assert "hello" not in _commands(cli.build_parser())


def test_without_plugins_the_product_commands_work_and_there_is_no_lab(monkeypatch, capsys):
    _serve_entry_points(monkeypatch)
    commands = _commands(cli.build_parser())
    assert {"check", "plan", "status", "doctor"} <= commands
    assert not {"lab", "assets"} & commands
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    assert " lab " not in capsys.readouterr().out


def test_a_plugin_that_fails_to_load_is_named_and_the_rest_still_works(monkeypatch, capsys):
    calls: list = []
    _fake_plugin(monkeypatch, calls)
    _serve_entry_points(
        monkeypatch,
        _entry("broken", "fake_llamafleet_plugin:broken"),
        _entry("missing", "no_such_module_anywhere:register"),
        _entry("hello", "fake_llamafleet_plugin:register"),
    )
    assert cli.main(["hello", "again"]) == 7
    assert calls == ["again"]
    err = capsys.readouterr().err
    assert "command 'broken' from fake_llamafleet_plugin:broken not loaded: RuntimeError: half installed" in err
    assert "command 'missing' from no_such_module_anywhere:register not loaded: ModuleNotFoundError" in err


def test_the_lab_declares_lab_and_assets_and_they_plug_in(monkeypatch, capsys):
    tomllib = pytest.importorskip("tomllib")
    declared = tomllib.loads((REPO / "lab" / "pyproject.toml").read_text())["project"]["entry-points"]
    group = declared["llamafleet.commands"]
    assert set(group) == {"lab", "assets"}
    _serve_entry_points(monkeypatch, *(_entry(name, value) for name, value in group.items()))
    assert {"lab", "assets"} <= _commands(cli.build_parser())
    # `assets path` only prints where the model is cached: nothing is fetched
    monkeypatch.setenv("LLAMAFLEET_CACHE", "/nonexistent/cache")
    assert cli.main(["assets", "path", "model"]) == 0
    assert capsys.readouterr().out.strip() == "/nonexistent/cache/models/gemma-3-270m-q4_k_m.gguf"
