"""Order between hosts in one deploy: a step every host passes.

pyinfra 3.10 (without `--serial`) runs one operation on every host before the next one. The
order comes from each host's own list of operations, merged into one graph and taken level by
level, ties broken by where the task files call them (pyinfra.api.state.State.get_op_order). An
operation only some hosts run is ordered only against those hosts' earlier operations: a
master with fewer steps before its restart than a worker has before its own can restart first,
although tasks/master.py comes after tasks/workers.py in deploy.py. An operation every host runs
is one step in every host's list: nothing after it starts on any host before everything before
it is done on all of them.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation


@operation()
def all_hosts_reach(point: str):
    """
    Change nothing: a point in the deploy's order that every host passes, so that no operation
    after it starts before every operation before it finished on every host.

    + point: what is done by then (shown as the step's state)

    Call it once, for every host (not under a condition on the host): a host that skips it
    is not held back by it.

    **Example:**

    .. code:: python

        order.all_hosts_reach(name="Workers restarted before the master", point="workers are done")
    """
    host.noop(point)
    yield from ()
