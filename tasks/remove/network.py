"""Linux network settings: llamafleet's firewall rules in every backend, and the sysctl drop-in.
Termux has neither (no root).

The rules go after the services are stopped, so a protected port is never open while something
listens on it. SSH and every rule not llamafleet's stay as they are (firewall_retire). The sysctl
drop-in goes; the values it set stay in force until the next boot, when the system's own apply:
`sysctl --system` would not restore them now (it re-applies the files, and a key that no other
file sets keeps llamafleet's value), and it would re-apply every other file's keys unasked.
"""

import posixpath

from pyinfra import host
from pyinfra.operations import files

from llamafleet.layout import platform_name
from llamafleet.serving.firewall_firewalld import RECORD_FILE
from llamafleet.serving.firewall_retire import retire_other_backends
from llamafleet.serving.netsettings import SYSCTL_DROPIN
from llamafleet.serving.removal import empty_directory_removed

if platform_name(host) == "linux":
    retire_other_backends(name="Firewall: llamafleet's rules in every backend", keep=None)
    # It holds only the firewalld record, removed just before unless firewalld is not running
    # (then the record stays, for a later run to retire the rules it names).
    empty_directory_removed(name=f"{posixpath.dirname(RECORD_FILE)} once empty", path=posixpath.dirname(RECORD_FILE))
    files.file(name="sysctl drop-in", path=SYSCTL_DROPIN, present=False)
