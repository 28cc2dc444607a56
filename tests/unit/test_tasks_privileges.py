"""What tasks/account.py, workers.py and master.py ask of pyinfra for the service user, run on a
real plan with pyinfra's operations recorded instead of run: on Linux the account first, the
services as the plan's user, the secrets root's and its group's; on a phone what it always was."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyinfra.context import ctx_host
from pyinfra.operations import files

from llamafleet import layout
from llamafleet.plan import HostInput, make_plan
from llamafleet.serving import account, chat_template, cluster, phone_sshd, probes, secrets, services
from llamafleet.settings import settings_for

REPO = Path(__file__).resolve().parents[2]
TERMUX = {"platform": "termux", "home": "/data/data/com.termux/files/home", "prefix": "/data/data/com.termux/files/usr",
          "service_manager": "termux-services"}
LINUX = {"platform": "linux", "home": "/root", "service_manager": "runit"}
MODEL = {"model_url": "https://example.invalid/m-Q4_0.gguf", "model_sha256": "ab" * 32}


def host_input(name: str, address: str, device: dict, **data) -> HostInput:
    groups = ("termux",) if device["platform"] == "termux" else ()
    return HostInput(name, {"ssh_hostname": address, **MODEL, **data}, {"MemInfo": {"total_mb": 8000},
                                                                         "DevicePlatform": device}, groups)


class FakeHost:
    def __init__(self, name: str, data: dict, chain: list[dict] | None = None):
        self.name, self.data, self.chain = name, data, chain or []

    def get_fact(self, cls, **kwargs):
        if cls is account.DirectoryChain:
            return self.chain
        if cls is phone_sshd.SshdReadsDropIns:
            return True
        return "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOdpNqtG6dwn8Sr0f1SVjTnVrEdxqvAzpHSqzpOLfg9c"  # SshHostKey


@pytest.fixture
def deploy(monkeypatch, tmp_path):
    """run(task, host name, *hosts): the operations the task file asks for on that host."""
    (tmp_path / "api-key").write_text("k\n")
    (tmp_path / "tunnel_ed25519").write_text("private\n")

    def run(task: str, name: str, *inputs: HostInput, chain: list[dict] | None = None) -> list[tuple[str, dict]]:
        plan = make_plan(list(inputs), 1000)
        by_name = {h.name: h for h in inputs}
        hosts = {h.name: FakeHost(h.name, dict(h.data), chain) for h in inputs}
        calls: list[tuple[str, dict]] = []

        def record(kind):
            def call(*args, **kwargs):
                calls.append((kind, kwargs))
                return SimpleNamespace(did_change=lambda: False)
            return call

        for kind in ("put", "directory", "template", "line"):
            monkeypatch.setattr(files, kind, record(kind))
        monkeypatch.setattr(services, "supervise", lambda service, manager, prefix=None: calls.append(
            ("supervise", {"service": service, "manager": manager})))
        monkeypatch.setattr(services, "services_retired", record("retired"))
        monkeypatch.setattr(phone_sshd, "sshd_reloaded", record("sshd_reloaded"))
        monkeypatch.setattr(account, "service_account", record("service_account"))
        monkeypatch.setattr(probes, "endpoints_reachable", record("reachable"))
        monkeypatch.setattr(probes, "http_healthy", record("healthy"))
        monkeypatch.setattr(cluster, "current_plan", lambda: plan)
        monkeypatch.setattr(cluster, "this_host", lambda: plan.host(name))
        monkeypatch.setattr(cluster, "settings", lambda target=None: settings_for(
            getattr(target, "name", name), by_name[getattr(target, "name", name)].data))
        monkeypatch.setattr(cluster, "inventory_host", lambda other: hosts[other])
        monkeypatch.setattr(cluster, "platform_facts", lambda target: by_name[target.name].facts["DevicePlatform"])
        monkeypatch.setattr(cluster, "prestart_lines", lambda target, me: [])
        monkeypatch.setattr(cluster, "binaries_changed", lambda target: lambda: False)
        monkeypatch.setattr(layout, "device_paths", lambda target: layout.paths_for(plan.host(target.name).base))
        monkeypatch.setattr(secrets, "api_key_file", lambda: tmp_path / "api-key")
        monkeypatch.setattr(secrets, "tunnel_key", lambda: (tmp_path / "tunnel_ed25519", "ssh-ed25519 AAAA llamafleet"))
        monkeypatch.setattr(secrets, "existing_tunnel_key", lambda: None)
        monkeypatch.setattr(chat_template, "template_source", lambda value: tmp_path / "api-key" if value else None)
        with ctx_host.use(hosts[name]):
            runpy.run_path(str(REPO / task))
        return calls

    return run


def owners(calls, kind: str) -> dict[str, tuple]:
    """dest/path -> (user, group, mode) of each recorded files.<kind>."""
    return {kwargs.get("dest") or kwargs["path"]: (kwargs.get("user"), kwargs.get("group"), kwargs.get("mode"))
            for called, kwargs in calls if called == kind}


LINUX_MASTER = host_input("box", "10.0.0.1", LINUX, llama_role="master", llama_chat_template="gemma3")
PHONE = host_input("phone1", "10.0.0.21", TERMUX)
LINUX_WORKER = host_input("board", "10.0.0.2", LINUX, rpc_cache=True)


def test_a_linux_masters_secrets_are_roots_and_its_groups_and_its_services_the_users(deploy):
    calls = deploy("tasks/master.py", "box", LINUX_MASTER, PHONE, LINUX_WORKER)
    etc = "/opt/llamafleet/etc"
    assert owners(calls, "directory") == {etc: ("root", "llamafleet", "750")}
    assert owners(calls, "put") == {
        f"{etc}/tunnel_ed25519": ("llamafleet", "llamafleet", "600"),
        f"{etc}/api-key": ("root", "llamafleet", "640"),
        f"{etc}/chat-template.jinja": ("root", "llamafleet", "640"),
    }
    assert owners(calls, "template") == {f"{etc}/tunnel_known_hosts": ("root", "llamafleet", "640"),
                                         "/opt/llamafleet/libexec/llama-server-launch.bash": ("root", "llamafleet", "640")}
    supervised = {kwargs["service"].name: kwargs["service"] for called, kwargs in calls if called == "supervise"}
    assert sorted(supervised) == ["llama-server", "llama-tunnel-phone1"]
    assert {(s.user, s.group, tuple(s.capabilities), s.memlock) for s in supervised.values()} == {
        ("llamafleet", "llamafleet", (), False)}


def test_a_phone_master_keeps_its_modes_and_runs_as_the_app(deploy):
    phone_master = host_input("phone1", "10.0.0.21", TERMUX, llama_role="master", llama_chat_template="gemma3",
                              llama_server_port=8080)
    calls = deploy("tasks/master.py", "phone1", phone_master, host_input("phone2", "10.0.0.22", TERMUX))
    etc = "/data/data/com.termux/files/home/llamafleet/etc"
    assert owners(calls, "directory") == {etc: (None, None, "700")}
    assert owners(calls, "put") == {f"{etc}/tunnel_ed25519": (None, None, "600"), f"{etc}/api-key": (None, None, "600"),
                                    f"{etc}/chat-template.jinja": (None, None, "644")}
    assert owners(calls, "template") == {
        f"{etc}/tunnel_known_hosts": (None, None, "600"),
        "/data/data/com.termux/files/home/llamafleet/libexec/llama-server-launch.bash": (None, None, "600")}
    assert {kwargs["service"].user for called, kwargs in calls if called == "supervise"} == {None}


def test_mlock_and_a_low_port_as_root(deploy):
    master = host_input("box", "10.0.0.1", LINUX, llama_role="master", llama_load_mode="mlock", llama_server_port=443,
                        service_user="root", service_user_allow_root=True)
    calls = deploy("tasks/master.py", "box", master, LINUX_WORKER)
    server = next(kwargs["service"] for called, kwargs in calls if called == "supervise")
    assert (server.user, server.capabilities, server.memlock) == ("root", ["CAP_NET_BIND_SERVICE"], True)


def test_a_linux_worker_runs_as_the_user_with_its_cache_its_own(deploy):
    calls = deploy("tasks/workers.py", "board", LINUX_MASTER, LINUX_WORKER)
    assert owners(calls, "directory") == {"/opt/llamafleet/cache": ("llamafleet", "llamafleet", None)}
    assert next(kwargs for called, kwargs in calls if called == "directory")["recursive"] is True
    rpc = next(kwargs["service"] for called, kwargs in calls if called == "supervise")
    assert (rpc.user, rpc.group, rpc.env) == ("llamafleet", "llamafleet", [("LLAMA_CACHE", "/opt/llamafleet/cache")])


def test_a_phone_worker_has_no_user_to_switch_to(deploy):
    calls = deploy("tasks/workers.py", "phone1", LINUX_MASTER, host_input("phone1", "10.0.0.21", TERMUX, rpc_cache=True))
    prefix = TERMUX["prefix"]
    # rpc-server, the app, makes its own cache; the one directory made is sshd's drop-in folder.
    assert [kwargs["path"] for called, kwargs in calls if called == "directory"] == [f"{prefix}/etc/ssh/sshd_config.d"]
    assert next(kwargs["service"] for called, kwargs in calls if called == "supervise").user is None
    # A tunnelled phone's sshd lets go of a vanished master: the drop-in, then a reload when it changed.
    assert owners(calls, "template")[f"{prefix}/etc/ssh/sshd_config.d/llamafleet.conf"] == (None, None, "600")
    assert [kwargs["prefix"] for called, kwargs in calls if called == "sshd_reloaded"] == [prefix]


def test_the_account_is_made_on_linux_only_and_never_under_a_private_directory(deploy):
    reachable = [{"path": "/opt", "mode": 0o755, "user": "root", "group": "root"},
                 {"path": "/", "mode": 0o755, "user": "root", "group": "root"}]
    calls = deploy("tasks/account.py", "board", LINUX_MASTER, LINUX_WORKER, chain=reachable)
    assert [kwargs for called, kwargs in calls if called == "service_account"] == [
        {"name": "Service user llamafleet (system account: no login, no password)", "user": "llamafleet",
         "group": "llamafleet", "allow_root": False}]
    assert deploy("tasks/account.py", "phone1", LINUX_MASTER, PHONE) == []
    in_root = host_input("board", "10.0.0.2", LINUX, llamafleet_dir="/root/llamafleet")
    private = [{"path": "/root", "mode": 0o700, "user": "root", "group": "root"}, *reachable[1:]]
    with pytest.raises(ValueError, match=r"board: llamafleet_dir: the service user 'llamafleet' cannot pass through "
                                         r"/root \(mode 700, owner root, group root\) to reach /root/llamafleet"):
        deploy("tasks/account.py", "board", LINUX_MASTER, in_root, chain=private)


# --- a worker pinned to its big cores ------------------------------------------------------------

# A Tensor G2 as the CpuProfile fact reads it: clocks per CPU list and the CPUs the shell may use.
G2 = {"arch": "aarch64", "big_cores": 4, "threads": 4, "usable_cpus": 8,
      "cpu_max_khz": {"0-3": 1803000, "4-5": 2348000, "6-7": 2850000}, "allowed_cpus": "0-7"}


def with_cpu(host: HostInput, cpu: dict) -> HostInput:
    return HostInput(host.name, host.data, {**host.facts, "CpuProfile": cpu}, host.groups)


def rpc_service(calls) -> services.Service:
    return next(kwargs["service"] for called, kwargs in calls if called == "supervise")


def test_a_pinned_phone_worker_starts_through_termuxs_taskset(deploy):
    calls = deploy("tasks/workers.py", "phone1", LINUX_MASTER, with_cpu(PHONE, G2))
    prefix, base = TERMUX["prefix"], "/data/data/com.termux/files/home/llamafleet"
    assert rpc_service(calls).argv == [f"{prefix}/bin/taskset", "-c", "4-7", f"{base}/bin/ggml-rpc-server",
                                       "-H", "127.0.0.1", "-p", "50052", "-t", "4"]
    # The service's command is what its run script execs: a changed pin rewrites it (and restarts it).
    assert rpc_service(calls).command.startswith(f"{prefix}/bin/taskset -c 4-7 {base}/bin/ggml-rpc-server ")


def test_a_pinned_linux_worker_uses_usr_bin_taskset_and_an_unpinned_one_none(deploy):
    pinned = rpc_service(deploy("tasks/workers.py", "board", LINUX_MASTER, with_cpu(LINUX_WORKER, G2)))
    assert pinned.argv[:4] == ["/usr/bin/taskset", "-c", "4-7", "/opt/llamafleet/bin/ggml-rpc-server"]
    assert pinned.argv[-3:] == ["-t", "4", "-c"]  # rpc_cache's -c stays rpc-server's, after the binary
    for cpu in ({**G2, "allowed_cpus": "0-1"}, {**G2, "cpu_max_khz": {}}):
        unpinned = rpc_service(deploy("tasks/workers.py", "board", LINUX_MASTER, with_cpu(LINUX_WORKER, cpu)))
        assert unpinned.argv[0] == "/opt/llamafleet/bin/ggml-rpc-server" and "taskset" not in unpinned.command
    off = with_cpu(host_input("board", "10.0.0.2", LINUX, rpc_pin_big_cores=False), G2)
    assert rpc_service(deploy("tasks/workers.py", "board", LINUX_MASTER, off)).argv[0].endswith("/ggml-rpc-server")
