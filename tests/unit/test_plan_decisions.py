"""The per-host decisions the plan makes once and the deploy, `status` and verify read from it:
service manager, binary, where llamafleet lives, the model's path, llama-server's address and
the firewall. Each expectation is written from group_data/all.py's documented defaults."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from llamafleet.inventory_data import load_inventory
from llamafleet.plan import HostInput, PlanError, make_plan
from llamafleet.plan.firewall import PortRule, backend_in_use
from llamafleet.serving import cluster

REPO = Path(__file__).resolve().parents[2]
TERMUX_HOME = "/data/data/com.termux/files/home"
MODEL = {"model_url": "https://example.invalid/m-Q4_0.gguf"}


def linux(name: str, address: str, fact: dict | None = None, **data) -> HostInput:
    device = {"platform": "linux", "home": "/root", **(fact or {})}
    return HostInput(name, {"ssh_hostname": address, **MODEL, **data},
                     {"MemInfo": {"total_mb": 8000}, "DevicePlatform": device})


def phone(name: str, address: str, fact: dict | None = None, **data) -> HostInput:
    device = {"platform": "termux", "home": TERMUX_HOME, "service_manager": "termux-services", **(fact or {})}
    return HostInput(name, {"ssh_hostname": address, **MODEL, **data},
                     {"MemInfo": {"total_mb": 8000}, "DevicePlatform": device}, ("termux",))


def plan_of(*hosts: HostInput):
    plan = make_plan(list(hosts), 1000)
    return plan, {h.name: h for h in plan.hosts}


MASTER = linux("box", "10.0.0.1", llama_role="master")


def test_service_manager_from_data_else_the_device_else_the_platform():
    _, hosts = plan_of(linux("box", "10.0.0.1", {"service_manager": "systemd"}, llama_role="master"),
                       linux("board", "10.0.0.2", {"service_manager": "systemd"}, service_manager="runit"),
                       linux("bare", "10.0.0.3", {"service_manager": None}),
                       HostInput("phone1", {"ssh_hostname": "10.0.0.4", "ram_mb": 8000}, {}, ("termux",)))
    assert [hosts[n].service_manager for n in ("box", "board", "bare", "phone1")] == [
        "systemd", "runit", "runit", "termux-services"]


def test_the_binary_each_role_runs():
    _, hosts = plan_of(MASTER, phone("phone1", "10.0.0.21"))
    assert (hosts["box"].binary, hosts["phone1"].binary) == ("llama-server", "ggml-rpc-server")


def test_where_llamafleet_lives_and_the_model_path():
    _, hosts = plan_of(MASTER, phone("phone1", "10.0.0.21"), phone("phone2", "10.0.0.22", llamafleet_dir="~/lf"),
                       linux("board", "10.0.0.2", model_name="model.gguf", llamafleet_dir="/srv/lf/"))
    assert hosts["box"].base == "/opt/llamafleet"
    assert hosts["box"].model_path == "/opt/llamafleet/models/m-Q4_0.gguf"
    assert hosts["phone1"].base == f"{TERMUX_HOME}/llamafleet"
    assert hosts["phone2"].model_path == f"{TERMUX_HOME}/lf/models/m-Q4_0.gguf"
    assert hosts["board"].model_path == "/srv/lf/models/model.gguf"


def test_a_phone_planned_without_its_home_has_no_base_yet():
    offline = HostInput("phone1", {"ssh_hostname": "10.0.0.21", "ram_mb": 8000, **MODEL}, {}, ("termux",))
    _, hosts = plan_of(MASTER, offline)
    assert hosts["phone1"].base is None and hosts["phone1"].model_path is None


def test_where_llama_server_listens_and_where_clients_reach_it():
    plan, _ = plan_of(MASTER, phone("phone1", "10.0.0.21"))
    assert (plan.master.server_host, plan.master.server_port, plan.master.api_url) == (
        "10.0.0.1", 8080, "http://10.0.0.1:8080")
    everywhere = linux("box", "10.0.0.1", llama_role="master", llama_server_host="0.0.0.0", llama_server_port=9000)
    plan, _ = plan_of(everywhere, phone("phone1", "10.0.0.21"))
    assert (plan.master.server_host, plan.master.server_port, plan.master.api_url) == (
        "0.0.0.0", 9000, "http://10.0.0.1:9000")


def test_the_firewall_each_host_gets():
    master = linux("box", "10.0.0.1", llama_role="master", api_allowed_sources=["192.168.1.0/24"])
    _, hosts = plan_of(master, linux("board", "10.0.0.2", firewall_backend="ufw"),
                       linux("tunnelled", "10.0.0.3", rpc_transport="tunnel"),
                       linux("open", "10.0.0.4", firewall_enabled=False), phone("phone1", "10.0.0.21"))
    assert hosts["box"].firewall.policy.rules == [
        PortRule(8080, ("10.0.0.1", "192.168.1.0/24"), "llama-server API")]
    assert hosts["board"].firewall.policy.rules == [PortRule(50052, ("10.0.0.1",), "RPC from the master")]
    assert (hosts["board"].firewall.backend, hosts["box"].firewall.backend) == ("ufw", None)
    # Bound to 127.0.0.1 behind its tunnel: llamafleet's chain exists but holds nothing to restore.
    assert hosts["tunnelled"].firewall.policy.rules == [] and not hosts["tunnelled"].firewall.restore_at_start
    assert hosts["box"].firewall.restore_at_start and hosts["board"].firewall.restore_at_start
    assert hosts["open"].firewall is None and hosts["phone1"].firewall is None


def test_the_backend_is_the_datas_choice_else_what_the_host_has():
    _, hosts = plan_of(MASTER, linux("board", "10.0.0.2", firewall_backend="ufw"))
    asked = []
    assert backend_in_use(hosts["board"].firewall, lambda: asked.append(1) or "nftables") == "ufw"
    assert asked == []  # the fact is not read when the data has chosen
    # ufw and firewalld hold the rules themselves: no llamafleet chain or table beside them.
    assert backend_in_use(hosts["box"].firewall, lambda: "firewalld") == "firewalld"
    assert backend_in_use(hosts["box"].firewall, lambda: "ufw") == "ufw"
    assert backend_in_use(hosts["box"].firewall, lambda: None) is None


def test_services_restore_the_rules_with_the_backend_the_plan_chose():
    _, hosts = plan_of(MASTER, linux("board", "10.0.0.2", firewall_backend="nftables"),
                       linux("tunnelled", "10.0.0.3", rpc_transport="tunnel"))
    no_fact = SimpleNamespace(get_fact=lambda cls: pytest.fail("the backend was chosen in data"))
    assert any("llamafleet.nft" in line for line in cluster.prestart_lines(no_fact, hosts["board"]))
    assert cluster.prestart_lines(no_fact, hosts["tunnelled"]) == []


@pytest.mark.parametrize("backend", ["ufw", "firewalld"])
def test_services_restore_nothing_where_the_tool_restores_its_own_rules(backend):
    """ufw reloads its user rules and firewalld its permanent zone at boot: no prestart lines,
    while the same host with iptables gets them."""
    _, hosts = plan_of(MASTER, linux("board", "10.0.0.2", firewall_backend=backend),
                       linux("other", "10.0.0.3", firewall_backend="iptables"))
    no_fact = SimpleNamespace(get_fact=lambda cls: pytest.fail("the backend was chosen in data"))
    assert hosts["board"].firewall.restore_at_start
    assert cluster.prestart_lines(no_fact, hosts["board"]) == []
    assert any("iptables-restore" in line for line in cluster.prestart_lines(no_fact, hosts["other"]))


def test_a_value_of_another_kind_stops_the_plan_naming_host_and_key():
    with pytest.raises(PlanError) as caught:
        plan_of(MASTER, linux("board", "10.0.0.2", rpc_port="50052"))
    assert caught.value.reasons == ["board: rpc_port: must be an integer, not str '50052'"]


def test_the_verify_suite_picks_hosts_by_the_plans_decisions():
    from llamafleet.verify_suite.conftest import HOST_SELECTORS as selectors

    hosts = load_inventory(REPO / "tests" / "data" / "inventories" / "lab_like.py")
    picked = {name: [h.name for h in hosts if chosen(h)] for name, chosen in selectors.items()}
    assert picked["master"] == ["linux1"]
    assert picked["tunnel_worker"] == ["phone1", "phone2"]
    assert picked["firewall_node"] == picked["sysctl_node"] == picked["linux_node"] == ["linux1", "linux2"]


def test_who_the_services_run_as():
    """group_data/all.py: service_user on Linux ("llamafleet" by default), its group of the same
    name; a phone's processes are the app's own user, whatever the data says."""
    _, hosts = plan_of(MASTER, linux("board", "10.0.0.2", service_user="llm"),
                       linux("root-box", "10.0.0.3", service_user="root", service_user_allow_root=True),
                       phone("phone1", "10.0.0.21", service_user="llm"))
    assert [(hosts[n].service_user, hosts[n].service_group) for n in ("box", "board", "root-box", "phone1")] == [
        ("llamafleet", "llamafleet"), ("llm", "llm"), ("root", "root"), (None, None)]
    # Planned without facts, a host of the `termux` group is a phone all the same.
    offline = HostInput("phone2", {"ssh_hostname": "10.0.0.22", "ram_mb": 8000, **MODEL}, {}, ("termux",))
    _, hosts = plan_of(MASTER, offline)
    assert hosts["phone2"].service_user is None


def _with_cpu(host: HostInput, **cpu) -> HostInput:
    return HostInput(host.name, host.data, {**host.facts, "CpuProfile": {"arch": "aarch64", **cpu}}, host.groups)


@pytest.mark.parametrize("cpu, data, threads", [
    ({"threads": 4, "big_cores": 4, "usable_cpus": 8}, {}, 4),  # a phone in front: every CPU
    ({"threads": 4, "big_cores": 4, "usable_cpus": 2}, {}, 2),  # held to 2 CPUs (cpuset, container)
    ({"threads": 4, "big_cores": 4}, {}, 4),  # nproc missing: the big cores
    ({"threads": 4, "big_cores": 4, "usable_cpus": 2}, {"rpc_threads": 3}, 3),  # asked for: as asked
])
def test_worker_threads_stay_within_the_cpus_its_processes_may_use(cpu, data, threads):
    _, hosts = plan_of(MASTER, _with_cpu(phone("p1", "10.0.0.2", **data), **cpu))
    assert hosts["p1"].threads == threads
