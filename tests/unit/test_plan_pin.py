"""The plan's pin (decide.cpu_pin_of, PlannedHost.cpu_pin): a big.LITTLE worker runs on its big
cores, chosen from cpufreq among the CPUs its processes may use, and its default threads are at
most their number; where nothing is pinned the plan says why. Expectations from
group_data/all.py's `rpc_pin_big_cores`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamafleet.cpu.affinity import parse_cpu_list
from llamafleet.cpu.profile import parse_cpuinfo
from llamafleet.plan import HostInput, make_plan
from llamafleet.plan.decide import cpu_pin_of, threads_of
from llamafleet.settings import settings_for

DATA = Path(__file__).resolve().parents[1] / "data" / "cpuinfo"
MODEL = {"model_url": "https://example.invalid/m-Q4_0.gguf"}
TERMUX = {"platform": "termux", "home": "/data/data/com.termux/files/home",
          "prefix": "/data/data/com.termux/files/usr", "service_manager": "termux-services"}
G2_TIERS = {"0-3": 1803000, "4-5": 2348000, "6-7": 2850000}


def tensor_g2(allowed: str | None = "0-7", clocks: dict | None = None) -> dict:
    """The CpuProfile fact of a Pixel 7: its real /proc/cpuinfo (4 big cores by their MIDR),
    its cpufreq clocks and the CPUs the reading shell may use (`nproc` counts the same)."""
    profile = parse_cpuinfo((DATA / "google-tensor-g2.txt").read_text(), "aarch64").to_dict()
    return {**profile, "cpu_max_khz": G2_TIERS if clocks is None else clocks, "allowed_cpus": allowed,
            "usable_cpus": len(parse_cpu_list(allowed)) if allowed else None}


def settings(**data):
    return settings_for("phone1", data)


def test_a_three_clock_phone_allowed_every_cpu_is_pinned_to_4_7():
    cpu = tensor_g2()
    assert cpu["big_cores"] == 4 and cpu["threads"] == 4
    assert cpu_pin_of(settings(), cpu, "worker") == ("4-7", None)
    assert threads_of(settings(), cpu, "4-7") == 4


@pytest.mark.parametrize("cpu, why", [
    # The lab's ARM phone: 8 CPUs in sysfs, 2 allowed by the scheduler, both little.
    (tensor_g2("0-1"), "big 4-7 not among allowed 0-1"),
    (tensor_g2(clocks={"0-7": 2000000}), "one clock for all CPUs"),
    (tensor_g2(clocks={}), "no cpufreq"),
    (tensor_g2(None), "allowed CPUs unknown"),
    ({}, "CPU unknown"),
    # A Ryzen's preferred cores read higher max clocks than the others: not big.LITTLE.
    ({"arch": "x86_64", "cpu_max_khz": {"0-13": 5100000, "14-15": 5400000}, "allowed_cpus": "0-15"}, "x86_64, not ARM"),
    # A recorded fact edited by hand: no pin, and which keys to look at.
    ({**tensor_g2(), "cpu_max_khz": {"cpu0": "fast"}}, "CpuProfile cpu_max_khz/allowed_cpus unreadable"),
    ({**tensor_g2(), "cpu_max_khz": ["0-3"]}, "CpuProfile cpu_max_khz/allowed_cpus unreadable"),
])
def test_no_pin_and_why(cpu, why):
    assert cpu_pin_of(settings(), cpu, "worker") == (None, why)


def test_the_tunable_turns_it_off_and_the_master_is_never_pinned():
    assert settings().rpc_pin_big_cores is True
    assert cpu_pin_of(settings(rpc_pin_big_cores=False), tensor_g2(), "worker") == (None, "rpc_pin_big_cores off")
    assert cpu_pin_of(settings(), tensor_g2(), "master") == (None, None)


def test_pinned_threads_never_exceed_the_pinned_cpus():
    """Cores the CPU table does not know count as big (8 here), the clocks still tell 4 apart;
    rpc_threads, when given, is the user's and stands."""
    unknown_cores = {"arch": "aarch64", "big_cores": 8, "threads": 8, "cpu_max_khz": G2_TIERS, "allowed_cpus": "0-7"}
    pin, _ = cpu_pin_of(settings(), unknown_cores, "worker")
    assert pin == "4-7" and threads_of(settings(), unknown_cores, pin) == 4
    assert threads_of(settings(), unknown_cores) == 8
    assert threads_of(settings(), unknown_cores, "6-7") == 2
    assert threads_of(settings(), {**unknown_cores, "usable_cpus": 1}, pin) == 1
    assert threads_of(settings(rpc_threads=6), unknown_cores, pin) == 6


def phone(name: str, address: str, cpu: dict, **data) -> HostInput:
    return HostInput(name, {"ssh_hostname": address, **MODEL, **data},
                     {"MemInfo": {"total_mb": 8000}, "DevicePlatform": TERMUX, "CpuProfile": cpu}, ("termux",))


def test_the_plan_carries_the_pin_and_its_reason_as_json():
    """As `plan --record` writes facts and `plan --json` the plan: both survive JSON."""
    cpu = json.loads(json.dumps(tensor_g2()))
    master = phone("phone0", "10.0.0.20", cpu, llama_role="master")
    plan = make_plan([master, phone("phone1", "10.0.0.21", cpu),
                      phone("phone2", "10.0.0.22", json.loads(json.dumps(tensor_g2("0-1"))))], 1000)
    rows = {h.name: (h.cpu_pin, h.cpu_pin_reason, h.threads) for h in plan.hosts}
    assert rows == {"phone0": (None, None, 4), "phone1": ("4-7", None, 4),
                    "phone2": (None, "big 4-7 not among allowed 0-1", 2)}
    hosts = json.loads(json.dumps(plan.to_dict()))["hosts"]
    assert [(h["name"], h["cpu_pin"]) for h in hosts] == [("phone0", None), ("phone1", "4-7"), ("phone2", None)]
