"""Termux phones (inventory group `termux`): what differs from group_data/all.py.

Overrides for one device class go in a file named after its inventory group
(e.g. `group_data/pixel7.py` for a group `pixel7`), one flat key at a time. Declare that group
after `termux` in the inventory: of a host's groups the later one wins.
"""

# Termux ships clang (cc is a link to it); the build class records the compiler's version.
llama_compiler = "clang"

# No root, so no firewall: RPC binds 127.0.0.1 and the master reaches it through SSH tunnels.
rpc_transport = "tunnel"
