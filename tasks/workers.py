"""Supervised rpc-server workers, and on Termux the boot script that brings them back.

Workers run `ggml-rpc-server -H <bind> -p <port> -t <big cores>` under termux-services (Termux),
systemd or runit (Linux, as the unprivileged service user), all as the plan decided them; on a
big.LITTLE device through `taskset -c <big cores>` (llamafleet.serving.pinning). With
`rpc_transport = tunnel` they bind 127.0.0.1 and accept the master's tunnel key for that one
port forward.
"""

from pyinfra import host
from pyinfra.operations import files

from llamafleet.layout import TERMUX_BOOT_SCRIPT, device_paths
from llamafleet.serving import cluster, phone_sshd, wakelock
from llamafleet.serving.pinning import pinned_argv
from llamafleet.serving.account import listen_capabilities
from llamafleet.serving.secrets import existing_tunnel_key, tunnel_key
from llamafleet.serving.services import Service, supervise
from llamafleet.serving.tunnels import authorized_key_line, authorized_key_pattern
from llamafleet.templates import template_path

me = cluster.this_host()
settings = cluster.settings()
platform = cluster.platform_facts(host)
paths = device_paths(host)

if me.role == "worker":
    argv = [f"{paths.bin}/{me.binary}", "-H", me.address, "-p", str(me.rpc_port), "-t", str(me.threads)]
    env = []
    cache = f"{paths.base}/cache"
    if me.rpc_cache:  # rpc_cache, else from the measured link (llamafleet.plan.decide.rpc_cache_of)
        argv.append("-c")
        env.append(("LLAMA_CACHE", cache))
        if me.service_user:
            # rpc-server writes its cache as the service user. A cache an earlier deploy's
            # rpc-server wrote as root is handed over whole (the top directory's owner decides).
            files.directory(
                name="rpc-server's tensor cache, the service user's",
                path=cache,
                user=me.service_user,
                group=me.service_group,
                recursive=True,
            )
    supervise(
        Service(
            name="llama-rpc",
            # No rank here: it is in the service file, and a device removed before this one
            # would change it and restart a worker whose port did not move.
            description=f"ggml-rpc-server, {me.address}:{me.rpc_port}",
            argv=pinned_argv(argv, me.cpu_pin, me.platform, platform.get("prefix")),
            env=env,
            restart_if=cluster.binaries_changed(host),
            writable=[cache],
            prestart=cluster.prestart_lines(host, me),
            user=me.service_user,
            group=me.service_group,
            capabilities=listen_capabilities(me.rpc_port),
        ),
        manager=me.service_manager,
        prefix=platform.get("prefix"),
    )

    authorized_keys = f"{platform['home']}/.ssh/authorized_keys"
    if me.transport == "tunnel":
        _, public_key = tunnel_key()
        files.line(
            name="Tunnel key accepted for the RPC port forward only",
            path=authorized_keys,
            line=authorized_key_pattern(public_key),
            replace=authorized_key_line(public_key, me.rpc_port),
        )
        if me.platform == "termux":
            # This phone's sshd lets go of a vanished master's tunnel within seconds.
            prefix = platform["prefix"]
            files.directory(name="sshd's drop-in directory", path=phone_sshd.drop_in_dir(prefix))
            drop_in = files.template(
                name="sshd: client-alive checks (a vanished master's tunnel ends)",
                src=template_path(phone_sshd.DROP_IN_TEMPLATE),
                dest=phone_sshd.drop_in_path(prefix),
                mode="600",
                interval=phone_sshd.CLIENT_ALIVE_INTERVAL,
                count_max=phone_sshd.CLIENT_ALIVE_COUNT_MAX,
            )
            if not host.get_fact(phone_sshd.SshdReadsDropIns, prefix=prefix):
                phone_sshd.warn_without_include(prefix)
            phone_sshd.sshd_reloaded(name="sshd reads its configuration again", prefix=prefix,
                                     _if=drop_in.did_change)
    elif old_key := existing_tunnel_key():  # never generated just to be removed
        # Direct now: the master's tunnel key has nothing left to forward here.
        files.line(
            name="Tunnel key no longer accepted",
            path=authorized_keys,
            line=authorized_key_pattern(old_key),
            present=False,
        )

    if me.platform == "termux" and settings.termux_boot:
        files.template(
            name="Termux:Boot script (wake lock, wait for network, start services)",
            src=template_path("termux/boot.sh.j2"),
            dest=f"{platform['home']}/{TERMUX_BOOT_SCRIPT}",
            mode="700",
            prefix=platform["prefix"],
            address=me.cluster_address,
            network_wait=settings.termux_boot_network_wait,
            log_file=f"{paths.logs}/boot.log",
            wake_lock=wakelock.take_command(paths.wake_lock_record),
        )
