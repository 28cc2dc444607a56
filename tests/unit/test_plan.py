"""make_plan: ranks, ports, binds, transports, split, load mode, and the refusals."""

from __future__ import annotations

import json

import pytest

from llamafleet.inventory_data import read_defaults
from llamafleet.plan import (
    ARMV7_ADDRESS_LIMIT_MB,
    HostInput,
    PlanError,
    format_split,
    host_port,
    make_plan,
    model_size_from_data,
    quantisation_hint,
    render_table,
    split_by_capacity,
)

DEFAULTS = read_defaults()


def cpu(big: int, little: int = 0, arch: str = "aarch64", march: str = "armv8.2-a+dotprod+fp16") -> dict:
    """A CpuProfile fact result."""
    cores = {"cortex-a76": big}
    if little:
        cores["cortex-a55"] = little
    return {"arch": arch, "cores": cores, "features": ["asimd", "dotprod", "fp16"], "big_cores": big,
            "threads": big, "logical_cpus": big + little, "march": march, "mcpu": "cortex-a76"}


def host(name: str, mem_mb: float, platform: str = "linux", arch: str = "aarch64", big: int = 4,
         little: int = 0, **data) -> HostInput:
    """A host with the defaults of group_data/all.py plus `data`, and facts."""
    merged = dict(DEFAULTS)
    merged["ssh_hostname"] = f"{name}.lan"
    merged.update(data)
    facts = {
        "CpuProfile": cpu(big, little, arch),
        "MemInfo": {"total_mb": mem_mb, "available_mb": mem_mb / 2},
        "DevicePlatform": {"platform": platform, "android_version": "14" if platform == "termux" else None,
                           "is_root": platform == "linux", "home": "/root", "prefix": None,
                           "has_systemd": False, "service_manager": "runit"},
    }
    return HostInput(name=name, data=merged, facts=facts)


def cluster(**master_data) -> list[HostInput]:
    """A Linux master, a phone with 8 GB, a Linux board with 4 GB."""
    return [
        host("box", 16000, llama_role="master", **master_data),
        host("phone1", 8000, platform="termux", little=4),
        host("board", 4000),
    ]


# usable = RAM × 0.70 − 500 (the defaults)
PHONE_USABLE = 8000 * 0.70 - 500  # 5100
BOARD_USABLE = 4000 * 0.70 - 500  # 2300


def test_defaults_the_plan_relies_on():
    assert DEFAULTS["rpc_ram_fraction"] == 0.70 and DEFAULTS["rpc_overhead_mb"] == 500
    assert DEFAULTS["rpc_port_base"] == 50052 and DEFAULTS["llama_server_port"] == 8080


def test_roles_ranks_ports_and_transports():
    plan = make_plan(cluster(), 3000)
    assert [(h.name, h.role, h.rank) for h in plan.hosts] == [
        ("box", "master", 0), ("phone1", "worker", 1), ("board", "worker", 2)]
    box, phone, board = plan.hosts
    # Termux worker: tunnel, bound to loopback, reached through the master's local forward.
    assert (phone.transport, phone.address, phone.rpc_port, phone.connect) == (
        "tunnel", "127.0.0.1", 50052, "127.0.0.1:50052")
    # Linux worker: direct, bound to its cluster address.
    assert (board.transport, board.address, board.rpc_port, board.connect) == (
        "direct", "board.lan", 50053, "board.lan:50053")
    assert box.rpc_port is None and box.connect is None
    assert plan.master.rpc == "127.0.0.1:50052,board.lan:50053"
    assert plan.master.api_url == "http://box.lan:8080"


def test_master_need_not_come_first_and_workers_keep_inventory_order():
    hosts = cluster()
    reordered = [hosts[2], hosts[0], hosts[1]]
    plan = make_plan(reordered, 3000)
    assert [(h.name, h.rank) for h in plan.hosts] == [("box", 0), ("board", 1), ("phone1", 2)]
    assert plan.master.rpc == "board.lan:50052,127.0.0.1:50053"


def test_split_is_proportional_to_usable_ram():
    plan = make_plan(cluster(), 3000)
    phone, board = plan.workers()
    expected_phone = PHONE_USABLE / (PHONE_USABLE + BOARD_USABLE)
    assert phone.split == pytest.approx(expected_phone, abs=0.001)
    assert phone.split + board.split == pytest.approx(1.0, abs=1e-9)
    assert plan.master.tensor_split == f"{phone.split:g},{board.split:g}"
    assert phone.usable_mb == pytest.approx(PHONE_USABLE)
    assert phone.share_mb == pytest.approx(3000 * phone.split, abs=0.1)
    assert phone.expected_mb == pytest.approx(phone.share_mb + 500, abs=0.1)
    assert phone.headroom_mb == pytest.approx(8000 - phone.expected_mb, abs=0.1)


def test_explicit_settings_win():
    hosts = [
        host("box", 16000, llama_role="master", llama_server_host="10.1.1.1", llama_server_port=9000,
             llama_load_mode="mmap+mlock", rpc_threads=2),
        host("phone1", 8000, platform="termux", rpc_port=6000, rpc_transport="direct",
             rpc_bind="0.0.0.0", cluster_address="10.1.1.21", rpc_allow_insecure=True),
        host("board", 4000, rpc_transport="tunnel", ram_mb=2000, rpc_threads=1, llama_cpu_arch="armv8-a"),
    ]
    plan = make_plan(hosts, 1000)
    box, phone, board = plan.hosts
    assert plan.master.api_url == "http://10.1.1.1:9000"
    assert plan.master.load_mode == "mmap+mlock"
    assert plan.master.threads == box.threads == 2
    # A wildcard bind is reached through the worker's cluster address.
    assert (phone.address, phone.rpc_port, phone.connect) == ("0.0.0.0", 6000, "10.1.1.21:6000")
    # board takes the lowest free port from rpc_port_base (phone1's 6000 is none of them), and
    # workers are ranked by port: phone1 (6000) first.
    assert (board.transport, board.address, board.connect) == ("tunnel", "127.0.0.1", "127.0.0.1:50052")
    assert [(h.name, h.rank) for h in plan.hosts] == [("box", 0), ("phone1", 1), ("board", 2)]
    # ram_mb in data overrides the detected MemInfo total.
    assert board.ram_mb == 2000 and board.usable_mb == pytest.approx(2000 * 0.7 - 500)
    assert board.threads == 1 and board.march == "armv8-a"


def test_threads_are_big_cores_and_never_zero():
    hosts = cluster()
    hosts[1].facts["CpuProfile"].update({"threads": 0, "big_cores": 0})
    plan = make_plan(hosts, 2000)
    assert plan.hosts[1].threads == 1
    assert plan.hosts[2].threads == 4


def test_platform_from_groups_when_no_fact():
    phone = host("phone1", 8000, platform="termux")
    no_fact = HostInput("phone1", phone.data, {k: v for k, v in phone.facts.items() if k != "DevicePlatform"},
                        groups=("termux",))
    plan = make_plan([cluster()[0], no_fact], 2000)
    assert plan.hosts[1].transport == "tunnel" and plan.hosts[1].platform == "termux"


def test_load_mode_from_master_ram():
    # 16000 × 0.7 − 500 = 10700 MB usable on the master: a 3000 MB model fits -> mmap.
    assert make_plan(cluster(), 3000).master.load_mode == "mmap"
    small_master = [host("box", 3000, llama_role="master")] + cluster()[1:]
    # 3000 × 0.7 − 500 = 1600 MB < 3000 MB: tight -> read, no mmap.
    assert make_plan(small_master, 3000).master.load_mode == "none"


def test_hand_split_is_used_in_rank_order():
    plan = make_plan(cluster(llama_tensor_split=[0.25, 0.75]), 2000)
    assert [w.split for w in plan.workers()] == [0.25, 0.75]
    assert plan.master.tensor_split == "0.25,0.75"


def test_refuses_a_model_larger_than_all_usable_ram():
    hosts = cluster(model_url="https://example.invalid/llama-8b-Q8_0.gguf")
    with pytest.raises(PlanError) as caught:
        make_plan(hosts, 9000)
    error = caught.value
    assert error.reasons == [
        f"cluster: model: 9000 MB does not fit the workers' usable RAM ({PHONE_USABLE + BOARD_USABLE:.0f} MB in total)"]
    # The name says Q8_0: the hint names the largest smaller quantisation that fits 7400 MB
    # (Q6_K: 9000 × 6.56 / 8.5 ≈ 6946 MB).
    assert "Q6_K of this model is about 6946 MB" in error.suggestion and "now Q8_0" in error.suggestion
    assert "Q4_0_4_4" not in str(error)


def test_refuses_a_hand_split_that_overloads_a_device():
    with pytest.raises(PlanError) as caught:
        make_plan(cluster(llama_tensor_split=[0.1, 0.9]), 4000)
    assert caught.value.reasons == ["board: share 3600 MB exceeds its usable RAM (2300 MB)"]
    assert "llama_tensor_split" in caught.value.suggestion


def test_refuses_a_hand_split_of_the_wrong_length():
    with pytest.raises(PlanError, match="3 proportions for 2 RPC workers"):
        make_plan(cluster(llama_tensor_split=[0.2, 0.3, 0.5]), 1000)


def test_refuses_a_worker_without_usable_ram():
    hosts = cluster()
    hosts.append(host("tiny", 600))  # 600 × 0.7 − 500 = −80
    with pytest.raises(PlanError) as caught:
        make_plan(hosts, 1000)
    assert caught.value.reasons[0].startswith("tiny: usable RAM is -80 MB")
    assert "rpc_overhead_mb" in caught.value.suggestion


def test_refuses_a_32_bit_master_with_a_big_model():
    hosts = [host("box", 16000, arch="armv7l", llama_role="master"), host("w", 16000), host("v", 16000)]
    with pytest.raises(PlanError, match="32-bit"):
        make_plan(hosts, 4000)
    assert make_plan(hosts, 2000).master.name == "box"


def test_32_bit_worker_holds_at_most_its_address_space():
    hosts = [host("box", 16000, llama_role="master"), host("old", 16000, arch="armv7l"), host("new", 16000)]
    plan = make_plan(hosts, 12000)
    old = plan.hosts[1]
    assert old.usable_mb == ARMV7_ADDRESS_LIMIT_MB
    assert old.share_mb <= ARMV7_ADDRESS_LIMIT_MB + 12  # + one rounding step
    half_half = host("box", 16000, llama_role="master", llama_tensor_split=[0.5, 0.5])
    with pytest.raises(PlanError, match="old: share 6000 MB exceeds its 32-bit address space"):
        make_plan([half_half, hosts[1], hosts[2]], 12000)


def test_refuses_without_exactly_one_master_or_any_worker():
    with pytest.raises(PlanError, match="need exactly one master, found none"):
        make_plan([host("a", 8000), host("b", 8000)], 1000)
    with pytest.raises(PlanError, match="found a, b"):
        make_plan([host("a", 8000, llama_role="master"), host("b", 8000, llama_role="master")], 1000)
    with pytest.raises(PlanError, match="no RPC workers"):
        make_plan([host("a", 8000, llama_role="master")], 1000)


def test_refuses_unknown_ram_and_unknown_model_size():
    hosts = cluster()
    blind = HostInput("board", hosts[2].data, {"CpuProfile": cpu(4)})
    with pytest.raises(PlanError, match="board: ram_mb: RAM unknown"):
        make_plan(hosts[:2] + [blind], 1000)
    with pytest.raises(PlanError, match="model size unknown"):
        make_plan(hosts, 0)


def test_hints_for_tight_devices_and_many_workers():
    hosts = cluster() + [host("board2", 4000)]
    plan = make_plan(hosts, 9200)  # 9200 of 9700 usable: every worker is tight
    assert any(hint.startswith("phone1: tight:") for hint in plan.hints)
    assert any("3 RPC workers" in hint for hint in plan.hints)
    assert make_plan(cluster(), 1000).hints == []


def test_json_shape():
    data = json.loads(json.dumps(make_plan(cluster(), 3000).to_dict()))
    for entry in data["hosts"]:
        assert {"name", "role", "rank", "address", "rpc_port", "connect", "transport", "march",
                "threads", "split", "ram_mb", "expected_mb"} <= set(entry)
    assert set(data["master"]) >= {"name", "api_url", "load_mode", "rpc", "tensor_split"}
    assert data["master"]["name"] == "box"


def test_table_shows_every_device():
    text = render_table(make_plan(cluster(), 3000))
    for fragment in ("box", "phone1", "board", "127.0.0.1:50052", "board.lan:50053", "tunnel", "direct",
                     "4/8", "armv8.2-a+dotprod+fp16", "-ts ", "--rpc 127.0.0.1:50052,board.lan:50053"):
        assert fragment in text


def test_split_rounding_sums_to_one():
    shares = split_by_capacity([1, 1, 1])
    assert sum(shares) == pytest.approx(1.0) and sorted(shares) == [0.333, 0.333, 0.334]
    assert format_split([0.5, 0.25, 0.25]) == "0.5,0.25,0.25"


def test_model_size_from_file_or_data(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"\0" * (3 * 1024 * 1024))
    assert model_size_from_data({"model_file": str(model), "model_size_mb": 99}) == 3.0
    assert model_size_from_data({"model_url": "x", "model_size_mb": 99}) == 99.0
    assert model_size_from_data({}) is None


def test_quantisation_hint_without_a_tag_gives_a_target_size():
    assert "at most 1000 MB" in quantisation_hint(2000, 1000, "model.gguf")


def test_ipv6_host_port():
    assert host_port("fe80::1", 50052) == "[fe80::1]:50052"
    assert host_port("10.0.0.1", 1) == "10.0.0.1:1"


def test_the_plan_shows_the_march_without_the_features_the_device_refused():
    """A phone whose self-test died of SIGILL with i8mm: the plan's march is what the build
    installs (the same flag table, without the refused features), and the table says why."""
    hosts = cluster()
    phone = hosts[1]
    phone.facts["CpuProfile"] = dict(phone.facts["CpuProfile"], features=["asimd", "atomics", "rdm", "dcpop", "dotprod", "fp16", "i8mm"],
                                     march="armv8.2-a+dotprod+fp16+i8mm", cpu_architecture=8, model=None,
                                     core_equivalents={}, tune_candidates=["cortex-a76"], uname_m="aarch64")
    assert make_plan(hosts, 3000).host("phone1").march == "armv8.2-a+dotprod+fp16+i8mm"
    phone.facts["CpuRefusals"] = {"i8mm": {"date": "2026-12-03T10:00:00Z", "reason": "sigill", "flags": "-march=x"}}
    plan = make_plan(hosts, 3000)
    assert plan.host("phone1").march == "armv8.2-a+dotprod+fp16"
    assert plan.host("phone1").cpu_refused == ("i8mm",)
    assert "armv8.2-a+dotprod+fp16 (refused: i8mm)" in render_table(plan)
    assert plan.host("board").cpu_refused == ()
