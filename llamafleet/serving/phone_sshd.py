"""A tunnelled phone's sshd lets go of a master that vanished: a drop-in with client-alive checks.

Termux's openssh reads `$PREFIX/etc/ssh/sshd_config`, which starts with `Include
$PREFIX/etc/ssh/sshd_config.d/*.conf` (termux-packages packages/openssh/sshd_config.patch), and
writes its pid to `$PREFIX/var/run/sshd.pid`. sshd reads its configuration only when it starts:
on SIGHUP the listener executes itself again (Termux's sshd.c.patch gives it its absolute path
for that) and the sessions it already has keep running, the deploy's own among them.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import FactBase, operation

# sshd asks the client every INTERVAL seconds and ends the session after COUNT_MAX
# unanswered asks: 15 s, within the time the master's tunnel takes to notice the same loss.
CLIENT_ALIVE_INTERVAL = 5
CLIENT_ALIVE_COUNT_MAX = 3
DROP_IN_TEMPLATE = "termux/sshd-llamafleet.conf.j2"


def drop_in_dir(prefix: str) -> str:
    return f"{prefix}/etc/ssh/sshd_config.d"


def drop_in_path(prefix: str) -> str:
    return f"{drop_in_dir(prefix)}/llamafleet.conf"


def pid_file(prefix: str) -> str:
    return f"{prefix}/var/run/sshd.pid"


class SshdReadsDropIns(FactBase):
    """Whether the phone's sshd_config includes $PREFIX/etc/ssh/sshd_config.d/*.conf (Termux's
    openssh has since 9.9; an older or hand-edited one may not): True or False."""

    def command(self, prefix: str) -> str:
        return (f"grep -qiE '^[[:space:]]*Include[[:space:]].*sshd_config\\.d' {prefix}/etc/ssh/sshd_config "
                "2>/dev/null && echo yes || echo no")

    def process(self, output):
        return "".join(output).strip() == "yes"


def warn_without_include(prefix: str) -> None:
    logger.warning(
        f"{host.name}: {prefix}/etc/ssh/sshd_config includes no sshd_config.d/*.conf, so the drop-in "
        f"{drop_in_path(prefix)} has no effect: add `ClientAliveInterval {CLIENT_ALIVE_INTERVAL}` and "
        f"`ClientAliveCountMax {CLIENT_ALIVE_COUNT_MAX}` at its top, else after a Wi-Fi drop this phone "
        "serves a dead tunnel and the master cannot take it back")


@operation()
def sshd_reloaded(prefix: str):
    """SIGHUP to the sshd listener named by its pid file (checked to be an sshd), so it reads
    its configuration again. No sshd running: the new settings apply when it starts."""
    pids = pid_file(prefix)
    yield (f'p=$(cat {pids} 2>/dev/null); if [ -n "$p" ] && grep -qa sshd /proc/"$p"/cmdline 2>/dev/null; '
           f'then kill -HUP "$p"; else echo "llamafleet: no sshd running by {pids}: the settings apply when it starts"; fi')
