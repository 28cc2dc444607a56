"""Every worker is done, its restart on a new build included, before the master's steps begin.

llama.cpp's RPC protocol version must match between llama-server and each ggml-rpc-server: a
master restarted on a new build while a worker still runs the old one cannot use that worker.
pyinfra orders the two task files' operations only per host (llamafleet.operations.order), so
this step, which every host runs, is what holds the master back until the workers restarted.
"""

from llamafleet.operations import order

order.all_hosts_reach(
    name="Every worker done before the master starts (RPC versions must match)",
    point="every worker's steps are done; the master's start after this",
)
