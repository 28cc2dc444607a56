"""`llamafleet cpu-profile`: the CPU profile and build flags for a saved /proc/cpuinfo, offline.

Runs exactly the code the deploy runs on a device's facts, so a user can check what a phone
will get before touching it:

    llamafleet cpu-profile --cpuinfo pixel7.txt --compiler clang-18 --json

It reads the same CPU table (llamafleet/cpu/table.yaml); `--cpu-table FILE` merges a user's rows
over it as group data `llama_cpu_table` does, to try a new row before a deploy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile

from .compilers import parse_compiler_spec
from .flags import FlagsError, build_flags
from .profile import parse_cpuinfo
from .table import table_for


def register(subparsers) -> None:
    """Add the `cpu-profile` sub-command."""
    parser = subparsers.add_parser(
        "cpu-profile",
        help="show the CPU profile and llama.cpp build flags for a /proc/cpuinfo file",
        description="Parse a saved /proc/cpuinfo and print the profile and CMake flags "
        "llamafleet would use for that device. Nothing is contacted.",
    )
    parser.add_argument("--cpuinfo", required=True, metavar="FILE", help="a saved /proc/cpuinfo ('-' = stdin)")
    parser.add_argument("--arch", metavar="ARCH", help="the device's `uname -m` (aarch64, armv7l, armv8l, x86_64)")
    parser.add_argument(
        "--compiler", metavar="NAME-VERSION", help="the device's compiler, e.g. gcc-12 or clang-18 (decides -mtune)"
    )
    parser.add_argument("--platform", choices=("termux", "linux"), help="fixes the float ABI on 32-bit ARM")
    parser.add_argument("--cpu-arch", metavar="MARCH", help="override, as group data llama_cpu_arch")
    parser.add_argument("--mcpu", metavar="CORE", help="override, as group data llama_cpu_mcpu ('' = no tuning)")
    parser.add_argument(
        "--cpu-table",
        metavar="FILE",
        help="YAML rows (cores:, tune:) merged over the built-in CPU table, as group data llama_cpu_table",
    )
    parser.add_argument(
        "--cmake-arg",
        action="append",
        metavar="ARG",
        help="extra CMake argument, as llama_cmake_args; repeatable; write --cmake-arg=-DX=Y (argparse reads a bare -D... as an option)",
    )
    parser.add_argument(
        "--probe-with",
        metavar="CC",
        help="walk the fallback ladder against this local compiler (e.g. aarch64-linux-gnu-gcc)",
    )
    parser.add_argument(
        "--refused",
        action="append",
        metavar="FEATURE",
        help="an ISA feature the device refused (as its <llamafleet_dir>/etc/cpu-refused records after a SIGILL in "
        "the build's self-test, e.g. i8mm); repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def _local_accepts(compiler: str):
    """accepts(flags) backed by a compiler on this machine (the offline twin of CompilerAccepts)."""
    path = shutil.which(compiler)
    if not path:
        raise FileNotFoundError(f"--probe-with: no compiler {compiler!r} on this machine")

    def accepts(flags: list[str]) -> bool:
        with tempfile.TemporaryDirectory() as tmp:
            result = subprocess.run(
                [path, *flags, "-c", "-x", "c", "/dev/null", "-o", "/dev/null"],
                cwd=tmp,
                capture_output=True,
                check=False,
            )
        return result.returncode == 0

    return accepts


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def run(args: argparse.Namespace) -> int:
    """Print the profile and flags; exit 2 on unreadable input, bad overrides or a bad table."""
    try:
        text = _read(args.cpuinfo)
        compiler = parse_compiler_spec(args.compiler) if args.compiler else None
        accepts = _local_accepts(args.probe_with) if args.probe_with else None
        table = table_for(args.cpu_table)
        profile = parse_cpuinfo(text, args.arch, table)
        flags = build_flags(
            profile,
            compiler,
            llama_cpu_arch=args.cpu_arch,
            llama_cpu_mcpu=args.mcpu,
            llama_cmake_args=args.cmake_arg,
            platform=args.platform,
            accepts=accepts,
            table=table,
            refused=args.refused,
        )
    except (OSError, ValueError, FlagsError) as error:  # CpuTableError is a ValueError
        print(f"llamafleet cpu-profile: {error}", file=sys.stderr)
        return 2

    result = {
        **profile.to_dict(),
        "cmake_args": flags.cmake_args,
        "march": flags.march,
        "mcpu": flags.mcpu,
        "fallback": flags.fallback,
        "warnings": flags.warnings,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render_table(result))
    return 0


def render_table(result: dict) -> str:
    """A short human-readable summary of the profile and flags."""
    cores = ", ".join(f"{count}x {name}" for name, count in result["cores"].items()) or "-"
    rows = [
        ("arch", result["arch"] + (f" (uname -m: {result['uname_m']})" if result.get("uname_m") else "")),
        ("model", result.get("model") or "-"),
        ("cpus", f"{result['logical_cpus']} logical, {result['big_cores']} big"),
        ("cores", cores),
        ("threads", str(result["threads"])),
        ("features", " ".join(result["features"]) or "-"),
        ("march", result["march"] or "-"),
        ("tune", result["mcpu"] or "-"),
        ("fallback", result["fallback"] or "-"),
    ]
    rows += [("warning", text) for text in result["warnings"]]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
    lines.append("cmake".ljust(width) + "  " + result["cmake_args"][0])
    lines += [" " * (width + 2) + arg for arg in result["cmake_args"][1:]]
    return "\n".join(lines)
