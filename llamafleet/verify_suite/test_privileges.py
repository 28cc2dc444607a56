"""Least privilege: who runs llamafleet's processes, who can read its secrets, and what the
service user can change. The user comes from the plan; what must hold from
verify_suite/privileges.py."""

from __future__ import annotations

import shlex

from llamafleet.verify_suite.oracles import worker_rpc_port
from llamafleet.verify_suite.privileges import (
    PS_COMMAND,
    parse_ps,
    parse_stat_chain,
    privilege_problems,
    readers,
    stat_chain_command,
)


def _expected_user(node) -> str:
    """The plan's service user on Linux; on a phone the app's own user (the SSH user)."""
    return node.planned.service_user or node.host.check_output("id -un").strip()


def _log_root(node) -> str | None:
    """Where runit's loggers write (README): termux-services under $PREFIX, runit under
    /var/log/llamafleet; systemd has journald, no svlogd."""
    if node.service_manager == "termux-services":
        return f"{node.platform['prefix']}/var/log/sv"
    return "/var/log/llamafleet" if node.service_manager == "runit" else None


def test_every_llamafleet_process_runs_as_the_service_user_not_root(node, cluster):
    user = _expected_user(node)
    assert user != "root" or node.settings.service_user_allow_root, f"{node.name}: services planned as root"
    binary = f"{node.paths.bin}/{node.planned.binary}"
    services, wanted = [], [node.planned.binary]
    if node.planned.role == "worker":
        services.append("llama-rpc")
    else:
        services.append("llama-server")
        for worker in [w for w in cluster.plan.workers() if w.transport == "tunnel"]:
            port = worker_rpc_port(cluster.data, worker.name)
            wanted.append(f"tunnel 127.0.0.1:{port}:127.0.0.1:{port}")
            services.append(f"llama-tunnel-{worker.name}")
    log_root = _log_root(node)
    if log_root:
        wanted += [f"svlogd {log_root}/{service}" for service in services]
    listing = node.host.run(PS_COMMAND).stdout
    problems = privilege_problems(parse_ps(listing), wanted, user, binary=binary,
                                  key_file=f"{node.paths.base}/etc/tunnel_ed25519", log_root=log_root)
    assert not problems, f"{node.name}: " + "; ".join(problems) + f"\n{listing}"


def _readers(node, path: str) -> set[str]:
    chain = node.host.run(stat_chain_command(path))
    assert chain.rc == 0, f"{node.name}: cannot stat {path}: {chain.stderr.strip()}"
    if node.is_termux:  # one user, the app's; no getent there
        return readers(parse_stat_chain(chain.stdout))
    return readers(parse_stat_chain(chain.stdout), node.host.check_output("getent passwd"),
                   node.host.check_output("getent group"))


def test_only_root_and_the_service_user_read_the_secrets(master, cluster):
    """The API key (and the tunnel key, the chat template when there is one) is readable by root
    and the user llama-server and the tunnels run as, by nobody else: worked out from the
    modes, owners and group members of the file and every directory above it."""
    user = _expected_user(master)
    etc = f"{master.paths.base}/etc"
    secrets = ["api-key"]
    if any(worker.transport == "tunnel" for worker in cluster.plan.workers()):
        secrets.append("tunnel_ed25519")
    if master.settings.llama_chat_template:
        secrets.append("chat-template.jinja")
    wanted = {"root", user}
    for name in secrets:
        found = _readers(master, f"{etc}/{name}")
        assert found == wanted, (f"{master.name}: {etc}/{name} can be read by {', '.join(sorted(found))}; "
                                 f"wanted root and {user} alone ('*': anyone)")
    key = master.host.file(f"{etc}/api-key")
    if master.is_termux:
        assert (key.user, key.mode) == (user, 0o600)
    else:
        assert (key.user, key.group, key.mode) == ("root", master.planned.service_group, 0o640)


def test_the_service_user_reads_what_its_service_needs_and_changes_none_of_it(linux_node, cluster):
    """As the service user (its group alone, as chpst and systemd run it): the binary, the model
    and the master's secrets are readable, binaries and model are not writable, and the RPC
    cache, when on, is its own."""
    node = linux_node
    user, group = node.planned.service_user, node.planned.service_group
    binary = f"{node.paths.bin}/{node.planned.binary}"
    read = [binary]
    unchangeable = [binary, node.paths.bin + "/"]
    if node.planned.role == "master":
        etc = f"{node.paths.base}/etc"
        read += [node.planned.model_path, f"{etc}/api-key"]
        unchangeable += [node.planned.model_path, f"{etc}/api-key"]
        if any(worker.transport == "tunnel" for worker in cluster.plan.workers()):
            read += [f"{etc}/tunnel_ed25519", f"{etc}/tunnel_known_hosts"]
        if node.settings.llama_chat_template:
            read.append(f"{etc}/chat-template.jinja")
    writable = [f"{node.paths.base}/cache"] if node.planned.rpc_cache and node.planned.role == "worker" else []
    if user == "root":
        unchangeable = []  # root, by the inventory's choice, may change anything
    script = "; ".join(
        [f"test -r {shlex.quote(p)} || echo cannot read {shlex.quote(p)}" for p in read]
        + [f"test -w {shlex.quote(p)} && echo can change {shlex.quote(p)}" for p in unchangeable]
        + [f"test -w {shlex.quote(p)} || echo cannot write {shlex.quote(p)}" for p in writable]
        + ["true"]
    )
    result = node.host.run(f"setpriv --reuid {user} --regid {group} --clear-groups sh -c {shlex.quote(script)}")
    assert result.rc == 0, f"{node.name}: setpriv as {user}: {result.stderr.strip()}"
    assert result.stdout.strip() == "", f"{node.name}, as {user}: {result.stdout.strip()}"
