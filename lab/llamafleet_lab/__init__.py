"""The lab: a small cluster of real SSH hosts on this one machine, to prove llamafleet on.

Phones (simulated Termux, app user on port 8022) and Linux hosts (root on port 22) each live
in their own network, mount, UTS and PID namespaces on a bridge (198.18.0.0/24), plus an
`outsider` host that is not in the inventory. CLI: `llamafleet lab up|status|down|reboot|exec`.

Python API (for tests and other modules):

    from llamafleet_lab import up, down, load_state, lab_exec, reboot, status
    state = load_state()                      # LabState; raises LabNotUp when not up
    lab_exec("phone1", "pkg install -y jq")   # CompletedProcess, as the host's user
    reboot("phone1")                          # returns the host's boot status
"""

from llamafleet_lab.execute import lab_exec
from llamafleet_lab.inventory import inventory_groups
from llamafleet_lab.hosts_running import reboot, status
from llamafleet_lab.lifecycle import down, up
from llamafleet_lab.state import LabError, LabNotUp, LabState, load_state
from llamafleet_lab.topology import LabHost, state_dir

__all__ = [
    "LabError",
    "LabHost",
    "LabNotUp",
    "LabState",
    "down",
    "inventory_groups",
    "lab_exec",
    "load_state",
    "reboot",
    "state_dir",
    "status",
    "up",
]
