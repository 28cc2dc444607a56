"""Where llamafleet lives on a device (llamafleet.layout)."""

from __future__ import annotations

import pytest

from llamafleet.layout import LINUX_DEFAULT_BASE, LayoutError, paths_for, resolve_base

TERMUX = {"platform": "termux", "home": "/data/data/com.termux/files/home"}
LINUX = {"platform": "linux", "home": "/root"}


def test_defaults_per_platform():
    assert resolve_base("phone1", None, TERMUX) == "/data/data/com.termux/files/home/llamafleet"
    assert resolve_base("linux1", None, LINUX) == LINUX_DEFAULT_BASE == "/opt/llamafleet"


def test_configured_dir_wins_and_tilde_expands():
    assert resolve_base("linux1", "/srv/lf/", LINUX) == "/srv/lf"
    assert resolve_base("phone1", "~/lf", TERMUX) == "/data/data/com.termux/files/home/lf"


@pytest.mark.parametrize("value", ["relative/dir", "", 42, ["/x"]])
def test_bad_dir_names_host_and_key(value):
    with pytest.raises(LayoutError, match=r"^phone1: llamafleet_dir: "):
        resolve_base("phone1", value, TERMUX)


def test_termux_without_home_is_an_error():
    with pytest.raises(LayoutError, match="phone1: llamafleet_dir"):
        resolve_base("phone1", None, {"platform": "termux", "home": None})


def test_paths_under_base():
    paths = paths_for("/opt/llamafleet")
    assert paths.bin == "/opt/llamafleet/bin"
    assert paths.models == "/opt/llamafleet/models"
    assert paths.logs == "/opt/llamafleet/logs"
    assert paths.run == "/opt/llamafleet/run"
    assert paths.src == "/opt/llamafleet/src"
    assert paths.build == "/opt/llamafleet/build"
    assert paths.llama_src == "/opt/llamafleet/src/llama.cpp"
    assert paths.stamp == "/opt/llamafleet/bin/build-stamp.json"
    assert paths.build_log == "/opt/llamafleet/logs/build.log"
