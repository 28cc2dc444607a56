"""Supervised services: termux-services (runit) on Termux, runit or systemd on Linux.

A service is written from templates (run script, log script or unit), enabled, and restarted
only when its definition changed or the build task installed a new binary; otherwise noop.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Callable
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, operation
from pyinfra.operations import files, server, systemd

from llamafleet.templates import template_path
MANAGERS = ("termux-services", "runit", "systemd")


@dataclass
class Service:
    """What to run and what it needs before it starts."""

    name: str
    description: str
    argv: list[str]
    env: list[tuple[str, str]] = field(default_factory=list)
    # Called at execution time: True when the service must restart although its definition did
    # not change (a new binary was installed).
    restart_if: Callable[[], bool] | None = None
    writable: list[str] = field(default_factory=list)
    # Shell lines run before the service starts, every time (firewall restore, wake lock). On
    # Linux they run as root (the firewall needs it); the service itself runs as `user`.
    prestart: list[str] = field(default_factory=list)
    # Who the service runs as (the plan's service_user and service_group); None: whoever runs
    # the supervisor, as on Termux, where every process is the app's own user.
    user: str | None = None
    group: str | None = None
    # The only capabilities a systemd unit keeps (none unless it listens below port 1024, which
    # `llamafleet check` allows to root alone); runit's root keeps all of root's anyway.
    capabilities: list[str] = field(default_factory=list)
    # Lift the locked-memory limit (llama-server --load-mode ...mlock): an unprivileged user may
    # lock only what RLIMIT_MEMLOCK allows, root could lock any amount.
    memlock: bool = False

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


@dataclass(frozen=True)
class ServiceLayout:
    """Where one service manager keeps a service's definition and logs on a device."""

    manager: str
    definition_dir: str
    log_dir: str
    shell: str
    bash: str
    enabled_link: str | None = None
    svdir: str | None = None


def definitions_root(manager: str, prefix: str | None = None) -> str:
    """The directory holding every service definition of `manager` on a device."""
    if manager == "termux-services":
        return f"{prefix}/var/service"  # termux-services' runsvdir scans it
    if manager == "runit":
        return "/etc/sv"  # Debian's runit: enabled by a link in /etc/service
    if manager == "systemd":
        return "/etc/systemd/system"
    raise ValueError(f"unknown service manager {manager!r} (one of {', '.join(MANAGERS)})")


def layout_for(manager: str, name: str, prefix: str | None = None) -> ServiceLayout:
    root = definitions_root(manager, prefix)
    if manager == "termux-services":
        # termux-services' loggers write $PREFIX/var/log/sv; its runsvdir scans the root itself.
        return ServiceLayout(
            manager=manager,
            definition_dir=f"{root}/{name}",
            log_dir=f"{prefix}/var/log/sv/{name}",
            shell=f"{prefix}/bin/sh",
            bash=f"{prefix}/bin/bash",
            svdir=root,
        )
    if manager == "runit":
        return ServiceLayout(
            manager=manager,
            definition_dir=f"{root}/{name}",
            log_dir=f"/var/log/llamafleet/{name}",
            shell="/bin/sh",
            bash="/bin/bash",
            enabled_link=f"/etc/service/{name}",
            svdir="/etc/service",
        )
    return ServiceLayout(
        manager=manager,
        definition_dir=f"{root}/llamafleet-{name}.service",
        log_dir="journald",
        shell="/bin/sh",
        bash="/bin/bash",
    )


class RunitService(FactBase):
    """
    The state runit reports for one service: "run", "down", "finish", or None when runsv does
    not supervise it (yet).

    .. code:: python

        "run"
    """

    def command(self, svdir: str, service: str) -> str:
        return f"SVDIR={shlex.quote(svdir)} sv status {shlex.quote(service)} 2>/dev/null || true"

    def process(self, output):
        line = "".join(output).strip()
        state = line.split(":", 1)[0] if line else ""
        return state if state in ("run", "down", "finish") else None


@operation()
def runit_running(svdir: str, service: str, wait_seconds: int = 15):
    """
    Make runit run the service: `sv up` when it is down or not yet picked up by runsvdir.

    + svdir: the directory runsvdir scans
    + service: the service's directory name
    + wait_seconds: how long to wait for runsvdir to notice a new service (it scans every 5 s)
    """
    if host.get_fact(RunitService, svdir=svdir, service=service) == "run":
        host.noop(f"service {service} is running")
        return
    script = (
        f"export SVDIR={shlex.quote(svdir)}; i=0; "
        # termux-services starts runsvdir from the shell profile, which SSH commands skip.
        "pgrep -x runsvdir >/dev/null 2>&1 || { command -v service-daemon >/dev/null 2>&1 && service-daemon start; }; "
        f"until sv status {shlex.quote(service)} >/dev/null 2>&1; do "
        f"[ $i -ge {wait_seconds} ] && {{ echo 'runsvdir does not supervise {service}: is runsvdir running on {svdir}?' >&2; exit 1; }}; "
        f"sleep 1; i=$((i+1)); done; sv up {shlex.quote(service)}"
    )
    yield StringCommand("sh", "-c", QuoteString(script))


class ManagedServices(FactBase):
    """
    Names of the services llamafleet defined under one manager whose names match a glob
    (e.g. "llama-tunnel-*"), so that ones no longer planned can be retired.

    .. code:: python

        ["llama-tunnel-phone1", "llama-tunnel-phone2"]
    """

    @staticmethod
    def default() -> list:
        # No output is no service (pyinfra hands process() nothing and returns default()).
        return []

    def command(self, manager: str, name_glob: str, prefix: str | None = None) -> str:
        root = shlex.quote(definitions_root(manager, prefix))
        if manager == "systemd":
            return f"for f in {root}/llamafleet-{name_glob}.service; do [ -f \"$f\" ] && echo \"$f\"; done; true"
        return f"for d in {root}/{name_glob}; do [ -d \"$d\" ] && echo \"$d\"; done; true"

    def process(self, output):
        names = []
        for line in output:
            name = Path(line.strip()).name
            if name.startswith("llamafleet-") and name.endswith(".service"):
                name = name[len("llamafleet-"):-len(".service")]
            if name:
                names.append(name)
        return sorted(names)


def retire_commands(layout: ServiceLayout, name: str) -> list[str]:
    """Stop a service for good and remove its definition (and its enabling link)."""
    if layout.manager == "systemd":
        unit = f"llamafleet-{name}.service"
        return [
            f"systemctl disable --now {shlex.quote(unit)} || true",
            f"rm -f {shlex.quote(layout.definition_dir)}",
            "systemctl daemon-reload",
        ]
    directory = shlex.quote(layout.definition_dir)
    commands = []
    if layout.enabled_link:
        # Unlinked first, so runsvdir does not start a fresh runsv for it.
        commands.append(f"rm -f {shlex.quote(layout.enabled_link)}")
    commands += [
        # A down file keeps the service down if runsvdir starts runsv again before the removal.
        f"touch {directory}/down",
        f"sv force-stop {directory} >/dev/null 2>&1 || true",
    ]
    if not layout.enabled_link:
        # termux-services' runsvdir scans the definitions themselves: renamed to a dot name,
        # which runsvdir skips, the service is not started again by its next scan.
        hidden = shlex.quote(f"{layout.definition_dir.rsplit('/', 1)[0]}/.{name}.removed")
        commands.append(f"rm -rf {hidden}; mv {directory} {hidden}")
        directory = hidden
    commands += [
        f"sv exit {directory} >/dev/null 2>&1 || true",
        # runsv exits after its logger has (asynchronously): wait, bounded, until it has, so
        # nothing of the service runs when this ends. `sv status` fails once runsv is gone.
        f"i=0; while sv status {directory} >/dev/null 2>&1 && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done",
        f"rm -rf {directory}",
    ]
    return commands


@operation()
def services_retired(name_glob: str, keep: list[str], manager: str, prefix: str | None = None):
    """
    Stop and remove the services matching name_glob that are not in keep (e.g. the tunnel of a
    worker that now talks to the master directly, or left the cluster).

    + name_glob: shell glob of the service names this call owns
    + keep: the names that stay
    + manager: termux-services, runit or systemd
    + prefix: Termux's $PREFIX (termux-services only)
    """
    installed = host.get_fact(ManagedServices, manager=manager, name_glob=name_glob, prefix=prefix)
    stale = [name for name in installed if name not in set(keep)]
    if not stale:
        host.noop(f"no {name_glob} service to retire")
        return
    for name in stale:
        yield from retire_commands(layout_for(manager, name, prefix), name)


def definition_context(service: Service, layout: ServiceLayout) -> dict:
    """What the run script, log script and unit templates are rendered with."""
    return dict(
        description=service.description,
        manager=layout.manager,
        shell=layout.shell,
        log_dir=layout.log_dir,
        env=service.env,
        command=service.command,
        prestart=service.prestart,
        # Not `user`/`group`: files.template would make those the owner of the file it writes
        # (a run script its service user could change would run as root).
        service_user=service.user,
        service_group=service.group,
        memlock=service.memlock,
        # systemd only:
        writable=" ".join(f"-{path}" for path in service.writable) or "-/tmp",
        capabilities=" ".join(service.capabilities),
    )


def supervise(service: Service, manager: str, prefix: str | None = None, _sudo: bool = False) -> None:
    """Write, enable and (re)start one service under `manager`, changing only what differs."""
    layout = layout_for(manager, service.name, prefix)
    context = definition_context(service, layout)
    if manager == "systemd":
        unit = files.template(
            name=f"systemd unit for {service.name}",
            src=template_path("systemd/service.j2"),
            dest=layout.definition_dir,
            **context,
        )
        unit_name = f"llamafleet-{service.name}.service"
        systemd.service(
            name=f"{service.name}: restart (unit or binary changed)",
            service=unit_name,
            daemon_reload=True,
            restarted=True,
            _if=lambda: unit.did_change() or bool(service.restart_if and service.restart_if()),
        )
        systemd.service(name=f"{service.name}: enabled and running", service=unit_name, running=True, enabled=True)
        return

    log_run = files.template(
        name=f"{service.name}: log script",
        src=template_path("runit/log-run.j2"),
        dest=f"{layout.definition_dir}/log/run",
        mode="755",
        create_remote_dir=True,
        **context,
    )
    run = files.template(
        name=f"{service.name}: run script",
        src=template_path("runit/run.j2"),
        dest=f"{layout.definition_dir}/run",
        mode="755",
        **context,
    )
    if layout.enabled_link:
        files.link(
            name=f"{service.name}: enabled",
            path=layout.enabled_link,
            target=layout.definition_dir,
        )
    svdir = shlex.quote(layout.svdir)
    server.shell(
        name=f"{service.name}: restart (definition or binary changed)",
        commands=[f"SVDIR={svdir} sv restart {shlex.quote(service.name)} || true"],
        _if=lambda: run.did_change() or bool(service.restart_if and service.restart_if()),
    )
    # runsv runs the logger apart from the service: `sv restart NAME` leaves the old svlogd (and
    # its user) running, so a new log script takes effect only once the logger restarts.
    server.shell(
        name=f"{service.name}: restart its logger (log script changed)",
        commands=[f"SVDIR={svdir} sv restart {shlex.quote(service.name + '/log')} || true"],
        _if=log_run.did_change,
    )
    runit_running(name=f"{service.name}: running", svdir=layout.svdir, service=service.name)
