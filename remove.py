"""Remove llamafleet from hosts: undo what deploy.py put on them, and nothing else.

Usage:
    llamafleet remove inventory/mine.py                  # every host of the inventory
    llamafleet remove inventory/mine.py --limit phone3   # one device (see README: Remove llamafleet)
    llamafleet remove inventory/mine.py --dry            # show what would go
    pyinfra -y inventory/mine.py remove.py [--limit phone3]  # the same (pyinfra --dry ...: the same as --dry)

Each step reads what is on the host and removes only llamafleet's traces: a second run changes
nothing. No plan is made and no other host is read, so a device can be removed after it left the
inventory's cluster, and while other hosts are away. Packages the deploy installed stay (you may
use them).
"""

from pyinfra import local

# The services first: nothing restarts what the next steps take away.
local.include("tasks/remove/services.py")

# A phone's Termux:Boot script and the wake lock llamafleet took.
local.include("tasks/remove/phone.py")

# The master's tunnel key line on workers; the secrets and chat template on the master.
local.include("tasks/remove/keys.py")

# Linux: llamafleet's firewall rules in every backend, the sysctl drop-in.
local.include("tasks/remove/network.py")

# Linux: the service user, if llamafleet made it.
local.include("tasks/remove/account.py")

# The base directory, whole, only if llamafleet made it (else the host fails here, saying so).
local.include("tasks/remove/base.py")
