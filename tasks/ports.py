"""Each worker's RPC port, recorded on it: the next plans, from any controller, keep it while
devices are added to or removed from the inventory (llamafleet.plan.ports).

The record's `since` is carried over from the record already there while the port is the same,
so a second deploy rewrites nothing. A master serves no RPC port: a record left from when it was
a worker goes.
"""

from datetime import datetime, timezone

from pyinfra import host
from pyinfra.operations import files

from llamafleet.layout import device_paths
from llamafleet.serving import cluster
from llamafleet.templates import template_path

me = cluster.this_host()
record = device_paths(host).rpc_port_record

if me.role == "worker":
    files.template(
        name=f"RPC port {me.rpc_port} recorded for later plans",
        src=template_path("llamafleet/etc/rpc-port.j2"),
        dest=record,
        mode="644",
        rpc_port=me.rpc_port,
        rpc_port_base=cluster.settings().rpc_port_base,
        since=me.rpc_port_since or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
else:
    files.file(name="No RPC port record on the master", path=record, present=False)
