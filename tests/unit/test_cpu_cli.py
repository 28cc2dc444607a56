"""`llamafleet cpu-profile`: offline, same code as the facts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llamafleet.cli import main
from llamafleet.cpu import cli

DATA = Path(__file__).resolve().parents[1] / "data" / "cpuinfo"


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["cpu-profile", *argv])
    return args.func(args)


def test_json_keys_and_values(capsys):
    code = run(["--cpuinfo", str(DATA / "kirin-980-huawei-p30.txt"), "--compiler", "gcc-12", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"arch", "cores", "features", "big_cores", "threads", "cmake_args", "march"} <= set(out)
    assert out["cores"] == {"cortex-a55": 4, "hisilicon-cortex-a76": 4}
    assert out["features"] == sorted(out["features"]) and "dotprod" in out["features"]
    assert out["big_cores"] == out["threads"] == 4
    assert out["march"] == "armv8.2-a+dotprod+fp16"
    assert out["cmake_args"][:2] == ["-DGGML_NATIVE=OFF", "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16"]
    assert "-DCMAKE_C_FLAGS=-mtune=cortex-a76" in out["cmake_args"]


def test_arch_option_and_overrides(capsys):
    dump = DATA / "snapdragon-845-galaxy-s9-us-32bit-process-view.txt"
    code = run(
        [
            "--cpuinfo",
            str(dump),
            "--arch",
            "armv8l",
            "--platform",
            "termux",
            "--mcpu",
            "",
            "--cmake-arg=-DGGML_RPC=ON",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["arch"] == "armv7l" and out["uname_m"] == "armv8l"
    assert out["cmake_args"][-1] == "-DGGML_RPC=ON"
    assert "-DCMAKE_C_FLAGS=-mfpu=neon-fp-armv8 -mfloat-abi=softfp" in out["cmake_args"]


def test_human_table(capsys):
    assert run(["--cpuinfo", str(DATA / "snapdragon-888-oneplus-9-pro.txt"), "--compiler", "clang-14"]) == 0
    out = capsys.readouterr().out
    assert "4x cortex-a55, 3x cortex-a78, 1x cortex-x1" in out
    assert "threads   4" in out and "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16" in out


def test_probe_with_a_local_cross_compiler(capsys):
    """--probe-with walks the ladder with a compiler on this machine (cross gcc 12 here)."""
    code = run(
        [
            "--cpuinfo",
            str(DATA / "dimensity-9000-redmi-k50-pro.txt"),
            "--probe-with",
            "aarch64-linux-gnu-gcc",
            "--cpu-arch",
            "armv9.2-a+sme",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["march"] == "armv9.2-a+sme"
    assert out["warnings"] and "llama_cpu_arch" in out["warnings"][0]


def test_bad_input_exits_2(capsys, tmp_path):
    assert run(["--cpuinfo", str(tmp_path / "missing.txt")]) == 2
    assert run(["--cpuinfo", str(DATA / "raspberry-pi-5.txt"), "--compiler", "icc-2021"]) == 2
    assert run(["--cpuinfo", str(DATA / "raspberry-pi-5.txt"), "--cpu-arch", "x86-64-v3"]) == 2
    err = capsys.readouterr().err
    assert "missing.txt" in err and "icc-2021" in err and "llama_cpu_arch" in err


def test_registered_in_the_main_cli(capsys):
    assert main(["cpu-profile", "--cpuinfo", str(DATA / "raspberry-pi-4b-aarch64.txt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["march"] == "armv8-a+crc"
