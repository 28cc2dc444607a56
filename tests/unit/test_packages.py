"""The packages a host gets (llamafleet.plan.packages: runit only where runit runs the services)
and packages.apt_installed: missing Debian packages installed from lists refreshed first when
stale; nothing at all, not even a refresh, when every package is there."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta

import pytest
from pyinfra.context import ctx_host, ctx_state
from scratch import FakeHost

from llamafleet.operations import packages
from llamafleet.plan.packages import packages_of
from llamafleet.settings import settings_for

NOW = datetime(2026, 12, 2, 12, 0, 0)
STAMP = "/var/lib/apt/periodic/update-success-stamp"
INSTALL = "DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Options::=\"--force-confdef\" " \
          "-o Dpkg::Options::=\"--force-confold\" install"


def settings(**data):
    return settings_for("board", data)


# --- which packages ----------------------------------------------------------------------------


def test_runit_is_added_where_runit_runs_the_services():
    assert packages_of(settings(), "linux", "runit") == [
        "build-essential", "cmake", "ninja-build", "git", "ccache", "runit"]


@pytest.mark.parametrize("listed", [["cmake", "runit"], ["cmake", "runit=2.1.2-54"]])
def test_runit_is_never_installed_beside_systemd_even_when_listed(listed):
    assert packages_of(settings(apt_packages=listed), "linux", "systemd") == ["cmake"]


def test_extras_follow_the_platform_list_each_once():
    chosen = settings(apt_packages=["cmake", "git"], extra_packages=["iperf3", "git"])
    assert packages_of(chosen, "linux", "runit") == ["cmake", "git", "iperf3", "runit"]
    phone = settings(termux_packages=["clang", "runit"], extra_packages=["iperf3"])
    # On Termux runit is what termux-services runs on: listed, it stays.
    assert packages_of(phone, "termux", "termux-services") == ["clang", "runit", "iperf3", "termux-services"]


def test_the_defaults_on_each_platform():
    assert "runit" not in packages_of(settings(), "linux", "systemd")
    phone = packages_of(settings(), "termux", "termux-services")
    assert phone.count("termux-services") == 1 and "openssh" in phone


def test_taskset_comes_with_a_pinned_worker_on_termux_only():
    """A pinned worker starts through taskset: util-linux on Termux (in its bootstrap, yet
    removable); on Debian util-linux is Essential, nothing to add."""
    phone = packages_of(settings(), "termux", "termux-services", pinned=True)
    assert phone[-1] == "util-linux" and phone.count("util-linux") == 1
    assert "util-linux" not in packages_of(settings(), "termux", "termux-services")
    assert packages_of(settings(), "linux", "runit", pinned=True) == packages_of(settings(), "linux", "runit")
    listed = settings(termux_packages=["clang", "util-linux"])
    assert packages_of(listed, "termux", "termux-services", pinned=True) == ["clang", "util-linux", "termux-services"]


# --- apt_installed -----------------------------------------------------------------------------


def run_apt(installed: dict, wanted: list[str], stamp_age: timedelta | None):
    facts = {"DebPackages": installed, "Date": NOW,
             "File": None if stamp_age is None else {"mtime": NOW - stamp_age}}
    fake = FakeHost("board", facts)
    with ctx_state.use(object()), ctx_host.use(fake):
        commands = [str(getattr(c, "get_raw_value", lambda: c)()) for c in packages.apt_installed._inner(packages=wanted)]
    return commands, fake.noops


def test_everything_installed_changes_nothing_however_old_the_lists():
    for age in (None, timedelta(days=400)):
        commands, noops = run_apt({"cmake": ["3.25.1-1"], "git": ["1:2.39.5-0"]}, ["cmake", "git"], age)
        assert commands == [] and noops == ["Debian packages are installed: cmake, git"]


@pytest.mark.parametrize("age", [None, timedelta(days=2)])
def test_stale_or_never_refreshed_lists_are_refreshed_before_installing(age):
    commands, noops = run_apt({"cmake": ["3.25.1-1"]}, ["cmake", "ninja-build", "git"], age)
    assert commands == ["apt-get update", f"touch {STAMP}", f"{INSTALL} ninja-build git"]
    assert noops == []


def test_fresh_lists_are_not_refreshed_again():
    commands, _ = run_apt({}, ["cmake"], timedelta(hours=3))
    assert commands == [f"{INSTALL} cmake"]


def test_a_pinned_version_counts_only_at_that_version():
    assert packages.missing_debs(["cmake=3.25.1-1", "git"], {"cmake": ["3.25.1-1"], "git": ["1:2.39"]}) == []
    assert packages.missing_debs(["cmake=3.31.0-1", "cmake=3.31.0-1"], {"cmake": ["3.25.1-1"]}) == ["cmake=3.31.0-1"]


@pytest.mark.skipif(not shutil.which("dpkg-query"), reason="the lab's Termux packages link Debian's programs")
def test_a_lab_phone_gets_taskset_from_util_linux():
    """The lab's Termux index, as real Termux: util-linux is in the bootstrap (termux-packages'
    scripts/generate-bootstraps.sh pulls it) and `pkg install util-linux` puts taskset in $PREFIX/bin."""
    from llamafleet_lab.termux_packages import BOOTSTRAP, PACKAGES
    from llamafleet_lab.termux_programs import package_files

    assert "util-linux" in BOOTSTRAP and "util-linux" in {package.name for package in PACKAGES}
    assert dict(package_files("util-linux")).get("bin/taskset", "").endswith("/taskset")
