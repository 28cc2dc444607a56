"""The master's tunnel key line in a worker's authorized_keys, and the secrets on the master.

The line is found as the deploy finds it (tasks/workers.py): by the tunnel public key kept beside
the inventory, so only llamafleet's line goes and every key of the user's stays. The master's
secrets (tunnel key, its known hosts, API key) and the chat template are removed by name before
the base directory they live in, so they go even where the base directory is kept.
"""

from pyinfra import host, logger
from pyinfra.operations import files

from llamafleet.layout import device_paths, device_platform
from llamafleet.serving.chat_template import DEVICE_NAME
from llamafleet.serving.secrets import existing_tunnel_key, secrets_location
from llamafleet.serving.tunnels import authorized_key_pattern

authorized_keys = f"{device_platform(host)['home']}/.ssh/authorized_keys"
public_key = existing_tunnel_key()  # never generated just to be removed
if public_key:
    files.line(
        name="Tunnel key no longer accepted",
        path=authorized_keys,
        line=authorized_key_pattern(public_key),
        present=False,
    )
else:
    # No key was ever made (no tunnelled worker), or it was deleted: then a line cannot be told.
    logger.warning(f"{host.name}: no tunnel key in {secrets_location()}: {authorized_keys} is left as it is "
                   "(a line of llamafleet's there ends in llamafleet-tunnel: delete it by hand)")

etc = f"{device_paths(host).base}/etc"
for name, what in (("api-key", "API key"), ("tunnel_ed25519", "Tunnel private key"),
                   ("tunnel_known_hosts", "Tunnels' known hosts"), (DEVICE_NAME, "Chat template")):
    files.file(name=f"{what} ({etc}/{name})", path=f"{etc}/{name}", present=False)
