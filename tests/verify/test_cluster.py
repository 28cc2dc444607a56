"""What a deployed llamafleet cluster must look like, derived from its plan (never hard-coded)."""

from __future__ import annotations

import json
import time
import urllib.request

from llamafleet.serving.firewall import CHAIN, FirewallPolicy, PortRule, iptables_rules
from llamafleet.serving.listening import check_listening, master_connections
from llamafleet.serving.model import local_sha256, model_dest
from llamafleet.serving.probes import tcp_reachable
from llamafleet.serving.netsettings import NET_SETTINGS, SettableSysctls
from llamafleet.serving.wakelock import BOOT_ID_FILE, parse_record
from llamafleet.verify_cli import complete

RPC_BINARY = "ggml-rpc-server"


def test_packages_present(node):
    if node.is_termux:
        wanted = [*node.data["termux_packages"], *node.data.get("extra_packages", [])]
        installed = node.host.check_output("dpkg-query -W -f '${Package}\\n'").split()
        missing = [package for package in wanted if package not in installed]
    else:
        wanted = [*node.data["apt_packages"], *node.data.get("extra_packages", [])]
        missing = [package for package in wanted if not node.host.package(package).is_installed]
    assert not missing, f"{node.name}: packages not installed: {missing}"


def _stamp(node) -> dict:
    stamp_file = node.host.file(node.paths.stamp)
    assert stamp_file.exists, f"{node.name}: no build stamp at {node.paths.stamp}"
    return json.loads(stamp_file.content_string)


def test_build_stamp_matches_the_plan(node):
    inputs = _stamp(node)["inputs"]
    wanted_target = "llama-server" if node.planned.role == "master" else RPC_BINARY
    assert wanted_target in inputs["targets"]
    assert "-DGGML_NATIVE=OFF" in inputs["cmake_args"]
    if node.planned.arch == "aarch64" and not node.data.get("llama_cpu_arch"):
        assert f"-DGGML_CPU_ARM_ARCH={node.planned.march}" in inputs["cmake_args"]
    archive = node.data.get("llama_cpp_archive")
    if archive:
        assert inputs["source"] == f"archive:{local_sha256(archive)}", "built from another source than the planned one"


def test_binaries_run(node):
    binary = "llama-server" if node.planned.role == "master" else RPC_BINARY
    result = node.host.run(f"{node.paths.bin}/{binary} --help")
    assert result.rc == 0, f"{node.name}: {binary} --help failed: {result.stderr[-500:]}"
    if binary == "llama-server":
        assert "--rpc" in result.stdout + result.stderr


def _is_up(node, service: str) -> bool:
    if node.service_manager == "systemd":
        return node.host.service(f"llamafleet-{service}").is_running
    return node.sv("status", service).stdout.startswith("run:")


def test_worker_service_supervised_and_up(worker):
    assert _is_up(worker, "llama-rpc"), f"{worker.name}: llama-rpc is not running under {worker.service_manager}"


def test_worker_listens_where_planned_and_not_everywhere(worker):
    # Connect probes and the rpc-server's command line, not testinfra's socket (ss/netstat):
    # Android 10+ denies those to apps. Another local address must refuse the port unless
    # rpc_bind is a wildcard on purpose.
    planned = worker.planned
    listening = check_listening(worker.shell, planned, RPC_BINARY)
    assert not listening.problems(), f"{worker.name}: " + "; ".join(listening.problems())
    if worker.data.get("rpc_bind") != "0.0.0.0":
        assert listening.elsewhere, f"{worker.name}: no other local address to probe"
    if planned.transport == "tunnel":
        assert planned.address == "127.0.0.1"


def test_boot_script_brings_the_worker_back(termux_worker):
    worker = termux_worker
    script = worker.host.file(f"{worker.platform['home']}/.termux/boot/50-llamafleet")
    assert script.exists and script.mode & 0o100, "boot script missing or not executable"
    assert "termux-wake-lock" in script.content_string
    assert "start-services.sh" in script.content_string


def test_wake_lock_taken_in_this_boot(termux_worker):
    """Android cannot be asked for the wake lock: llamafleet's record must name this boot, or
    the phone dozes when idle and stalls every token."""
    worker = termux_worker
    record = worker.host.run(f"cat {worker.paths.wake_lock_record}").stdout
    boot_id = worker.host.check_output(f"cat {BOOT_ID_FILE}").strip()
    taken = parse_record(record)
    assert taken is not None, f"{worker.name}: no wake lock taken since boot (no record): the phone dozes when idle"
    assert taken.boot_id == boot_id, f"{worker.name}: the wake lock was taken in an earlier boot, not this one"


def test_model_present_with_its_sha256(master):
    path = model_dest(master.data, master.paths.models)
    model = master.host.file(path)
    assert model.exists, f"{master.name}: no model at {path}"
    assert model.sha256sum == master.data["model_sha256"]


def test_linux_sysctl_values(sysctl_node):
    node = sysctl_node
    fact = SettableSysctls()
    settable = fact.process(node.host.run(fact.command([s.key for s in NET_SETTINGS])).stdout.splitlines())
    checked = 0
    for setting in NET_SETTINGS:
        if setting.key not in settable:
            continue  # the machine's alone here (network namespace): the drop-in keeps it for boot
        actual = " ".join(str(node.host.sysctl(setting.key)).split())  # multi-value keys print tabs
        assert actual == setting.value, f"{node.name}: {setting.key} is {actual}, wanted {setting.value}"
        checked += 1
    assert checked, "no llamafleet sysctl key is settable here"
    assert node.host.file("/etc/sysctl.d/90-llamafleet.conf").exists


def _expected_policy(node, cluster) -> FirewallPolicy:
    master = next(h for h in cluster.plan.hosts if h.role == "master")
    rules = []
    if node.planned.role == "worker" and node.planned.address != "127.0.0.1":
        rules.append(PortRule(node.planned.rpc_port, (master.cluster_address,)))
    if node.planned.role == "master":
        sources = [node.planned.cluster_address, *node.data.get("api_allowed_sources", [])]
        rules.append(PortRule(int(node.data["llama_server_port"]), tuple(dict.fromkeys(sources))))
    return FirewallPolicy(rules)


def test_linux_firewall_rules(firewall_node, cluster):
    node = firewall_node
    chain = node.host.run(f"iptables -w -S {CHAIN}")
    assert chain.rc == 0, f"{node.name}: no {CHAIN} chain"
    live = [line for line in chain.stdout.splitlines() if line.startswith("-A ")]
    assert live == iptables_rules(_expected_policy(node, cluster))
    assert node.host.run(f"iptables -w -C INPUT -j {CHAIN}").rc == 0, "INPUT does not jump to the chain"


def test_master_reaches_every_worker(master, cluster):
    for worker in cluster.plan.workers():
        address, port = worker.connect.rsplit(":", 1)
        probe = master.host.run(tcp_reachable(address, int(port)))
        assert probe.rc == 0, f"{master.name} cannot reach {worker.name} at {worker.connect}"


def test_tunnels_up(master, cluster):
    for worker in [w for w in cluster.plan.workers() if w.transport == "tunnel"]:
        assert _is_up(master, f"llama-tunnel-{worker.name}"), f"tunnel to {worker.name} is not running"


def test_api_key_file_is_private(master):
    key_file = master.host.file(f"{master.paths.base}/etc/api-key")
    assert key_file.exists and key_file.mode == 0o600


def test_master_health(master, cluster):
    # /health answers 503 while the model loads: a bounded wait, not a single look.
    assert _wait_healthy(cluster.plan.master.api_url, 180)


def _rpc_peers(master, worker) -> list[str]:
    """The master's established connections to the worker as it dials it (read on the master:
    a phone worker cannot list its sockets)."""
    return master_connections(master.shell, worker).evidence


def _wait_healthy(api_url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=5) as response:
                if json.loads(response.read()).get("status") == "ok":
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


def _complete_once_recovered(api_url: str, api_key: str, prompt: str) -> tuple[dict, int]:
    """A completion, allowing one failure: llama-server aborts when it finds a worker
    connection broken (a restarted worker; upstream behaviour), and its supervisor brings it
    back in seconds with fresh connections. Returns the answer and the failures seen."""
    failures = 0
    while True:
        assert _wait_healthy(api_url, 180), f"{api_url}/health not ok within 180 s"
        try:
            return complete(api_url, api_key, prompt, n_predict=16), failures
        except OSError as error:
            failures += 1
            if failures > 1:
                raise AssertionError(f"completion failed twice: {error}") from error
            print(f"\ncompletion failed once ({error}); the master restarts after a worker restart")


def test_completion_through_every_worker(master, cluster, api_key):
    started = time.monotonic()
    answer, failures = _complete_once_recovered(cluster.plan.master.api_url, api_key, "The capital of France is")
    elapsed = time.monotonic() - started
    assert answer.get("content", "").strip(), "empty completion"
    assert answer.get("tokens_predicted", 0) > 0
    print(f"\ncompletion: {answer['tokens_predicted']} tokens, "
          f"{answer['timings']['predicted_per_second']:.1f} tokens/s, {elapsed:.2f} s"
          f"{' after one master restart' if failures else ''}: {answer['content']!r}")
    for planned in cluster.plan.workers():
        assert _rpc_peers(master, planned), (
            f"{planned.name}: {master.name} holds no connection to {planned.connect}: the master does not use it"
        )
