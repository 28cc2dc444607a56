"""The master: tunnels to Termux workers, then llama-server with --rpc and -ts from the plan.

The service runs the launcher (llamafleet.serving.launcher): it waits (bounded) for every
worker, serves with the best planned group that answers, and restarts llama-server without a
worker that is lost and with one that answers again.
"""

from pyinfra import host
from pyinfra.operations import files

from llamafleet.layout import device_paths
from llamafleet.serving import chat_template, cluster
from llamafleet.serving.account import (
    listen_capabilities,
    owned_by_service,
    read_by_service,
    secrets_dir_access,
)
from llamafleet.serving.probes import endpoints_reachable, http_healthy
from llamafleet.serving.launcher import LAUNCHER_TEMPLATE, launcher_context
from llamafleet.serving.secrets import api_key_file, tunnel_key
from llamafleet.serving.services import Service, layout_for, services_retired, supervise
from llamafleet.serving.tunnels import SshHostKey, known_hosts_line, tunnel_argv
from llamafleet.templates import template_path

me = cluster.this_host()

if me.role == "master":
    plan = cluster.current_plan()
    settings = cluster.settings()
    platform = cluster.platform_facts(host)
    paths = device_paths(host)
    manager = me.service_manager
    etc = f"{paths.base}/etc"
    tunnelled = [worker for worker in plan.workers() if worker.transport == "tunnel"]

    # Secrets live here: the directory is private (to root and, on Linux, the service user's
    # group) before any of them is uploaded into it.
    private = secrets_dir_access(me)
    files.directory(name="Private directory for secrets", path=etc, user=private.user, group=private.group,
                    mode=private.mode)
    # What the services read there: theirs to read (root's on Linux), not to change.
    readable = read_by_service(me)

    if tunnelled:
        private_key, _ = tunnel_key()
        own = owned_by_service(me)
        files.put(name="Tunnel key", src=str(private_key), dest=f"{etc}/tunnel_ed25519", user=own.user,
                  group=own.group, mode=own.mode)
        lines = []
        for worker in tunnelled:
            target = cluster.inventory_host(worker.name)
            host_key = target.get_fact(SshHostKey)
            if not host_key:
                raise ValueError(f"{worker.name}: rpc_transport: tunnel needs the worker's sshd host key, none found")
            ssh_port = cluster.settings(target).ssh_port or 22
            lines.append(known_hosts_line(worker.cluster_address, ssh_port, host_key))
        known_hosts = f"{etc}/tunnel_known_hosts"
        files.template(
            name="Workers' host keys for the tunnels",
            src=template_path("llamafleet/etc/tunnel_known_hosts.j2"),
            dest=known_hosts,
            user=readable.user,
            group=readable.group,
            mode=readable.mode,
            entries=lines,
        )
        for worker in tunnelled:
            target_settings = cluster.settings(cluster.inventory_host(worker.name))
            supervise(
                Service(
                    name=f"llama-tunnel-{worker.name}",
                    description=f"SSH tunnel 127.0.0.1:{worker.rpc_port} -> {worker.name}:{worker.rpc_port}",
                    argv=tunnel_argv(
                        key_file=f"{etc}/tunnel_ed25519",
                        known_hosts=known_hosts,
                        user=target_settings.ssh_user or "root",
                        address=worker.cluster_address,
                        ssh_port=target_settings.ssh_port or 22,
                        rpc_port=worker.rpc_port,
                    ),
                    user=me.service_user,
                    group=me.service_group,
                    capabilities=listen_capabilities(worker.rpc_port),
                ),
                manager=manager,
                prefix=platform.get("prefix"),
            )

    # A worker switched to direct (or gone) keeps no tunnel behind it.
    services_retired(
        name="Tunnels no longer in the plan",
        name_glob="llama-tunnel-*",
        keep=[f"llama-tunnel-{worker.name}" for worker in tunnelled],
        manager=manager,
        prefix=platform.get("prefix"),
    )

    key_on_device = f"{etc}/api-key"
    key_upload = files.put(name=f"API key (mode {readable.mode})", src=str(api_key_file()), dest=key_on_device,
                           user=readable.user, group=readable.group, mode=readable.mode)

    workers = [(worker.name, *worker.connect.rsplit(":", 1)) for worker in plan.workers()]
    endpoints = [(name, address, int(port)) for name, address, port in workers]
    endpoints_reachable(name="Every worker answers", endpoints=endpoints, timeout=120)

    # A model without its own chat template gets the one the inventory names (see chat_template).
    template_src = chat_template.template_source(settings.llama_chat_template)
    template_args: list[str] = []
    template_upload = None
    if template_src is not None:
        template_on_device = f"{etc}/{chat_template.DEVICE_NAME}"
        shown = read_by_service(me, termux_mode="644")  # not a secret on a phone, where only the app reads it
        template_upload = files.put(name="Chat template", src=str(template_src), dest=template_on_device,
                                    user=shown.user, group=shown.group, mode=shown.mode)
        template_args = ["--chat-template-file", template_on_device]

    server_host, server_port = plan.master.server_host, plan.master.server_port
    argv = [
        f"{paths.bin}/{me.binary}",
        "-m", cluster.model_path(me),
        # --rpc and -ts: the launcher adds those of the group it serves with.
        # "all" offloads every layer to the RPC devices, so the plan's split is what runs; fewer
        # keeps the first layers on this CPU (master_computes, llamafleet.plan.split).
        "-ngl", plan.master.gpu_layers,
        "--load-mode", plan.master.load_mode,
        "--host", server_host,
        "--port", str(server_port),
        "--api-key-file", key_on_device,
        # Prometheus /metrics for `llamafleet status` (tokens/s, queue); like every route but
        # /health it answers only with the API key (llama.cpp tools/server/server-http.cpp).
        "--metrics",
        "-t", str(plan.master.threads),
        "-c", str(settings.llama_server_ctx),
        *template_args,
    ]
    bash = layout_for(manager, "llama-server", platform.get("prefix")).bash
    launcher_path = f"{paths.base}/libexec/llama-server-launch.bash"
    launcher = files.template(
        name="llama-server launcher (the groups of workers it may serve with)",
        src=template_path(LAUNCHER_TEMPLATE),
        dest=launcher_path,
        user=readable.user,
        group=readable.group,
        mode=readable.mode,
        **launcher_context(plan, bash=bash, manager=manager, argv=argv),
    )
    supervise(
        Service(
            name="llama-server",
            description=f"llama-server on {server_host}:{server_port} with {len(endpoints)} RPC workers",
            argv=[bash, launcher_path],
            # llama-server reads its model, key and chat template only at start: a new binary,
            # key or template restarts it; a new model changes the definition (its sha256 is in the environment).
            env=[("LLAMAFLEET_MODEL_SHA256", str(settings.model_sha256).lower())],
            restart_if=lambda: (
                cluster.binaries_changed(host)()
                or launcher.did_change()
                or key_upload.did_change()
                or (template_upload is not None and template_upload.did_change())
            ),
            prestart=cluster.prestart_lines(host, me),
            user=me.service_user,
            group=me.service_group,
            capabilities=listen_capabilities(server_port),
            # root could lock any amount of RAM; the service user only what its limit allows.
            memlock="mlock" in plan.master.load_mode and me.service_user is not None,
        ),
        manager=manager,
        prefix=platform.get("prefix"),
    )
    http_healthy(name="llama-server healthy", url=f"http://{server_host}:{server_port}/health", timeout=300)
