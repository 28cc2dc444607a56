"""Rules about who listens where: RPC binds and transports, llama-server's address, ports below
1024 (which an app on Termux, and llamafleet's unprivileged service user on Linux, cannot bind),
and two listeners on one address:port of one machine.

RPC has no authentication and llama-server's port is held to `api_allowed_sources` by the
firewall alone: a listener beyond the cluster without a firewall needs an explicit opt-in
(`rpc_allow_insecure`, `llama_server_allow_insecure`).
"""

from __future__ import annotations

from llamafleet.inventory_data import InventoryHost
from llamafleet.plan.addresses import cluster_address_of, host_port, is_loopback, is_wildcard
from llamafleet.plan.decide import effective_bind, effective_transport, server_address_of
from llamafleet.plan.ports import choose_ports
from llamafleet.validate.findings import Findings
from llamafleet.validate.host_rules import TERMUX_LOWEST_PORT


class _Listeners:
    """Ports that will be listened on, per machine (a machine = a cluster address), to find
    two listeners on one address:port. A wildcard address collides with every address."""

    def __init__(self, findings: Findings) -> None:
        self.findings = findings
        self.taken: dict[tuple[str, int], list[tuple[str, str]]] = {}

    def add(self, host: InventoryHost, key: str, address: str, port: int, label: str,
            machine_of: InventoryHost | None = None) -> None:
        owner = machine_of or host
        machine = cluster_address_of(owner.name, self.findings.settings(owner))
        address = "*" if is_wildcard(address) else address
        for other_address, other_label in self.taken.get((machine, port), []):
            if "*" in (address, other_address) or address == other_address:
                shown = host_port(other_address if address == "*" else address, port)
                self.findings.report(host.name, key, f"{label} on {shown} clashes with {other_label} "
                                     f"(same machine {machine})")
                return
        self.taken.setdefault((machine, port), []).append((address, label))


def check_privileged_port(findings: Findings, host: InventoryHost, key: str, port: int, what: str,
                          machine: InventoryHost | None = None) -> bool:
    """A port below 1024 takes root to bind: a phone has none, and a Linux host runs its
    services as the unprivileged service_user unless that is root. `machine` is where the
    listener runs (the master, for a tunnel), `host` whose key sets the port. False when refused."""
    machine = machine or host
    if port >= TERMUX_LOWEST_PORT:
        return True
    if machine.is_termux:
        findings.report(host.name, key, f"port {port} is below 1024: Termux has no root to bind it")
        return False
    user = findings.settings(machine).service_user
    if user == "root":
        return True
    on = "" if machine is host else f" on {machine.name}"
    findings.report(host.name, key, f"port {port} is below 1024: {what}{on} runs as the unprivileged "
                    f"service_user {user!r}, which cannot bind it; use a port from 1024 (a reverse proxy "
                    "can serve 80 or 443)")
    return False


def check_bind(findings: Findings, host: InventoryHost, master: InventoryHost | None,
               transport: str, bind: str) -> None:
    settings = findings.settings(host)
    insecure_ok = settings.rpc_allow_insecure
    bind_key = "rpc_bind" if settings.rpc_bind else "rpc_transport"
    advice = ("keep the default: rpc_transport 'tunnel' with RPC bound to 127.0.0.1, "
              "or set rpc_allow_insecure = True")
    if host.is_termux and not is_loopback(bind) and not insecure_ok:
        what = "every network" if is_wildcard(bind) else bind
        findings.report(host.name, bind_key, f"RPC (no authentication) would listen on {what} of a "
                        f"phone that cannot firewall; {advice}")
    elif is_wildcard(bind) and not settings.firewall_enabled and not insecure_ok:
        findings.report(host.name, "rpc_bind", "0.0.0.0 with firewall_enabled = False exposes RPC "
                        "(no authentication) to every network; enable the firewall, bind the cluster "
                        "address or set rpc_allow_insecure = True")
    if transport == "direct" and is_loopback(bind) and master is not None:
        master_machine = cluster_address_of(master.name, findings.settings(master))
        if master_machine != cluster_address_of(host.name, settings):
            findings.report(host.name, bind_key, f"direct transport with loopback bind {bind}: "
                            f"{master.name} cannot reach it; bind the cluster address or use 'tunnel'")


def check_api_exposure(findings: Findings, master: InventoryHost) -> None:
    """llama-server beyond the cluster (a wildcard or another address than the master's own)
    where nothing holds its port to api_allowed_sources: a phone, or a firewall turned off."""
    settings = findings.settings(master)
    bound = settings.llama_server_host
    own = {cluster_address_of(master.name, settings), settings.ssh_hostname}
    if not bound or is_loopback(bound) or bound in own or settings.llama_server_allow_insecure:
        return
    if master.is_termux:
        why = "of a phone that cannot firewall"
    elif not settings.firewall_enabled:
        why = "with firewall_enabled = False"
    else:
        return  # the firewall admits only api_allowed_sources to the port
    what = "every network" if is_wildcard(bound) else bound
    findings.report(master.name, "llama_server_host", f"llama-server would listen on {what} {why}: "
                    "nothing holds its port to api_allowed_sources; leave llama_server_host unset (the "
                    "cluster address), enable the firewall, or set llama_server_allow_insecure = True")


def check_listeners(findings: Findings, hosts: list[InventoryHost], master: InventoryHost | None,
                    workers: list[InventoryHost]) -> None:
    """Bind/transport security, Termux ports, and port clashes across the cluster."""
    listeners = _Listeners(findings)
    sshd_seen: set[tuple[str, int]] = set()
    for host in hosts:
        port = findings.settings(host).ssh_port or 22
        machine = cluster_address_of(host.name, findings.settings(host))
        # "@local", "@docker/..." hosts have no sshd; two inventory names for one machine
        # share its sshd.
        if not host.name.startswith("@") and (machine, port) not in sshd_seen:
            sshd_seen.add((machine, port))
            listeners.add(host, "ssh_port", "*", port, f"{host.name}'s sshd")
    if master is not None:
        api_host, api_port = server_address_of(master.name, findings.settings(master))
        if not findings.is_bad(master, "llama_server_port"):
            listeners.add(master, "llama_server_port", api_host, api_port,
                          f"{master.name}'s llama-server")
            check_privileged_port(findings, master, "llama_server_port", api_port, "llama-server")
        check_api_exposure(findings, master)
    # Ports as a first deploy gives them (offline: no worker's recorded port is known), from the
    # plan's own rule; hosts whose port keys were refused already take no part.
    sound = [host for host in workers if not findings.is_bad(host, "rpc_port", "rpc_port_base")]
    ports, refused = choose_ports((host.name, findings.settings(host), None) for host in sound)
    for refusal in refused:
        findings.report(refusal.host, refusal.key, refusal.message)
    for host in workers:
        settings = findings.settings(host)
        platform = "termux" if host.is_termux else "linux"
        transport = effective_transport(settings, platform)
        address = cluster_address_of(host.name, settings)
        bind = effective_bind(settings, transport, address)
        port_key = "rpc_port" if settings.rpc_port is not None else "rpc_port_base"
        check_bind(findings, host, master, transport, bind)
        if host.name not in ports:
            continue  # a port already reported as malformed, or none left
        port = ports[host.name].port
        allowed = check_privileged_port(findings, host, port_key, port, "rpc-server")
        listeners.add(host, port_key, bind, port, f"{host.name}'s RPC server")
        if transport == "tunnel" and master is not None:
            if allowed:  # the master's tunnel listens on the same port number, as its own user
                check_privileged_port(findings, host, port_key, port, f"the tunnel to {host.name}", machine=master)
            listeners.add(host, port_key, "127.0.0.1", port,
                          f"{master.name}'s tunnel to {host.name}", machine_of=master)
