"""Linux network settings: the sysctl drop-in and the firewall. Termux has no root: skipped there.

Firewall policy (the plan's, llamafleet.plan.firewall): a worker's RPC port accepts the master
only (llama.cpp RPC has no authentication); the master's API port accepts `api_allowed_sources`
and the master itself. Tunnelled workers listen on 127.0.0.1 and need no rule. SSH and
everything else is left alone. The rules go where the host keeps its firewall: llamafleet's own
iptables chain or nftables table, or, on a ufw or firewalld host, rules made with that tool.
"""

from pyinfra import host, logger
from pyinfra.operations import files, server

from llamafleet.serving import cluster
from llamafleet.serving.firewall import iptables_chain, nftables_table
from llamafleet.serving.firewall_firewalld import firewalld_rich_rules
from llamafleet.serving.firewall_retire import retire_other_backends
from llamafleet.serving.firewall_ufw import ufw_rules
from llamafleet.serving.netsettings import NET_SETTINGS, SYSCTL_DROPIN, SettableSysctls
from llamafleet.templates import template_path

me = cluster.this_host()

if me.platform == "termux":
    logger.info(f"{host.name}: sysctl and firewall skipped: Termux has no root (RPC goes through the SSH tunnel)")
else:
    if cluster.settings().sysctl_enabled:
        files.template(
            name="sysctl drop-in",
            src=template_path("etc/sysctl.d/90-llamafleet.conf.j2"),
            dest=SYSCTL_DROPIN,
            settings=NET_SETTINGS,
        )
        # Only keys settable here: in a network namespace or container some net.core keys
        # belong to the whole machine (rmem_max, netdev_max_backlog) and are read-only or absent.
        settable = host.get_fact(SettableSysctls, keys=[setting.key for setting in NET_SETTINGS])
        for setting in NET_SETTINGS:
            if setting.key in settable:
                server.sysctl(name=f"sysctl {setting.key}", key=setting.key, value=setting.value)
            else:
                logger.info(f"{host.name}: sysctl {setting.key} is not settable here (kept in the drop-in for boot)")

    if me.firewall:
        backend = cluster.firewall_backend(host, me)
        if backend == "iptables":
            iptables_chain(name="Firewall (iptables chain LLAMAFLEET)", policy=me.firewall.policy)
        elif backend == "nftables":
            nftables_table(name="Firewall (nftables table llamafleet)", policy=me.firewall.policy)
        elif backend == "ufw":
            ufw_rules(name="Firewall (ufw rules commented llamafleet)", policy=me.firewall.policy)
        elif backend == "firewalld":
            firewalld_rich_rules(name="Firewall (firewalld rich rules, default zone)", policy=me.firewall.policy)
        else:
            raise ValueError(
                f"{host.name}: firewall_backend: no firewalld, ufw, iptables or nft found on the host: install "
                "one of them, or set firewall_enabled = False to manage the firewall yourself"
            )
        # After the new rules are in place, so the ports are never open in between: what an
        # earlier deploy left in another backend (the host moved to ufw or firewalld, or back).
        retire_other_backends(name="Firewall: retire llamafleet's rules in other backends", keep=backend)
