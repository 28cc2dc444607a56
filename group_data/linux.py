"""Linux hosts (inventory group `linux`): what differs from group_data/all.py."""

# Linux workers bind their cluster address and get firewall rules admitting only the master.
rpc_transport = "direct"
