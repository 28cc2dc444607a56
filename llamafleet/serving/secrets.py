"""Secrets kept on the controller: the API key and the tunnel key pair.

They live in `.llamafleet/secrets/` beside the inventory being deployed (mode 700, files 600),
are generated once and reused, so a second deploy changes nothing. The API key is printed once,
when it is generated; it is never written to a log or a world-readable file.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path


def secrets_dir() -> Path:
    configured = os.environ.get("LLAMAFLEET_SECRETS")
    path = Path(configured) if configured else Path.cwd() / ".llamafleet" / "secrets"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def api_key_file() -> Path:
    """The llama-server API key file, generated on first use (printed once, then only read)."""
    path = secrets_dir() / "api-key"
    if not path.exists():
        key = secrets.token_urlsafe(32)
        _write_private(path, key + "\n")
        print(f"llamafleet: generated the llama-server API key (kept in {path}, mode 600): {key}")
    return path


def api_key() -> str:
    return api_key_file().read_text().strip()


def tunnel_key() -> tuple[Path, str]:
    """The SSH key pair the master's tunnels use: (private key path, public key line)."""
    private = secrets_dir() / "tunnel_ed25519"
    if not private.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "llamafleet-tunnel", "-f", str(private)],
            check=True,
        )
    private.chmod(0o600)
    return private, private.with_suffix(".pub").read_text().strip()


def existing_tunnel_key() -> str | None:
    """The tunnel public key line if the pair was generated already (never generates one)."""
    public = secrets_dir() / "tunnel_ed25519.pub"
    return public.read_text().strip() if public.exists() else None
