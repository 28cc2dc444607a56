"""pyinfra inventory of the lab on this machine (`llamafleet lab up` first).

    pyinfra -y inventory/lab.py exec -- hostname
    pyinfra -y inventory/lab.py deploy.py

Groups: `termux` (phone1..N, the Termux app user on port 8022) and `linux` (linux1..M, root;
linux1 is the master). Host data (addresses, key, known_hosts, cluster data) comes from the
lab's state: see lab/llamafleet_lab/inventory.py. Reading the state needs root.
"""

from llamafleet_lab import inventory_groups

_groups = inventory_groups()  # raises "the lab is not up ...: run `llamafleet lab up` first"

termux = _groups["termux"]
linux = _groups["linux"]
