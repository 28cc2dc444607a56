"""termux.packages: the TermuxPackages fact and the operation that installs only what is missing."""

from __future__ import annotations

import pytest
from scratch import FakeHost
from pyinfra.context import ctx_host, ctx_state

from llamafleet.facts.termux import TermuxPackages, parse_dpkg_query
from llamafleet.operations import termux
from llamafleet.operations.hostdata import HostDataError, merge_unique
from llamafleet.settings import BY_NAME, settings_for

DPKG_OUTPUT = [
    "clang\t21.1.8\tinstall ok installed",
    "cmake\t4.1.2\tinstall ok installed",
    "git\t2.51.0\tdeinstall ok config-files",  # removed: must be installed again
    "ninja\t1.13.1\tinstall ok half-installed",  # broken: must be installed again
    "garbage line",
]


def run_packages(installed: dict, wanted: list[str]):
    fake = FakeHost("phone1", {"TermuxPackages": installed})
    with ctx_state.use(object()), ctx_host.use(fake):
        commands = [command.get_raw_value() for command in termux.packages._inner(packages=wanted)]
    return commands, fake.noops


def test_fact_parses_dpkg_query_and_keeps_only_installed():
    assert parse_dpkg_query(DPKG_OUTPUT) == {"clang": "21.1.8", "cmake": "4.1.2"}
    assert TermuxPackages().process(DPKG_OUTPUT) == {"clang": "21.1.8", "cmake": "4.1.2"}


def test_fact_command_never_fails_and_reads_termuxs_own_database():
    command = TermuxPackages().command()
    assert command.startswith("dpkg-query -W")
    assert command.endswith("|| true")
    assert "sudo" not in command


def test_installs_only_missing_packages_in_order():
    commands, noops = run_packages({"clang": "21.1.8", "cmake": "4.1.2"}, ["clang", "cmake", "ninja", "git"])
    assert commands == ["pkg install -y ninja git"]
    assert noops == []


def test_noop_when_everything_is_installed():
    commands, noops = run_packages({"clang": "21.1.8", "cmake": "4.1.2"}, ["clang", "cmake"])
    assert commands == []
    assert noops == ["Termux packages are installed: clang, cmake"]


def test_pinned_version_counts_only_at_that_version():
    commands, _ = run_packages({"clang": "21.1.8"}, ["clang=21.1.8"])
    assert commands == []
    commands, _ = run_packages({"clang": "20.1.0"}, ["clang=21.1.8"])
    assert commands == ["pkg install -y clang=21.1.8"]


def test_never_sudo():
    commands, _ = run_packages({}, ["clang"])
    assert all("sudo" not in command for command in commands)


def test_package_lists_are_checked_and_merged():
    assert merge_unique(["clang", "cmake"], ["cmake", "iperf3"]) == ["clang", "cmake", "iperf3"]
    assert settings_for("phone1", {"extra_packages": None}).extra_packages == []
    with pytest.raises(HostDataError, match=r"^phone1: termux_packages: must be a list of strings"):
        settings_for("phone1", {"termux_packages": "clang cmake"})
    # A name is checked once, by `llamafleet check`, against the key's declaration.
    assert BY_NAME["extra_packages"].problems(["clang", "rm -rf /"]) == [
        "'rm -rf /' is not a package name (letters, digits and + . -, optionally =VERSION)"]
