"""The `llamafleet` command: one sub-command per area, each registered by its own module."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module exposes `register(subparsers)`; it adds its parser(s) and sets `func`
# (called with the parsed args, returning the exit code).
_COMMAND_MODULES = (
    "llamafleet.lab.cli",
    "llamafleet.assets",
    "llamafleet.cpu.cli",
    "llamafleet.validate_cli",
    "llamafleet.verify_cli",
    "llamafleet.diagnose",
    "llamafleet.doctor",
    "llamafleet.status",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llamafleet",
        description="Run one llama.cpp model across Termux phones and Linux hosts.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
