"""`llamafleet status`: what runit, systemd, /proc, ss, svlogd and llama-server print, parsed and
judged; the probe run for real in a local shell (stub sv and termux-battery-status, a fake
rpc-server, a fake llama-server that wants the API key); the whole command on a fake runner."""

from __future__ import annotations

import argparse
import http.server
import io
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from rpc_fakes import FAKE_BINARY, fake_rpc_process, free_port, planned_worker

from llamafleet import status, status_render
from llamafleet.gather import Gathered
from llamafleet.plan import HostInput
from llamafleet.status_probe import (
    MARK, Target, http_answer, listeners, parse_build, parse_prometheus, parse_server, parse_sv_status,
    parse_systemd_show, parse_temperatures, probe_command, restarts_since, svlogd_time,
)

BOOT_ID = "3f1c2a9e-7d41-4b6e-9a0c-5e2f8d7b6a14"
DEPLOYED = 1790928000  # 2026-10-02 08:00:00 UTC: the run script's mtime

MEMINFO = """MemTotal:        3921344 kB
MemFree:          412004 kB
MemAvailable:    2519040 kB
Buffers:           81236 kB
Cached:          1904120 kB
SwapTotal:             0 kB
"""
# What llama-server's /metrics answers (server_task_result_metrics::to_metrics, tools/server/server-task.cpp).
METRICS = """# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 1204
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 2048
# HELP llamacpp:tokens_predicted_seconds_total Total time spent generating tokens
# TYPE llamacpp:tokens_predicted_seconds_total counter
llamacpp:tokens_predicted_seconds_total 256
# HELP llamacpp:n_tokens_max Largest observed sequence length (prompt + generation)
# TYPE llamacpp:n_tokens_max counter
llamacpp:n_tokens_max 1.23457e+06
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 87.5
# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds 9.25
# HELP llamacpp:requests_processing Number of requests processing
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
# HELP llamacpp:requests_deferred Number of requests deferred
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 2
# HELP llamacpp:spec_decode_num_accepted_tokens_per_pos_total Accepted tokens per draft position
# TYPE llamacpp:spec_decode_num_accepted_tokens_per_pos_total counter
llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="0"} 5
"""
NOT_SUPPORTED = ('{"error":{"code":501,"message":"This server does not support metrics endpoint. '
                 'Start it with `--metrics`","type":"not_supported_error"}}')
SLOTS = json.dumps([{"id": 0, "n_ctx": 2048, "speculative": False, "is_processing": True},
                    {"id": 1, "n_ctx": 2048, "speculative": False, "is_processing": False}])
BATTERY = '{"health": "GOOD", "percentage": 87, "plugged": "PLUGGED_USB", "status": "CHARGING", "temperature": 31.2}'


def svlogd(epoch: int, text: str) -> str:
    """A line as `svlogd -tt` writes it (UTC)."""
    return time.strftime("%Y-%m-%d_%H:%M:%S", time.gmtime(epoch)) + f".{epoch % 100000:05d} {text}"


def answered(body: str, code: int = 200) -> str:
    return f"{body}\n@@http {code}"


def output(**sections) -> str:
    return "".join(f"{MARK}{key}\n{value}\n" for key, value in sections.items())


# --- the plan's hosts --------------------------------------------------------------------------


def host_inputs() -> list[HostInput]:
    cpu = {"arch": "aarch64", "big_cores": 4, "cores": {"a76": 4, "a55": 4}}
    linux = {"platform": "linux", "home": "/root", "prefix": None, "service_manager": "runit"}
    return [
        HostInput("linux1", {"llama_role": "master", "model_size_mb": 300, "ssh_hostname": "198.18.0.11",
                             "llama_server_port": 8080, "rpc_port_base": 50052},
                  {"CpuProfile": cpu, "MemInfo": {"total_mb": 3829}, "DevicePlatform": linux}),
        HostInput("linux2", {"ssh_hostname": "198.18.0.12", "rpc_port_base": 50052},
                  {"CpuProfile": cpu, "MemInfo": {"total_mb": 3829},
                   "DevicePlatform": {**linux, "service_manager": "systemd"}}),
        HostInput("phone1", {"ssh_hostname": "198.18.0.21", "ssh_port": 8022, "rpc_port_base": 50052},
                  {"CpuProfile": cpu, "MemInfo": {"total_mb": 7612},
                   "DevicePlatform": {"platform": "termux", "home": "/data/data/com.termux/files/home",
                                      "prefix": "/data/data/com.termux/files/usr", "service_manager": "termux-services"}},
                  groups=("termux",)),
    ]


def targets(errors: dict | None = None) -> dict[str, Target]:
    hosts = host_inputs()
    if errors:
        hosts = [HostInput(h.name, h.data, {}, h.groups) if h.name in errors else h for h in hosts]
    return {t.name: t for t in status.targets_from(Gathered(hosts, errors or {}))}


def test_the_targets_follow_the_plan():
    found = targets()
    assert [(t.name, t.planned.role, t.planned.rank) for t in found.values()] == [
        ("linux1", "master", 0), ("linux2", "worker", 1), ("phone1", "worker", 2)]
    assert found["linux1"].tunnels == {"llama-tunnel-phone1": 50053}
    assert found["linux1"].services == ["llama-server", "llama-tunnel-phone1"]
    assert found["linux2"].manager == "systemd" and found["phone1"].manager == "termux-services"
    assert found["phone1"].base == "/data/data/com.termux/files/home/llamafleet"
    assert found["linux1"].base == "/opt/llamafleet" and found["linux1"].server == ("198.18.0.11", 8080)
    # RAM-proportional: the phone has twice linux2's RAM, hence the larger share.
    assert found["phone1"].planned.split > found["linux2"].planned.split and found["phone1"].share_known


def test_an_unread_host_keeps_its_rank_and_port_but_no_one_has_a_known_share():
    found = targets(errors={"linux2": "cannot connect: timed out"})
    assert found["linux2"].planned.rank == 1 and found["linux2"].planned.rpc_port == 50052
    assert found["phone1"].planned.connect == "127.0.0.1:50053"
    assert not any(t.share_known for t in found.values())


# --- parsers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("line, state, seconds, pid", [
    ("run: llama-rpc: (pid 8123) 3725s; run: log: (pid 8120) 86400s", "running", 3725, 8123),
    ("down: llama-rpc: 12s, normally up, want up; run: log: (pid 8120) 86400s", "down", 12, None),
    ("finish: llama-server: (pid 912) 1s, normally up; run: log: (pid 40) 900s", "finish", 1, 912),
    ("warning: llama-rpc: unable to open supervise/ok: file does not exist", "unsupervised", None, None),
    ("fail: llama-rpc: runsv not running", "unsupervised", None, None),
    ("fail: llama-rpc: unable to change to service directory: file does not exist", "missing", None, None),
    ("", "unknown", None, None),
])
def test_sv_status_lines(line, state, seconds, pid):
    found = parse_sv_status(line)
    assert (found.state, found.uptime_s, found.pid) == (state, seconds, pid)


def test_systemd_show_gives_state_uptime_and_nrestarts():
    text = ("LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=2\n"
            "ActiveEnterTimestamp=Fri 2026-10-02 08:00:00 UTC\nActiveEnterTimestampMonotonic=5000000000\n")
    found = parse_systemd_show(text, uptime_s=8600.5)
    assert (found.state, found.uptime_s, found.restarts) == ("running", 3600, 2)
    failed = parse_systemd_show(text.replace("=active", "=failed").replace("=running", "=failed"), 8600.5)
    assert failed.state == "failed" and failed.uptime_s is None
    assert parse_systemd_show("LoadState=not-found\nActiveState=inactive\n", 1.0).state == "missing"


def test_restarts_are_the_start_lines_after_the_deploy_less_its_own_start():
    assert svlogd_time("2026-10-02_08:00:00.12345 Starting RPC server v7.0.0") == DEPLOYED
    lines = "\n".join(svlogd(DEPLOYED + delta, "Starting RPC server v7.0.0") for delta in (-86400, -100, 3, 700, 1900))
    # The run script is newer than the binaries: it decides (the start at -100 came before it).
    assert restarts_since(lines, f"{DEPLOYED}\n{DEPLOYED - 5000}") == 2
    assert restarts_since(lines, str(DEPLOYED + 1000)) == 0  # only the deploy's own start after it
    assert restarts_since(lines, "") is None


def test_temperatures_in_millidegrees_or_degrees_and_unused_zones():
    assert parse_temperatures("41200\n38900\n-273000\n0\n") == 41.2
    assert parse_temperatures("45\n") == 45
    assert parse_temperatures("0\n-273000\n") is None  # only unused zones: unknown, not 0 °C
    assert parse_temperatures("") is None


def test_prometheus_text_from_llama_server():
    values = parse_prometheus(METRICS)
    assert values["predicted_tokens_seconds"] == 9.25 and values["requests_deferred"] == 2
    assert values["n_tokens_max"] == 1234570.0
    assert "spec_decode_num_accepted_tokens_per_pos_total" not in values  # labelled: not a gauge of ours


def test_server_from_metrics_then_slots_then_nothing():
    server = parse_server(answered('{"status":"ok"}'), answered(METRICS), "")
    assert server["source"] == "metrics" and server["healthy"]
    assert (server["tokens_per_second"], server["tokens_per_second_avg"]) == (9.25, 8.0)
    assert (server["processing"], server["deferred"]) == (1, 2)
    # A quiet window since the last scrape (the gauge is reset by every read): the average stays.
    quiet = parse_server(answered('{"status":"ok"}'), answered(METRICS.replace("tokens_seconds 9.25", "tokens_seconds 0")), "")
    assert quiet["tokens_per_second"] is None and quiet["tokens_per_second_avg"] == 8.0
    slots = parse_server(answered('{"status":"ok"}'), answered(NOT_SUPPORTED, 501), answered(SLOTS))
    assert (slots["source"], slots["processing"], slots["slots"]) == ("slots", 1, 2)
    assert "501" in slots["metrics_error"]
    down = parse_server("curl: (7) Failed to connect to 198.18.0.11 port 8080\n@@http 000",
                        "curl: (7) Failed to connect\n@@http 000", "curl: (7)\n@@http 000")
    assert down["source"] is None and not down["healthy"]
    assert http_answer('{"error":"Loading model"}\n@@http 503') == (503, '{"error":"Loading model"}')


def test_build_in_progress_from_the_lock_and_ninja_steps():
    log = ("llamafleet: configure old\n[120/120] Linking CXX executable bin/llama-server\n"
           "llamafleet: compile done old in 400s\nllamafleet: configure new (/src)\n"
           "llamafleet: compile start new ggml-rpc-server\n[36/120] Building CXX object a.o\n[37/120] Building C object b.o\n")
    assert parse_build("pid 4242\nworker 4250\nage 74\n", log) == {
        "phase": "compiling", "step": 37, "total": 120, "elapsed_s": 74, "left_s": 166}  # 74 s for 37 steps: 83 more
    assert parse_build("pid 4242\n", "llamafleet: configure new (/src)\n") == {
        "phase": "compiling", "step": None, "total": None, "elapsed_s": None, "left_s": None}
    early = "llamafleet: compile start new x\n[3/120] Building C object a.o\n"
    assert parse_build("pid 1\nage 30\n", early)["left_s"] is None  # 3 steps say nothing of the pace yet
    assert parse_build("", log) is None  # no live build process: an old log is history
    assert parse_build("age 500\n", log) is None  # a lock left by a dead build
    copy = log + "llamafleet: install start new from phone2\n"
    assert parse_build("pid 4300\nage 2\n", copy)["phase"] == "installing"


def test_listening_sockets_from_ss():
    found = listeners("LISTEN 0      128    0.0.0.0:22       0.0.0.0:*\nLISTEN 0 1 198.18.0.12:50052 0.0.0.0:*\n"
                      "LISTEN 0      4096   [::]:8080        [::]:*\nLISTEN 0 4096 127.0.0.53%lo:53 0.0.0.0:*\n")
    assert found == {22: ["0.0.0.0"], 50052: ["198.18.0.12"], 8080: ["::"], 53: ["127.0.0.53"]}


# --- judging -----------------------------------------------------------------------------------

SYSTEMD_RUNNING = ("LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=0\n"
                   "ActiveEnterTimestampMonotonic=5000000000")
LINUX2_OK = {"uptime": "8600.50 17000.00", "boot_id": BOOT_ID, "meminfo": MEMINFO, "temps": "52000",
             "svc llama-rpc": SYSTEMD_RUNNING,
             "ss": "LISTEN 0 1 198.18.0.12:50052 0.0.0.0:*\nLISTEN 0 128 0.0.0.0:22 0.0.0.0:*"}
PHONE1_OK = {"uptime": "90000.1 1.0", "boot_id": BOOT_ID, "meminfo": MEMINFO, "temps": "",
             "svc llama-rpc": "run: llama-rpc: (pid 8123) 3725s; run: log: (pid 8120) 86400s",
             "defined llama-rpc": str(DEPLOYED), "starts llama-rpc": svlogd(DEPLOYED + 2, "Starting RPC server v7.0.0"),
             "record": f"{BOOT_ID} {DEPLOYED}", "cpuset_of": "8123", "cpuset": "/top-app",
             "allowed": "Name:\tggml-rpc-server\nCpus_allowed_list:\t0-7\n", "cpus": "0-7", "battery": BATTERY,
             "listen0": "8123\t/data/data/com.termux/files/home/llamafleet/bin/ggml-rpc-server\t-H\t127.0.0.1\t-p\t50053\t-t\t4\t",
             "listen1": "timeout", "listen2": "refused"}
LINUX1_OK = {"uptime": "9000.0 1.0", "boot_id": BOOT_ID, "meminfo": MEMINFO, "temps": "48000",
             "svc llama-server": "run: llama-server: (pid 700) 3000s; run: log: (pid 60) 9000s",
             "defined llama-server": str(DEPLOYED),
             "starts llama-server": svlogd(DEPLOYED + 5, "srv  llama_server: initializing ..."),
             "svc llama-tunnel-phone1": "run: llama-tunnel-phone1: (pid 650) 3100s; run: log: (pid 61) 9000s",
             "defined llama-tunnel-phone1": str(DEPLOYED),
             "ss": "LISTEN 0 512 198.18.0.11:8080 0.0.0.0:*\nLISTEN 0 128 127.0.0.1:50053 0.0.0.0:*",
             "health": answered('{"status":"ok"}'), "metrics": answered(METRICS)}


def judged(name: str, sections: dict, **changes) -> status.HostStatus:
    merged = {**sections, **changes}
    return status.evaluate(targets()[name], {k: v + "\n" for k, v in merged.items() if v is not None}, "linux1")


def test_healthy_hosts_have_no_problems():
    for name, sections in (("linux1", LINUX1_OK), ("linux2", LINUX2_OK), ("phone1", PHONE1_OK)):
        found = judged(name, sections)
        assert found.problems == [], (name, found.problems)
    phone = judged("phone1", PHONE1_OK)
    assert phone.services[0].restarts == 0 and phone.services[0].uptime_s == 3725
    assert phone.phone["wake_lock"] == "taken" and phone.phone["battery"]["percentage"] == 87
    assert phone.temperature_c is None  # unreadable: unknown, never ok
    assert phone.memory == {"total_mb": 3829, "available_mb": 2460, "used_mb": 1369}
    assert phone.bound == "127.0.0.1:50053 busy (serving its client)"
    master = judged("linux1", LINUX1_OK)
    assert master.server["tokens_per_second"] == 9.25 and master.bound == "198.18.0.11:8080; 127.0.0.1:50053"


def test_a_stopped_worker_gets_sv_up():
    found = judged("phone1", PHONE1_OK, **{"svc llama-rpc": "down: llama-rpc: 40s, normally up; run: log: (pid 1) 9s",
                                           "listen1": "refused"})
    assert [p.check for p in found.problems] == ["llama-rpc"]  # the bind is not judged twice
    assert found.problems[0].fix.startswith("SVDIR=/data/data/com.termux/files/usr/var/service sv up llama-rpc")
    assert "var/log/sv/llama-rpc/current" in found.problems[0].fix


def test_a_phone_after_a_reboot_without_termux_boot_runs_the_boot_script():
    found = judged("phone1", PHONE1_OK, **{"svc llama-rpc": "warning: llama-rpc: unable to open supervise/ok: file does not exist"})
    assert found.problems[0].detail == "llama-rpc is unsupervised"
    assert found.problems[0].fix == "run ~/.termux/boot/50-llamafleet in Termux (it starts termux-services)"
    gone = judged("linux2", LINUX2_OK, **{"svc llama-rpc": "LoadState=not-found\nActiveState=inactive"})
    assert gone.problems[0].fix.startswith("deploy again")


def test_a_failed_systemd_worker_gets_systemctl_and_a_crash_loop_is_a_problem():
    failed = judged("linux2", LINUX2_OK, **{"svc llama-rpc": "LoadState=loaded\nActiveState=failed\nSubState=failed"},
                    ss="LISTEN 0 128 0.0.0.0:22 0.0.0.0:*")
    assert len(failed.problems) == 1  # nothing listens because it stopped: one problem, not two
    assert failed.problems[0].fix.startswith("systemctl restart llamafleet-llama-rpc")
    looping = judged("linux2", LINUX2_OK, **{"svc llama-rpc": SYSTEMD_RUNNING.replace("NRestarts=0", "NRestarts=4")})
    assert [(p.check, p.severity) for p in looping.problems] == [("llama-rpc", "warn")]
    assert "journalctl -u llamafleet-llama-rpc" in looping.problems[0].fix


def test_no_wake_lock_this_boot_says_run_the_boot_script():
    found = judged("phone1", PHONE1_OK, record=f"a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d {DEPLOYED}")
    assert [p.check for p in found.problems] == ["wake lock"] and found.phone["wake_lock"] == "not taken"
    assert "~/.termux/boot/50-llamafleet" in found.problems[0].fix
    unknown = judged("phone1", PHONE1_OK, boot_id=None)
    assert unknown.phone["wake_lock"] == "unknown" and not unknown.problems


def test_a_dead_tunnel_is_restarted_on_the_master():
    found = judged("linux1", LINUX1_OK, ss="LISTEN 0 512 198.18.0.11:8080 0.0.0.0:*")
    assert [p.check for p in found.problems] == ["llama-tunnel-phone1"]
    assert found.problems[0].fix.startswith("SVDIR=/etc/service sv restart llama-tunnel-phone1 on linux1")
    down = judged("linux1", LINUX1_OK, **{"svc llama-tunnel-phone1": "down: llama-tunnel-phone1: 3s, normally up"})
    assert "sv restart llama-tunnel-phone1 on linux1" in down.problems[0].fix


def test_a_worker_bound_everywhere_or_elsewhere_is_a_problem():
    exposed = judged("linux2", LINUX2_OK, ss="LISTEN 0 1 0.0.0.0:50052 0.0.0.0:*")
    assert exposed.problems[0].check == "bound" and "unset rpc_bind" in exposed.problems[0].fix
    phone = judged("phone1", PHONE1_OK, listen2="accepted")
    assert phone.problems[0].check == "bound" and "198.18.0.21:50053 is not refused" in phone.problems[0].detail
    assert phone.problems[0].severity == "warn" and "rpc_transport = tunnel" in phone.problems[0].fix
    stranger = judged("phone1", PHONE1_OK, listen0="9000\t/usr/bin/ggml-rpc-server\t-H\t0.0.0.0\t-p\t50053\t")
    assert stranger.problems[0].check == "bound" and "deploy again" in stranger.problems[0].fix
    elsewhere = judged("linux2", LINUX2_OK, ss="LISTEN 0 1 127.0.0.1:50052 0.0.0.0:*")
    assert elsewhere.problems[0].detail == "llama-rpc planned on 198.18.0.12:50052, listening on 127.0.0.1:50052"
    assert elsewhere.problems[0].fix.startswith("deploy again")
    silent = judged("linux1", LINUX1_OK, ss="LISTEN 0 128 127.0.0.1:50053 0.0.0.0:*")
    assert [(p.check, p.detail) for p in silent.problems] == [("llama-server", "nothing listens on 198.18.0.11:8080")]
    assert silent.bound == "nothing on 198.18.0.11:8080; 127.0.0.1:50053"
    unusable = judged("linux2", LINUX2_OK, ss="")
    assert unusable.bound.startswith("unknown") and not unusable.problems


def test_a_stopped_service_during_a_compile_says_wait():
    found = judged("linux2", LINUX2_OK, **{"svc llama-rpc": "LoadState=loaded\nActiveState=inactive\nSubState=dead"},
                   build_lock="pid 4242", build_log="llamafleet: compile start k ggml-rpc-server\n[12/80] Building x")
    assert found.build == {"phase": "compiling", "step": 12, "total": 80, "elapsed_s": None, "left_s": None}
    assert "wait for the deploy" in found.problems[0].fix and "/opt/llamafleet/logs/build.log" in found.problems[0].fix


def test_heat_memory_battery_and_cpuset_warnings():
    found = judged("phone1", PHONE1_OK, temps="71500", cpuset="/background",
                   allowed="Cpus_allowed_list:\t0-3", meminfo=MEMINFO.replace("2519040", "102400"),
                   battery=BATTERY.replace("87", "9").replace('"CHARGING"', '"DISCHARGING"'))
    assert sorted(p.check for p in found.problems) == ["battery", "cpuset", "memory", "temperature"]
    assert all(p.severity == "warn" for p in found.problems)
    held = judged("phone1", PHONE1_OK, allowed="Cpus_allowed_list:\t0-3")  # /top-app, yet held to the little cores
    assert [p.check for p in held.problems] == ["cpuset"] and "held to CPUs 0-3 of 8" in held.problems[0].detail
    charging = judged("phone1", PHONE1_OK, battery=BATTERY.replace("87", "9"))
    assert not charging.problems and charging.phone["battery"]["percentage"] == 9
    no_api = judged("phone1", PHONE1_OK, battery="")  # Termux:API missing: timeout, nothing printed
    assert no_api.phone["battery"] is None and not no_api.problems


def test_a_pinned_worker_is_held_by_its_own_pin_not_by_android():
    """A worker the plan pins to 4-7 runs on 4-7 by its own taskset: not Android holding the
    app. Back on every CPU, a cpuset move reset its pin (kernels before 6.2): said, with the
    restart that pins it again; the little cores alone or a background cpuset: Android's doing."""
    target = targets()["phone1"]
    target.planned.cpu_pin = "4-7"

    def judge(**changes):
        return status.evaluate(target, {k: v + "\n" for k, v in {**PHONE1_OK, **changes}.items()}, "linux1")

    assert judge(allowed="Cpus_allowed_list:\t4-7").problems == []
    reset = judge()  # PHONE1_OK's worker runs on 0-7
    assert [(p.check, p.severity) for p in reset.problems] == [("cpuset", "warn")]
    assert reset.problems[0].detail == "llama-rpc runs on CPUs 0-7, not its big cores 4-7"
    assert "sv restart llama-rpc" in reset.problems[0].fix
    little = judge(allowed="Cpus_allowed_list:\t0-3")
    assert [p.check for p in little.problems] == ["cpuset"] and "held to CPUs 0-3 of 8" in little.problems[0].detail
    background = judge(allowed="Cpus_allowed_list:\t4-7", cpuset="/background")
    assert [p.check for p in background.problems] == ["cpuset"] and "/background" in background.problems[0].detail


def test_a_loading_master_is_not_ready_and_slots_stand_in_for_metrics():
    found = judged("linux1", LINUX1_OK, health=answered('{"error":{"code":503,"message":"Loading model"}}', 503),
                   metrics=answered(NOT_SUPPORTED, 501), slots=answered(SLOTS))
    assert [p.check for p in found.problems] == ["llama-server"] and "Loading model" in found.problems[0].detail
    assert found.server["source"] == "slots"


# --- the probe, run for real in a local shell --------------------------------------------------


def stub(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def local_runner(path: str, seen: list):
    def run(name, data, command):
        seen.append(command)
        result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60,
                                env=dict(os.environ, PATH=path))
        return result.returncode, result.stdout, result.stderr
    return run


def test_the_phone_probe_runs_in_a_shell_and_reads_a_worker(tmp_path):
    prefix, base, bin_dir = tmp_path / "usr", tmp_path / "home" / "llamafleet", tmp_path / "stubs"
    for directory in (prefix / "var/service/llama-rpc", prefix / "var/log/sv/llama-rpc", base / "run/build.lock",
                      base / "logs", base / "releases/r1", bin_dir):
        directory.mkdir(parents=True)
    run_script = prefix / "var/service/llama-rpc/run"
    run_script.write_text("#!/bin/sh\n")
    os.utime(run_script, (DEPLOYED, DEPLOYED))
    (base / "bin").symlink_to("releases/r1")
    os.utime(base / "bin", (DEPLOYED - 9000, DEPLOYED - 9000), follow_symlinks=False)
    logs = prefix / "var/log/sv/llama-rpc"
    (logs / "@400000006a000000.s").write_text(svlogd(DEPLOYED - 86400, "Starting RPC server v7.0.0") + "\n")
    (logs / "current").write_text("\n".join([
        svlogd(DEPLOYED + 1, "Starting RPC server v7.0.0"), svlogd(DEPLOYED + 2, "Accepted client connection"),
        svlogd(DEPLOYED + 600, "Starting RPC server v7.0.0"), svlogd(DEPLOYED + 900, "Starting RPC server v7.0.0")]) + "\n")
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    (base / "run/wake-lock").write_text(f"{boot_id} {int(time.time())}\n")
    (base / "run/build.lock/pid").write_text(f"{os.getpid()}\n")  # a live process holds the lock
    (base / "logs/build.log").write_text("llamafleet: compile start k ggml-rpc-server\n[7/93] Building CXX object x.o\n")
    stub(bin_dir, "sv", 'echo "run: $2: (pid 4242) 1800s; run: log: (pid 4200) 86400s"')
    stub(bin_dir, "termux-battery-status", f"echo '{BATTERY}'")
    port = free_port()
    planned = planned_worker("127.0.0.1", port, "127.0.0.1")
    target = Target(planned, {}, "termux-services", str(base), str(prefix), rpc_binary=FAKE_BINARY)
    seen: list[str] = []
    with fake_rpc_process("127.0.0.1", port) as process:
        found = status.check_host(target, local_runner(f"{bin_dir}:{os.environ['PATH']}", seen), "linux1")
        assert found.phone["cpuset_of"] == str(process.pid)  # the worker's own cpuset, not the shell's
    assert len(seen) == 1  # one command for the whole host
    assert found.reachable and found.services[0].state == "running" and found.services[0].uptime_s == 1800
    assert found.services[0].restarts == 2  # 3 starts after the run script was written, one was the deploy's
    assert found.phone["wake_lock"] == "taken" and found.phone["battery"]["status"] == "CHARGING"
    build = dict(found.build)
    elapsed = build.pop("elapsed_s")
    assert 0 <= elapsed < 60  # the lock directory's age, read on the device
    assert build == {"phase": "compiling", "step": 7, "total": 93, "left_s": round(elapsed * 86 / 7)}
    assert found.memory["total_mb"] > 0 and found.phone["cpus"]
    assert found.bound == f"127.0.0.1:{port} accepted"
    assert not [p for p in found.problems if p.check in ("bound", "llama-rpc", "wake lock", "battery")]


class FakeLlamaServer(http.server.BaseHTTPRequestHandler):
    key = "k3y-Only_For_Tests"
    seen: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.path == "/health":
            self._send(200, '{"status":"ok"}')
        elif self.headers.get("Authorization") != f"Bearer {self.key}":
            self._send(401, '{"error":{"message":"Invalid API Key","type":"authentication_error","code":401}}')
        else:
            self._send(200, METRICS)

    def _send(self, code, body):
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def test_the_master_probe_reads_metrics_with_the_key_from_a_file(tmp_path):
    base, bin_dir = tmp_path / "llamafleet", tmp_path / "stubs"
    (base / "etc").mkdir(parents=True)
    bin_dir.mkdir()
    (base / "etc/api-key").write_text(FakeLlamaServer.key + "\n")
    stub(bin_dir, "sv", 'echo "run: $2: (pid 700) 300s; run: log: (pid 60) 900s"')
    server = http.server.HTTPServer(("127.0.0.1", 0), FakeLlamaServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target = targets()["linux1"]
        # termux-services' layout under tmp_path: nothing outside it is read for the services.
        target = Target(target.planned, {}, "termux-services", str(base), str(tmp_path / "usr"), tunnels={},
                        server=("127.0.0.1", server.server_port))
        command = probe_command(target)
        assert FakeLlamaServer.key not in command
        seen: list[str] = []
        found = status.check_host(target, local_runner(f"{bin_dir}:{os.environ['PATH']}", seen), "linux1")
    finally:
        server.shutdown()
    assert ("/metrics", f"Bearer {FakeLlamaServer.key}") in FakeLlamaServer.seen
    assert found.server["source"] == "metrics" and found.server["tokens_per_second"] == 9.25
    assert found.server["healthy"] and f"127.0.0.1:{server.server_port}" in found.bound
    assert not found.problems, found.problems


# --- the whole command -------------------------------------------------------------------------


def fake_runner(outputs: dict):
    def run(name, data, command):
        if isinstance(outputs[name], Exception):
            raise outputs[name]
        return 0, outputs[name], ""
    return run


def command(*argv, outputs, tty=False):
    parser = argparse.ArgumentParser()
    status.register(parser.add_subparsers())
    args = parser.parse_args(["status", "inventory/mine.py", *argv])
    out = io.StringIO()
    out.isatty = lambda: tty
    code = status.run_status(args, runner=fake_runner(outputs), gather=lambda path: Gathered(host_inputs()), out=out)
    return code, out.getvalue()


def healthy_outputs() -> dict:
    return {"linux1": output(**LINUX1_OK), "linux2": output(**LINUX2_OK), "phone1": output(**PHONE1_OK)}


def test_a_healthy_cluster_prints_one_line_per_host_and_exits_0():
    code, text = command(outputs=healthy_outputs())
    lines = text.splitlines()
    assert code == 0
    assert lines[0].split()[:4] == ["host", "role", "rank", "ssh"]
    assert [line.split()[:4] for line in lines[1:4]] == [
        ["linux1", "master", "0", "ok"], ["linux2", "worker", "1", "ok"], ["phone1", "worker", "2", "ok"]]
    assert "9.2 tok/s; queue 1 running, 2 waiting" in lines[1]
    assert "wake lock taken; battery 87% charging; /top-app CPUs 0-7" in lines[3]
    assert "unknown" in lines[3]  # the phone's CPU temperature
    assert lines[-1] == "3 hosts: no problems"


def test_problems_are_listed_with_their_fix_and_exit_1():
    outputs = healthy_outputs()
    outputs["phone1"] = ConnectionRefusedError(111, "Connection refused")
    outputs["linux1"] = output(**{**LINUX1_OK, "ss": "LISTEN 0 512 198.18.0.11:8080 0.0.0.0:*"})
    code, text = command(outputs=outputs)
    assert code == 1
    assert [line.split()[:5] for line in text.splitlines() if line.startswith("phone1")] == [["phone1", "worker", "2", "DOWN", "?"]]
    assert "FAIL phone1 ssh: unreachable: ConnectionRefusedError" in text
    assert "FAIL linux1 llama-tunnel-phone1: dead tunnel: nothing listens on 127.0.0.1:50053" in text
    assert "     fix: SVDIR=/etc/service sv restart llama-tunnel-phone1 on linux1" in text
    assert text.splitlines()[-1] == "3 hosts: 2 problems on 2 of them"


def test_json_has_the_same_data():
    outputs = healthy_outputs()
    outputs["phone1"] = output(**{**PHONE1_OK, "record": ""})
    code, text = command("--json", outputs=outputs)
    data = json.loads(text)
    assert code == 1 and data["ok"] is False and data["problems"] == 1
    hosts = {h["host"]: h for h in data["hosts"]}
    assert set(hosts["phone1"]) >= {"host", "role", "rank", "platform", "reachable", "services", "bound", "memory",
                                    "temperature_c", "share", "server", "build", "phone", "problems"}
    assert hosts["phone1"]["problems"][0]["check"] == "wake lock" and hosts["phone1"]["problems"][0]["fix"]
    assert hosts["phone1"]["services"][0] == {"name": "llama-rpc", "state": "running", "uptime_s": 3725,
                                              "restarts": 0, "pid": 8123}
    assert hosts["linux2"]["share"]["fraction"] + hosts["phone1"]["share"]["fraction"] == pytest.approx(1)
    assert hosts["linux1"]["server"]["deferred"] == 2 and hosts["linux1"]["share"] is None


def test_watch_refreshes_until_interrupted_and_keeps_the_last_exit_code():
    snapshots = [[status.HostStatus("linux1", "master", 0, "linux", True)],
                 [status.HostStatus("linux1", "master", 0, "linux", True, problems=[status.Problem("x", "y", "z")])]]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    out = io.StringIO()
    args = argparse.Namespace(json=True, watch=2.5)
    code = status_render.show(lambda: snapshots[len(sleeps)], args, out, sleep=sleep, tty=False)
    documents = [json.loads(line) for line in out.getvalue().splitlines()]
    assert code == 1 and sleeps == [2.5, 2.5]
    assert [d["ok"] for d in documents] == [True, False]


def test_the_rich_table_on_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    code, text = command(outputs=healthy_outputs(), tty=True)
    assert code == 0
    assert "llamafleet status" in text and "3 hosts: no problems" in text
    assert "wake lock taken" in text and "\x1b[" in text  # styled for the terminal


def test_watch_on_a_terminal_redraws_the_table_in_place(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    calls = []

    def fetch():
        calls.append(1)
        return [status.HostStatus("linux1", "master", 0, "linux", True, services=[status.ServiceState("llama-server", "running", 60 * len(calls))])]

    def sleep(seconds):
        if len(calls) == 2:
            raise KeyboardInterrupt

    out = io.StringIO()
    code = status_render.show(fetch, argparse.Namespace(json=False, watch=1.0), out, sleep=sleep, tty=True)
    assert code == 0 and len(calls) == 2
    text = out.getvalue()
    assert "llama-server up 1m" in text and "llama-server up 2m" in text
    assert "\x1b[2K" in text  # the second frame erases the first: redrawn in place


def test_hosts_without_facts_are_noted_and_a_plan_that_cannot_be_made_exits_2(capsys):
    hosts = host_inputs()
    hosts[1] = HostInput(hosts[1].name, hosts[1].data, {}, hosts[1].groups)
    gathered = Gathered(hosts, {"linux2": "cannot connect: timed out"})
    args = argparse.Namespace(inventory="inventory/mine.py", json=True, watch=None)
    outputs = healthy_outputs()
    outputs["linux2"] = TimeoutError("timed out")
    out = io.StringIO()
    code = status.run_status(args, runner=fake_runner(outputs), gather=lambda path: gathered, out=out)
    data = json.loads(out.getvalue())
    assert code == 1 and data["notes"] == ["linux2: cannot connect: timed out (so the workers' shares are unknown)"]
    assert {h["host"]: h["share"]["fraction"] for h in data["hosts"] if h["share"]} == {"linux2": None, "phone1": None}
    no_master = [HostInput(h.name, {k: v for k, v in h.data.items() if k != "llama_role"}, h.facts, h.groups)
                 for h in host_inputs()]
    assert status.run_status(args, runner=fake_runner(outputs), gather=lambda path: Gathered(no_master)) == 2
    assert "need exactly one master" in capsys.readouterr().err
