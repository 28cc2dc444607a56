"""Stop, disable and remove llamafleet's services (llama-rpc, llama-server, llama-tunnel-*) and
their logs, under every manager the platform has: a host may have moved from runit to systemd.

First, so that nothing restarts what the next steps take away (a service's prestart would take
the wake lock again or restore the firewall rules).
"""

import posixpath

from pyinfra import host

from llamafleet.layout import device_platform, platform_name
from llamafleet.serving.removal import directory_removed, services_removed, termux_service_logs_removed
from llamafleet.serving.services import layout_for

if platform_name(host) == "termux":
    prefix = device_platform(host)["prefix"]
    services_removed(name="llamafleet's services (termux-services)", manager="termux-services", prefix=prefix)
    termux_service_logs_removed(name="Their logs ($PREFIX/var/log/sv)", prefix=prefix)
else:
    services_removed(name="llamafleet's services (runit)", manager="runit")
    services_removed(name="llamafleet's services (systemd)", manager="systemd")
    # runit's svlogd kept them in a directory named after llamafleet; systemd's are journald's.
    logs = posixpath.dirname(layout_for("runit", "llama-rpc").log_dir)
    directory_removed(name=f"Their logs ({logs})", path=logs)
