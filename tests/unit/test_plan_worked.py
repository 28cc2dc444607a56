"""make_plan on worked examples: every figure below is computed by hand from the memory model in
llamafleet/plan.py's docstring and the defaults documented in group_data/all.py, not by the code:

    usable   = RAM × rpc_ram_fraction (0.70) − rpc_overhead_mb (500), at most 3072 MB on armv7l
    split    = usable / total usable, rounded to thousandths by largest remainder (sums to 1)
    share    = split × model;  expected = share + overhead (+ the whole model on an mmap master)
    headroom = RAM − expected; figures in MB to one decimal
"""

from __future__ import annotations

import re

import pytest

from llamafleet.inventory_data import read_defaults
from llamafleet.settings import settings_for
from llamafleet.plan import (
    HostInput,
    PlanError,
    api_url_of,
    format_split,
    host_port,
    is_loopback,
    is_wildcard,
    make_plan,
    quantisation_hint,
    render_table,
    split_by_capacity,
)


def cpu(arch: str = "aarch64", **extra) -> dict:
    return {"arch": arch, "cores": {"cortex-a76": 4, "cortex-a55": 4}, "big_cores": 4, "threads": 4,
            "march": "armv8.2-a+dotprod", **extra}


DEFAULTS = read_defaults()


def host(name: str, ram: float, platform: str = "linux", arch: str = "aarch64", cpu_extra: dict | None = None,
         defaults: dict | None = None, **data) -> HostInput:
    """A host with group_data/all.py's defaults (as pyinfra gives them) and `data` over them."""
    facts = {"CpuProfile": cpu(arch, **(cpu_extra or {})), "MemInfo": {"total_mb": ram},
             "DevicePlatform": {"platform": platform}}
    base = DEFAULTS if defaults is None else defaults
    return HostInput(name, {**base, "ssh_hostname": f"{name}.lan", **data}, facts)


def cluster(**master) -> list[HostInput]:
    return [host("box", 16000, llama_role="master", **master), host("phone1", 8000, "termux"), host("board", 4000)]


# --- the worked example -----------------------------------------------------------------------------


def test_worked_example_every_figure():
    """phone1: 8000 × 0.7 − 500 = 5100 usable; board: 4000 × 0.7 − 500 = 2300; total 7400.
    5100/7400 = 0.68919 and 2300/7400 = 0.31081: floors 689 + 310 = 999 thousandths, the spare
    one goes to the larger remainder (board's .81): 0.689 and 0.311. Model 3000 MB: phone1 holds
    2067, board 933. The master (16000 × 0.7 − 500 = 10700 usable) can map all 3000: mmap, and
    its page cache holds the whole model: 0 + 500 + 3000 = 3500 expected."""
    plan = make_plan(cluster(), 3000)
    rows = [(h.name, h.role, h.rank, h.address, h.rpc_port, h.connect, h.transport, h.split, h.ram_mb,
             h.usable_mb, h.share_mb, h.expected_mb, h.headroom_mb, h.threads) for h in plan.hosts]
    assert rows == [
        ("box", "master", 0, "box.lan", None, None, None, 0.0, 16000, 10700, 0, 3500, 12500, 4),
        ("phone1", "worker", 1, "127.0.0.1", 50052, "127.0.0.1:50052", "tunnel", 0.689, 8000, 5100, 2067, 2567, 5433, 4),
        ("board", "worker", 2, "board.lan", 50053, "board.lan:50053", "direct", 0.311, 4000, 2300, 933, 1433, 2567, 4),
    ]
    assert (plan.master.api_url, plan.master.load_mode, plan.master.rpc, plan.master.tensor_split) == (
        "http://box.lan:8080", "mmap", "127.0.0.1:50052,board.lan:50053", "0.689,0.311")
    assert plan.hints == []


def test_figures_are_megabytes_to_one_decimal():
    """phone1 with 8000.37 MB: usable 8000.37 × 0.7 − 500 = 5100.259 → 5100.3; a 1000.04 MB model on
    one worker: share 1000.04 → 1000.0, expected 1500.04 → 1500.0, headroom 6500.33 → 6500.3."""
    plan = make_plan([host("box", 16000, llama_role="master"), host("phone1", 8000.37)], 1000.04)
    phone = plan.hosts[1]
    assert (phone.ram_mb, phone.usable_mb, phone.share_mb, phone.expected_mb, phone.headroom_mb) == (
        8000.4, 5100.3, 1000.0, 1500.0, 6500.3)
    assert plan.to_dict()["model_size_mb"] == 1000.0
    assert plan.to_dict()["hints"] == []


def test_an_all_py_without_the_ram_keys_plans_with_their_documented_defaults():
    """A deploy's own group_data/all.py from before rpc_ram_fraction/rpc_overhead_mb existed: the
    plan uses the documented 0.70 and 500. 8000 × 0.7 − 500 = 5100 usable; expected 1000 + 500."""
    old_all_py = {key: value for key, value in DEFAULTS.items() if key not in ("rpc_ram_fraction", "rpc_overhead_mb")}
    plan = make_plan([host("box", 16000, llama_role="master", defaults=old_all_py),
                      host("w", 8000, defaults=old_all_py)], 1000)
    assert (plan.hosts[1].usable_mb, plan.hosts[1].expected_mb) == (5100, 1500)
    with pytest.raises(PlanError) as caught:
        make_plan([host("box", 16000, llama_role="master", defaults=old_all_py), host("w", 8000, defaults=old_all_py),
                   host("tiny", 600, defaults=old_all_py)], 100)
    assert caught.value.reasons == [
        "tiny: usable RAM is -80 MB (600 MB × 0.7 − 500 MB overhead): it cannot hold any tensors"]


def test_explicit_fraction_and_overhead():
    """rpc_ram_fraction 0.5, rpc_overhead_mb 1000: 8000 × 0.5 − 1000 = 3000 usable, 1000 + share."""
    plan = make_plan([host("box", 16000, llama_role="master"),
                      host("w", 8000, rpc_ram_fraction=0.5, rpc_overhead_mb=1000)], 1000)
    assert (plan.hosts[1].usable_mb, plan.hosts[1].expected_mb) == (3000, 2000)


def test_threads_come_from_data_then_the_profile_then_one():
    hosts = [host("box", 16000, llama_role="master", rpc_threads=3),
             host("a", 8000, cpu_extra={"threads": 6, "big_cores": 2}),
             host("b", 8000, cpu_extra={"threads": None, "big_cores": 2}),
             host("c", 8000, cpu_extra={"threads": None, "big_cores": None})]
    assert [h.threads for h in make_plan(hosts, 1000).hosts] == [3, 6, 2, 1]


def test_a_host_known_only_from_its_data_is_a_linux_worker():
    bare = HostInput("bare", {**DEFAULTS, "ssh_hostname": "10.9.9.9", "ram_mb": 8000})
    plan = make_plan([host("box", 16000, llama_role="master"), bare], 1000)
    assert (plan.hosts[1].platform, plan.hosts[1].transport, plan.hosts[1].connect) == ("linux", "direct", "10.9.9.9:50052")


# --- the edges of the refusals ---------------------------------------------------------------------


def test_a_model_exactly_the_workers_usable_ram_fits():
    assert make_plan(cluster(), 7400).master.tensor_split == "0.689,0.311"


def test_the_master_maps_a_model_exactly_its_usable_ram():
    big = [host("box", 16000, llama_role="master"), host("w1", 16000), host("w2", 16000)]
    assert make_plan(big, 10700).master.load_mode == "mmap"  # 16000 × 0.7 − 500 = 10700
    assert make_plan(big, 10701).master.load_mode == "none"


def test_a_32_bit_master_loads_up_to_3072_mb():
    hosts = [host("box", 16000, arch="armv7l", llama_role="master"), host("w1", 16000), host("w2", 16000)]
    assert make_plan(hosts, 3072).master.name == "box"
    with pytest.raises(PlanError) as caught:
        make_plan(hosts, 3073)
    assert caught.value.reasons == ["box: a 32-bit (armv7l) master cannot load a 3073 MB model "
                                    "(about 3072 MB address space)"]


def test_a_hand_split_may_exceed_usable_ram_by_one_rounding_step():
    """rpc_ram_fraction 0.5: 5980 × 0.5 − 500 = 2490 usable. Model 10000 MB: a step is 10 MB, so a
    share of 0.25 × 10000 = 2500 = 2490 + 10 is allowed; 0.26 (2600) is not."""
    worker = host("w", 5980, rpc_ram_fraction=0.5)
    other = host("v", 64000)
    assert make_plan([host("box", 16000, llama_role="master", llama_tensor_split=[0.25, 0.75]), worker, other], 10000)
    with pytest.raises(PlanError) as caught:
        make_plan([host("box", 16000, llama_role="master", llama_tensor_split=[0.26, 0.74]), worker, other], 10000)
    assert caught.value.reasons == ["w: share 2600 MB exceeds its usable RAM (2490 MB)"]


def test_a_worker_with_no_usable_ram_is_refused_and_one_mb_is_enough():
    """1000 × 0.7 − 700 = 0 MB: refused; with 699 overhead, 1 MB: a (tiny) worker."""
    with pytest.raises(PlanError) as caught:
        make_plan([host("box", 16000, llama_role="master"), host("w", 8000), host("tiny", 1000, rpc_overhead_mb=700)], 100)
    assert str(caught.value) == (
        "tiny: usable RAM is 0 MB (1000 MB × 0.7 − 700 MB overhead): it cannot hold any tensors\n"
        "suggestion: remove these devices from the workers or lower rpc_overhead_mb")
    plan = make_plan([host("box", 16000, llama_role="master"), host("w", 8000), host("tiny", 1000, rpc_overhead_mb=699)], 100)
    assert plan.hosts[2].usable_mb == 1


@pytest.mark.parametrize("split, ok", [([0.5, 0.5], True), ([0.2, 0.8005], True), ([0.2, 0.802], False)])
def test_a_hand_split_must_sum_to_one_within_a_thousandth(split, ok):
    hosts = [host("box", 16000, llama_role="master", llama_tensor_split=split), host("w1", 16000), host("w2", 16000)]
    if ok:
        assert make_plan(hosts, 1000)
        return
    with pytest.raises(PlanError) as caught:
        make_plan(hosts, 1000)
    assert str(caught.value) == (
        f"box: llama_tensor_split: proportions sum to {sum(split):g}, not 1\n"
        "suggestion: give one proportion per worker in rank order, summing to 1, or drop llama_tensor_split "
        "to split by RAM")


def test_refusals_say_what_and_what_to_do():
    cases = [
        (lambda: make_plan(cluster(), 0),
         "cluster: model_size_mb: model size unknown\nsuggestion: set model_file (its size is used) or model_size_mb"),
        (lambda: make_plan(cluster(), None),
         "cluster: model_size_mb: model size unknown\nsuggestion: set model_file (its size is used) or model_size_mb"),
        (lambda: make_plan(cluster(), -1),
         "cluster: model_size_mb: model size unknown\nsuggestion: set model_file (its size is used) or model_size_mb"),
        (lambda: make_plan([host("a", 8000), host("b", 8000)], 100),
         'cluster: llama_role: need exactly one master, found none\nsuggestion: set llama_role = "master" on exactly one host'),
        (lambda: make_plan([host("a", 8000, llama_role="master")], 100),
         "cluster: llama_role: no RPC workers\nsuggestion: add at least one worker host"),
        (lambda: make_plan([host("box", 16000, llama_role="master"), HostInput("w", dict(DEFAULTS))], 100),
         "w: ram_mb: RAM unknown (no MemInfo fact and no ram_mb in data)\n"
         "suggestion: set ram_mb for hosts that cannot be reached"),
        (lambda: make_plan(cluster(llama_tensor_split=[1.0]), 100),
         "box: llama_tensor_split: 1 proportions for 2 RPC workers\n"
         "suggestion: give one proportion per worker in rank order, summing to 1, or drop llama_tensor_split "
         "to split by RAM"),
        (lambda: make_plan([host("box", 16000, arch="armv7l", llama_role="master"), host("w", 16000)], 4000),
         "box: a 32-bit (armv7l) master cannot load a 4000 MB model (about 3072 MB address space)\n"
         "suggestion: lower those shares in llama_tensor_split (or drop it to split by RAM), make a 64-bit host "
         "the master, or use a model or quantisation of at most 10700 MB (now 4000 MB; e.g. Q4_K_M is about 57% "
         "of Q8_0), or add devices"),
    ]
    for make, text in cases:
        with pytest.raises(PlanError) as caught:
            make()
        assert str(caught.value) == text


def test_a_tiny_model_is_still_a_model():
    assert make_plan(cluster(), 0.5).model_size_mb == 0.5


def test_plan_error_text_is_its_reasons_then_the_suggestion():
    assert str(PlanError(["a: x", "b: y"])) == "a: x\nb: y"
    assert str(PlanError(["a: x"], "do z")) == "a: x\nsuggestion: do z"


# --- the quantisation hint -------------------------------------------------------------------------
# Bits per weight (llama.cpp's block formats; K-quants as the model-wide mixes llama.cpp reports):
# F16 16, Q8_0 8.5 (34 bytes per 32 weights), Q6_K 6.56, Q5_K_M 5.69, Q5_0 5.5 (22 bytes per 32),
# Q4_K_M 4.85, Q4_0 4.5 (18 bytes per 32), Q3_K_M 3.91, Q2_K 2.96. A 1600 MB F16 model is 100 MB
# per bit, so the same model in each is 100 × bits MB.


@pytest.mark.parametrize("tag, size", [
    ("Q8_0", 850), ("Q6_K", 656), ("Q5_K_M", 569), ("Q5_0", 550), ("Q4_K_M", 485), ("Q4_0", 450),
    ("Q3_K_M", 391), ("Q2_K", 296),
])
def test_the_hint_names_the_largest_quantisation_that_fits(tag, size):
    assert quantisation_hint(1600, size, "gemma-F16.gguf") == (
        f"use a smaller quantisation: {tag} of this model is about {size} MB (now F16, 1600 MB; "
        f"the workers can hold {size} MB)")


def test_the_hint_never_offers_the_quantisation_the_model_has():
    # Q8_0 already fits 2000 MB; the first smaller one is Q6_K: 1000 × 6.56 / 8.5 = 772.
    assert quantisation_hint(1000, 2000, "m-Q8_0.gguf").startswith("use a smaller quantisation: Q6_K of this model")


def test_without_a_tag_the_hint_gives_a_size_never_below_zero():
    assert quantisation_hint(2000, 1000, "model.gguf") == (
        "use a model or quantisation of at most 1000 MB (now 2000 MB; e.g. Q4_K_M is about 57% of Q8_0), "
        "or add devices")
    assert "at most 0 MB" in quantisation_hint(2000, -50, "model.gguf")


@pytest.mark.parametrize("data", [
    {"model_name": "llama-Q8_0.gguf", "model_url": "https://example.invalid/download"},
    {"model_file": "/models/llama-Q8_0.gguf"},
    {"model_url": "https://example.invalid/llama-Q8_0.gguf"},
])
def test_the_hint_reads_the_quantisation_from_the_models_name(data):
    with pytest.raises(PlanError) as caught:
        make_plan(cluster(**data), 9000)
    assert "(now Q8_0, 9000 MB;" in caught.value.suggestion


# --- addresses -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("address, loopback", [
    ("localhost", True), ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("198.18.0.1", False), ("box.lan", False), ("0.0.0.0", False),
])
def test_loopback_addresses(address, loopback):
    assert is_loopback(address) is loopback


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "[::]"])
def test_a_worker_bound_everywhere_is_reached_at_its_cluster_address(bind):
    assert is_wildcard(bind)
    hosts = [host("box", 16000, llama_role="master"), host("w", 8000, rpc_bind=bind, cluster_address="10.1.1.5")]
    assert make_plan(hosts, 1000).hosts[1].connect == "10.1.1.5:50052"


def test_host_port_brackets_ipv6_once():
    assert host_port("::1", 5) == "[::1]:5"
    assert host_port("[::1]", 5) == "[::1]:5"
    assert host_port("box.lan", 5) == "box.lan:5"


def test_the_api_url_of_a_master_listening_everywhere_is_its_cluster_address():
    everywhere = settings_for("box", {"ssh_hostname": "box.lan", "llama_server_host": "0.0.0.0"})
    assert api_url_of("box", everywhere) == "http://box.lan:8080"
    other_port = settings_for("box", {"cluster_address": "10.0.0.1", "llama_server_port": 9000})
    assert api_url_of("box", other_port) == "http://10.0.0.1:9000"


def test_split_rounding_goes_to_the_largest_remainders():
    # 3/7 = 0.42857, 4/7 = 0.57143: floors 428 + 571 = 999, the spare step to the .857.
    assert split_by_capacity([3, 4]) == [0.429, 0.571]
    assert format_split([1.0, 0.0]) == "1,0"
    assert format_split([0.429, 0.571]) == "0.429,0.571"


# --- hints and the table `llamafleet plan` prints ---------------------------------------------------


def table_cluster() -> list[HostInput]:
    """Three workers: phone1 (5100 usable), board and bare (2300 each; bare known from its data
    only: no cores, no march). 9700 in all; a 9000 MB model: 5100/9700 = 0.52577 and 2300/9700 =
    0.23711 twice: floors 525 + 237 + 237 = 999, the spare step to phone1's .77: 0.526, 0.237,
    0.237; shares 4734, 2133, 2133, each leaving less than a tenth of its usable RAM."""
    bare = HostInput("bare", {**DEFAULTS, "ssh_hostname": "bare.lan", "ram_mb": 4000})
    return cluster() + [bare]


def test_the_plan_table():
    """phone1 has two clocks (cpufreq) and may use every CPU: pinned to its big cores 4-7; board
    reads no cpufreq and bare no CPU at all: not pinned, and the table says why; the master never."""
    hosts = table_cluster()
    hosts[1].facts["CpuProfile"].update(cpu_max_khz={"0-3": 1800000, "4-7": 2400000}, allowed_cpus="0-7")
    lines = render_table(make_plan(hosts, 9000)).split("\n")
    cells = [re.split(r" {2,}", line) for line in lines[:5]]
    assert cells == [
        ["host", "role", "rank", "address:port", "transport", "big/all cores", "threads", "pinned to", "march",
         "RAM MB", "share", "model MB", "expected MB", "headroom MB"],
        ["box", "master", "0", "box.lan", "-", "4/8", "4", "-", "armv8.2-a+dotprod", "16000", "-", "0", "9500",
         "6500"],
        ["phone1", "worker", "1", "127.0.0.1:50052", "tunnel", "4/8", "4", "4-7", "armv8.2-a+dotprod", "8000",
         "52.6%", "4734", "5234", "2766"],
        ["board", "worker", "2", "board.lan:50053", "direct", "4/8", "4", "- (no cpufreq)", "armv8.2-a+dotprod",
         "4000", "23.7%", "2133", "2633", "1367"],
        ["bare", "worker", "3", "bare.lan:50054", "direct", "?", "1", "- (CPU unknown)", "?", "4000", "23.7%",
         "2133", "2633", "1367"],
    ]
    # Every column starts where its header does.
    starts = [match.start() for match in re.finditer(r"\S+(?: \S+)*", lines[0])]
    for line in lines[1:5]:
        assert [match.start() for match in re.finditer(r"\S+(?: \S+)*", line)] == starts
    assert lines[5:] == [
        "",
        "model: 9000 MB",
        "master box: http://box.lan:8080  --load-mode mmap  -t 4",
        "  --rpc 127.0.0.1:50052,board.lan:50053,bare.lan:50054",
        "  -ts 0.526,0.237,0.237  -ngl all",
        "  split by usable RAM",
        # 9000 MB: no two of them hold it (7400 and 4600 MB)
        "  without phone1: the others cannot hold the model; the master waits for it",
        "  without board: the others cannot hold the model; the master waits for it",
        "  without bare: the others cannot hold the model; the master waits for it",
        "hint: phone1: tight: 4734 of 5100 MB usable RAM; a smaller quantisation leaves room for the OS",
        "hint: board: tight: 2133 of 2300 MB usable RAM; a smaller quantisation leaves room for the OS",
        "hint: bare: tight: 2133 of 2300 MB usable RAM; a smaller quantisation leaves room for the OS",
        "hint: 3 RPC workers: upstream reports stalls with 3+ workers; if the master hangs, try fewer, larger workers",
    ]


def test_the_plan_says_what_the_master_serves_with_when_a_worker_is_away():
    """4000 MB: any two hold it. Without phone1, board and bare split it evenly; without board,
    phone1 (5100) and bare (2300) by RAM: 0.689 and 0.311."""
    plan = make_plan(table_cluster(), 4000)
    lines = render_table(plan).split("\n")
    assert [line for line in lines if line.startswith("  without")] == [
        "  without phone1: -ts 0.5,0.5 over board bare",
        "  without board: -ts 0.689,0.311 over phone1 bare",
        "  without bare: -ts 0.689,0.311 over phone1 board",
    ]
    # One alone: only phone1 (5100 MB usable) holds 4000 MB, and it comes after every pair.
    assert [row.workers for row in plan.master.degraded if len(row.workers) == 1] == [("phone1",)]
    assert [len(row.workers) for row in plan.master.degraded] == [2, 2, 2, 1]


def test_tight_means_less_than_a_tenth_of_usable_ram_left():
    """rpc_ram_fraction 0.5: 11000 × 0.5 − 500 = 5000 usable; 4500 leaves 500, a tenth: not tight."""
    worker = host("w", 11000, rpc_ram_fraction=0.5)
    assert make_plan([host("box", 16000, llama_role="master"), worker], 4500).hints == []
    assert make_plan([host("box", 16000, llama_role="master"), worker], 4501).hints == [
        "w: tight: 4501 of 5000 MB usable RAM; a smaller quantisation leaves room for the OS"]


def test_a_master_that_reads_the_model_holds_only_its_overhead():
    big = [host("box", 16000, llama_role="master"), host("w1", 16000), host("w2", 16000)]
    master = make_plan(big, 10701).hosts[0]  # load mode none: no page cache of the model
    assert (master.share_mb, master.expected_mb, master.headroom_mb) == (0, 500, 15500)


def test_a_refusal_shows_the_hosts_own_fraction_and_overhead():
    with pytest.raises(PlanError) as caught:
        make_plan([host("box", 16000, llama_role="master"), host("w", 8000),
                   host("tiny", 1000, rpc_ram_fraction=0.5, rpc_overhead_mb=600)], 100)
    assert caught.value.reasons == [
        "tiny: usable RAM is -100 MB (1000 MB × 0.5 − 600 MB overhead): it cannot hold any tensors"]
