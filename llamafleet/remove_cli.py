"""`llamafleet remove INVENTORY [--limit HOST ...] [--dry]`: undo what the deploy put on hosts.

The removal is a pyinfra deploy of its own, remove.py beside deploy.py in the checkout, so this
command runs exactly what a user runs by hand from the checkout:

    pyinfra -y INVENTORY remove.py [--limit HOST ...]      (--dry instead of -y: show, change nothing)

It runs pyinfra in llamafleet's own Python (`python -m pyinfra`), in the checkout (where
remove.py, its tasks/ and group_data/ are), with the inventory's absolute path, so that the
secrets beside the inventory are found from any directory.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from llamafleet.inventory_data import REPO_GROUP_DATA

# The checkout that holds deploy.py, remove.py and group_data/ (llamafleet is installed from it).
CHECKOUT = REPO_GROUP_DATA.parent
REMOVE_DEPLOY = "remove.py"


class RemoveError(Exception):
    """The command cannot be run as asked (said before any host is touched)."""


def pyinfra_command(inventory: str, limit: list[str] | None = None, dry: bool = False,
                    checkout: Path | None = None) -> tuple[list[str], Path]:
    """The argv that runs remove.py on the inventory's hosts, and the directory to run it in
    (`checkout`, default the one llamafleet is installed from)."""
    checkout = checkout or CHECKOUT
    path = Path(inventory).expanduser()
    if not path.is_file():
        raise RemoveError(f"{inventory}: no such inventory file")
    if not (checkout / REMOVE_DEPLOY).is_file():
        raise RemoveError(f"{checkout / REMOVE_DEPLOY} not found: llamafleet remove runs the checkout's "
                          "remove.py; install llamafleet editable from its checkout (see README)")
    # --dry without -y: pyinfra prints the changes it detected only when it is not told "yes".
    argv = [sys.executable, "-m", "pyinfra", *(["--dry"] if dry else ["-y"]), str(path.resolve()), REMOVE_DEPLOY]
    for name in limit or ():
        argv += ["--limit", name]
    return argv, checkout


def _cmd_remove(args: argparse.Namespace) -> int:
    try:
        argv, cwd = pyinfra_command(args.inventory, args.limit, args.dry)
    except RemoveError as error:
        print(f"llamafleet remove: {error}", file=sys.stderr)
        return 2
    return subprocess.call(argv, cwd=cwd)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "remove",
        help="remove llamafleet from hosts: services, boot script, wake lock, tunnel key, firewall "
             "rules, sysctl drop-in, service user, base directory (packages stay)",
        description="Undo what the deploy put on the hosts, and nothing else; a second run changes "
                    "nothing. Runs `pyinfra -y INVENTORY remove.py` from the checkout.",
    )
    parser.add_argument("inventory", help="the pyinfra inventory the hosts were deployed with")
    parser.add_argument("--limit", action="append", metavar="HOST",
                        help="only this host or group (repeat for more): remove one device from a cluster")
    parser.add_argument("--dry", action="store_true", help="show what would be removed, change nothing")
    parser.set_defaults(func=_cmd_remove)
