"""Small parsers behind the facts: compiler identity, compiler specs, meminfo."""

from __future__ import annotations

import pytest

from llamafleet.cpu.compilers import parse_compiler_spec, parse_version_output, tune_choices
from llamafleet.cpu.meminfo import parse_meminfo


@pytest.mark.parametrize(
    "text, family, version",
    [
        ("gcc (Debian 12.2.0-14+deb12u1) 12.2.0\nCopyright (C) 2022 Free Software Foundation, Inc.", "gcc", "12.2.0"),
        ("cc (Debian 12.2.0-14+deb12u1) 12.2.0\n", "gcc", "12.2.0"),
        ("aarch64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0\n", "gcc", "12.2.0"),
        ("gcc (GCC) 13.2.1 20231011 (Red Hat 13.2.1-4)\n", "gcc", "13.2.1"),
        ("gcc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0\n", "gcc", "11.4.0"),
        ("gcc (Alpine 13.2.1_git20231014) 13.2.1 20231014\n", "gcc", "13.2.1"),
        ("x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14) 12.2.0\n", "gcc", "12.2.0"),
        ("Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu\n", "clang", "14.0.6"),
        ("clang version 18.1.8\nTarget: aarch64-unknown-linux-android24\nThread model: posix\n", "clang", "18.1.8"),
        ("Ubuntu clang version 14.0.0-1ubuntu1.1\n", "clang", "14.0.0"),
    ],
)
def test_version_output(text, family, version):
    assert parse_version_output(text) == {"family": family, "version": version}


@pytest.mark.parametrize("text", ["", "tcc version 0.9.27 (x86_64 Linux)\n", "sh: cc: not found\n"])
def test_version_output_unknown(text):
    assert parse_version_output(text) is None


def test_compiler_spec():
    assert parse_compiler_spec("gcc-12") == {"family": "gcc", "version": "12"}
    assert parse_compiler_spec("Clang-18.1") == {"family": "clang", "version": "18.1"}
    assert parse_compiler_spec("clang") == {"family": "clang", "version": None}
    with pytest.raises(ValueError, match="gcc-<version>"):
        parse_compiler_spec("msvc-19")


def test_tune_choices_use_substitutes_the_compiler_knows():
    gcc12 = {"family": "gcc", "version": "12"}
    assert tune_choices(["cortex-x3", "cortex-a715"], gcc12) == ["cortex-x2", "cortex-a710"]
    assert tune_choices(["krait"], gcc12) == ["cortex-a15"]
    assert tune_choices(["krait"], {"family": "clang", "version": "14"}) == ["krait", "cortex-a15"]
    assert tune_choices(["exynos-m5"], gcc12) == []


def test_meminfo_missing_values_are_none():
    assert parse_meminfo("") == {"total_mb": None, "available_mb": None}
    assert parse_meminfo("MemTotal: 1048576 kB\n") == {"total_mb": 1024, "available_mb": None}
