"""Secrets kept on the controller: the API key and the tunnel key pair.

They live in `.llamafleet/secrets/` beside the inventory being deployed (mode 700, files 600),
are generated once and reused, so a second deploy changes nothing. The API key is printed once,
when it is generated; it is never written to a log or a world-readable file.

"Beside the inventory" means the inventory file's own directory: `inventory/mine.py` keeps its
secrets in `inventory/.llamafleet/secrets/`, whatever directory a command runs from. A deploy
finds its inventory file on pyinfra's command line (llamafleet.inventory_data.
deployed_inventory_path); `llamafleet complete` and `verify` take it as their argument.
`$LLAMAFLEET_SECRETS` names another directory for every command. Without either (pyinfra run
on hosts named on its command line, no inventory file), the directory is `.llamafleet/secrets/`
in the current directory.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from pyinfra.api.exceptions import OperationValueError

SECRETS_ENV = "LLAMAFLEET_SECRETS"
SECRETS_SUBDIR = Path(".llamafleet") / "secrets"


class SecretsElsewhere(OperationValueError):
    """Secrets are still where llamafleet kept them before they followed the inventory: going on
    would generate a new API key and tunnel key pair unasked. An OperationValueError: pyinfra's
    CLI prints it as one line and stops before running anything."""


def secrets_location(inventory: str | os.PathLike | None = None) -> Path:
    """Where the secrets of `inventory` are (nothing is created): $LLAMAFLEET_SECRETS, else
    `.llamafleet/secrets/` in the inventory file's directory. Without an inventory, the one of
    the pyinfra deploy running, else the current directory."""
    configured = os.environ.get(SECRETS_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    if inventory is None:
        from llamafleet.inventory_data import deployed_inventory_path

        inventory = deployed_inventory_path()
    base = Path(inventory).expanduser().resolve().parent if inventory is not None else Path.cwd()
    return base / SECRETS_SUBDIR


def secrets_dir(inventory: str | os.PathLike | None = None) -> Path:
    """The secrets directory of `inventory` (see secrets_location), made private (mode 700).
    Refuses (SecretsElsewhere) to make a new one while the current directory's
    `.llamafleet/secrets/` holds secrets, where earlier versions kept them."""
    path = secrets_location(inventory)
    if not path.exists():
        _refuse_when_left_behind(path)
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _refuse_when_left_behind(new: Path) -> None:
    if os.environ.get(SECRETS_ENV):  # a place of the user's own choosing: nothing moved
        return
    old = Path.cwd() / SECRETS_SUBDIR
    left = sorted(p.name for p in (old.iterdir() if old.is_dir() and old != new else []) if p.is_file())
    if left:
        raise SecretsElsewhere(
            f"secrets: {old} holds {', '.join(left)}, kept there by an earlier llamafleet; they now live "
            f"beside the inventory, in {new}. Move them (mkdir -p {new.parent} && mv {old} {new}) to keep "
            f"the API key and the tunnel key, or set LLAMAFLEET_SECRETS={old}; nothing was generated")


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def api_key_file(inventory: str | os.PathLike | None = None) -> Path:
    """The llama-server API key file, generated on first use (printed once, then only read)."""
    path = secrets_dir(inventory) / "api-key"
    if not path.exists():
        key = secrets.token_urlsafe(32)
        _write_private(path, key + "\n")
        print(f"llamafleet: generated the llama-server API key (kept in {path}, mode 600): {key}")
    return path


def api_key(inventory: str | os.PathLike | None = None) -> str:
    return api_key_file(inventory).read_text().strip()


def tunnel_key(inventory: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The SSH key pair the master's tunnels use: (private key path, public key line)."""
    private = secrets_dir(inventory) / "tunnel_ed25519"
    if not private.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "llamafleet-tunnel", "-f", str(private)],
            check=True,
        )
    private.chmod(0o600)
    public = private.with_suffix(".pub")
    public.chmod(0o600)  # every file in the directory 600, the public half too: nothing to explain
    return private, public.read_text().strip()


def existing_tunnel_key(inventory: str | os.PathLike | None = None) -> str | None:
    """The tunnel public key line if the pair was generated already (never generates one)."""
    public = secrets_location(inventory) / "tunnel_ed25519.pub"
    return public.read_text().strip() if public.exists() else None
