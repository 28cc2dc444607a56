"""The `llamafleet` command: one sub-command per area, each registered by its own module.

Other installed distributions add sub-commands through the `llamafleet.commands` entry-point
group: each entry names a `register(subparsers)` function. The lab (lab/, `llamafleet-lab`)
adds `lab` and `assets` this way, so the product itself never imports it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib.metadata import entry_points

# Each module exposes `register(subparsers)`; it adds its parser(s) and sets `func`
# (called with the parsed args, returning the exit code).
_COMMAND_MODULES = (
    "llamafleet.cpu.cli",
    "llamafleet.validate_cli",
    "llamafleet.verify_cli",
    "llamafleet.diagnose",
    "llamafleet.doctor",
    "llamafleet.status",
    "llamafleet.remove_cli",
)

PLUGIN_GROUP = "llamafleet.commands"


def _register_plugins(subparsers) -> None:
    """Sub-commands of other installed distributions, in name order. One that fails to load is
    reported and left out: the product's own commands must keep working without it."""
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda entry: entry.name):
        try:
            entry.load()(subparsers)
        except Exception as error:  # a plugin's bug or a half-installed plugin: any error
            print(
                f"llamafleet: command {entry.name!r} from {entry.value} not loaded: "
                f"{type(error).__name__}: {error}",
                file=sys.stderr,
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llamafleet",
        description="Run one llama.cpp model across Termux phones and Linux hosts.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    _register_plugins(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        # Flush here, inside the try: a reader that left (`| head -1`) is then met now, not
        # at interpreter exit where it would print "Exception ignored ... BrokenPipeError".
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _reader_left()


def _reader_left() -> int:
    """The reader of our output closed it (`llamafleet plan --json | head -1`): stop quietly.

    As Python's documentation advises for SIGPIPE (library/signal.html, "Note on SIGPIPE"):
    point stdout at /dev/null so that the flush at exit cannot fail again, and exit 1 (what
    Python itself does on EPIPE) rather than restoring SIGPIPE's default, which would also
    kill the process in the middle of unrelated writes (to a socket, a child's pipe).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


if __name__ == "__main__":
    sys.exit(main())
