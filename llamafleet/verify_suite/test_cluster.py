"""What a deployed llamafleet cluster must look like, derived from its plan (never hard-coded)."""

from __future__ import annotations

import json
import re
import shlex
import time
import urllib.error
import urllib.request

from llamafleet.serving.listening import check_listening, master_connections
from llamafleet.serving.model import local_sha256
from llamafleet.serving.probes import connect_probe, tcp_reachable
from llamafleet.serving.netsettings import NET_SETTINGS, SettableSysctls
from llamafleet.layout import TERMUX_BOOT_SCRIPT
from llamafleet.serving.wakelock import BOOT_ID_FILE, parse_record
from llamafleet.settings import settings_for
from llamafleet.verify_cli import complete
from llamafleet.verify_suite.live_firewall import live_firewall
from llamafleet.verify_suite.oracles import (
    authorized_key_options,
    cluster_address,
    expected_rules,
    firewall_problems,
    worker_rpc_port,
)


def test_packages_present(node):
    listed = node.settings.termux_packages if node.is_termux else node.settings.apt_packages
    wanted = [*listed, *node.settings.extra_packages]
    # runit where it runs the services (the deploy adds it), not checked beside systemd.
    if node.service_manager == "runit":
        wanted.append("runit")
    elif not node.is_termux:
        wanted = [package for package in wanted if package != "runit"]
    if node.is_termux and node.planned.cpu_pin:
        wanted.append("util-linux")  # taskset, which starts the pinned worker
    if node.is_termux:
        installed = node.host.check_output("dpkg-query -W -f '${Package}\\n'").split()
        missing = [package for package in wanted if package not in installed]
    else:
        missing = [package for package in wanted if not node.host.package(package).is_installed]
    assert not missing, f"{node.name}: packages not installed: {missing}"


def _stamp(node) -> dict:
    stamp_file = node.host.file(node.paths.stamp)
    assert stamp_file.exists, f"{node.name}: no build stamp at {node.paths.stamp}"
    return json.loads(stamp_file.content_string)


def test_build_stamp_matches_the_plan(node):
    inputs = _stamp(node)["inputs"]
    assert node.planned.binary in inputs["targets"]
    assert "-DGGML_NATIVE=OFF" in inputs["cmake_args"]
    if node.planned.arch == "aarch64" and not node.settings.llama_cpu_arch:
        assert f"-DGGML_CPU_ARM_ARCH={node.planned.march}" in inputs["cmake_args"]
    archive = node.settings.llama_cpp_archive
    if archive:
        assert inputs["source"] == f"archive:{local_sha256(archive)}", "built from another source than the planned one"


def test_binaries_run(node):
    binary = node.planned.binary
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
    listening = check_listening(worker.shell, planned, planned.binary)
    assert not listening.problems(), f"{worker.name}: " + "; ".join(listening.problems())
    if worker.settings.rpc_bind != "0.0.0.0":
        assert listening.elsewhere, f"{worker.name}: no other local address to probe"
    if planned.transport == "tunnel":
        assert planned.address == "127.0.0.1"


def test_worker_port_is_recorded_on_it(worker):
    """The record the next plans read (README "Add or remove a device") names the port the
    worker serves on: read here with testinfra, not through the product's fact."""
    content = worker.host.file(worker.paths.rpc_port_record).content_string
    recorded = re.findall(r"^rpc_port=(\d+)$", content, re.M)
    assert recorded == [str(worker.planned.rpc_port)], (
        f"{worker.name}: {worker.paths.rpc_port_record} records {recorded}, the worker serves on {worker.planned.rpc_port}")


def test_boot_script_brings_the_worker_back(termux_worker):
    worker = termux_worker
    script = worker.host.file(f"{worker.platform['home']}/{TERMUX_BOOT_SCRIPT}")
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
    path = master.planned.model_path
    model = master.host.file(path)
    assert model.exists, f"{master.name}: no model at {path}"
    assert model.sha256sum == master.settings.model_sha256


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


def test_linux_firewall_rules(firewall_node, cluster):
    """The rules as the policy says in plain terms (oracles.expected_rules, from the inventory's
    addresses and ports), compared with the live ones in the backend the deploy chose: per port,
    what is admitted, then a DROP (a reject, for firewalld)."""
    node = firewall_node
    expected = expected_rules(node.name, cluster.data, recorded=cluster.recorded_ports)
    if node.planned.role == "worker":
        # The port must be the one the rpc-server really serves, or the rules guard nothing.
        assert all(rule.port == node.planned.rpc_port for rule in expected), (
            f"{node.name}: the inventory gives RPC port {[r.port for r in expected]}, the plan {node.planned.rpc_port}"
        )
    live = live_firewall(node, expected)
    problems = live.problems + firewall_problems(live.rules, live.expected)
    assert not problems, f"{node.name}: " + "; ".join(problems) + f"\nlive: {live.rules}\nexpected: {live.expected}"


def test_linux_firewall_is_evaluated_first(firewall_node, cluster):
    """llamafleet's rules decide before any rule the host had: with iptables, INPUT jumps to its
    chain first (read from `iptables -S INPUT` in order); with ufw, its allows and then its deny
    come before any other rule admitting the port; with firewalld, the reject runs before the
    zone's other primitives and after the accepts (priorities)."""
    node = firewall_node
    expected = expected_rules(node.name, cluster.data, recorded=cluster.recorded_ports)
    if not expected:
        return  # nothing to protect on this host (a tunnelled Linux worker): nothing to place
    placement = live_firewall(node, expected).placement
    assert not placement, f"{node.name}: " + "; ".join(placement)


def test_master_reaches_every_worker(master, cluster):
    for worker in cluster.plan.workers():
        address, port = worker.connect.rsplit(":", 1)
        probe = master.host.run(tcp_reachable(address, int(port)))
        assert probe.rc == 0, f"{master.name} cannot reach {worker.name} at {worker.connect}"


def test_tunnels_up(master, cluster):
    for worker in [w for w in cluster.plan.workers() if w.transport == "tunnel"]:
        assert _is_up(master, f"llama-tunnel-{worker.name}"), f"tunnel to {worker.name} is not running"


def test_tunnel_key_is_restricted_in_authorized_keys(tunnel_worker, cluster, tunnel_public_key):
    """The worker accepts the master's tunnel key on one line: no pty, no agent or X11
    forwarding, a forced command (`restrict` alone still lets the key run any command), and
    local forwards to 127.0.0.1:<its RPC port> only."""
    worker = tunnel_worker
    path = f"{worker.platform['home']}/.ssh/authorized_keys"
    content = worker.host.file(path).content_string
    blob = tunnel_public_key.split()[1]
    lines = [line for line in content.splitlines() if blob in line.split()]
    assert len(lines) == 1, f"{worker.name}: the tunnel key is on {len(lines)} lines of {path}, wanted 1"
    options = authorized_key_options(lines[0])
    names = {name for name, _ in options}
    assert "restrict" in names or {"no-pty", "no-agent-forwarding", "no-x11-forwarding", "no-user-rc"} <= names, lines[0]
    assert not names & {"pty", "agent-forwarding", "x11-forwarding", "user-rc"}, f"{worker.name}: re-enabled: {lines[0]}"
    assert "command" in names, f"{worker.name}: no forced command: the tunnel key can run a shell: {lines[0]}"
    port = worker_rpc_port(cluster.data, worker.name, cluster.recorded_ports)
    permitted = [value for name, value in options if name == "permitopen"]
    assert permitted == [f"127.0.0.1:{port}"], f"{worker.name}: the key may forward to {permitted}, not 127.0.0.1:{port} only"


_AUTHENTICATED = re.compile(r"Authenticated to |Authentication succeeded")


def _tunnel_ssh(master, cluster, worker_name: str) -> tuple[str, str, str, int]:
    """The master's ssh with its tunnel key and known hosts (where tasks/master.py puts them),
    as the tunnels use it: (command, user@address, address, ssh port) for one worker."""
    data = cluster.data[worker_name]
    settings = settings_for(worker_name, data)
    address, port = cluster_address(worker_name, data), settings.ssh_port or 22
    etc = f"{master.paths.base}/etc"
    argv = [
        "ssh", "-F", "/dev/null", "-i", f"{etc}/tunnel_ed25519", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={etc}/tunnel_known_hosts", "-o", "StrictHostKeyChecking=yes",
        "-o", "ConnectTimeout=10", "-p", str(port),
    ]
    return shlex.join(argv), f"{settings.ssh_user or 'root'}@{address}", address, port


def _bash(node, script: str):
    return node.host.run(f"bash -c {shlex.quote(script)}")


def _key_values(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def test_tunnel_key_runs_no_command_and_no_shell(tunnel_worker, node_for, cluster):
    """From the master, the tunnel key logs in (the tunnels need it) but neither a command nor a
    shell runs: the marker a command would print never comes back."""
    worker, master = tunnel_worker, node_for(cluster.plan.master.name)
    ssh, target, _, _ = _tunnel_ssh(master, cluster, worker.name)
    marker = "llamafleet-probe-ran"
    # Positive control: where the command does run (the owner's login), it prints the marker.
    assert marker in worker.host.run(f"echo {marker}").stdout
    command = master.host.run(f"timeout 30 {ssh} -v {target} {shlex.quote('echo ' + marker)} </dev/null")
    assert _AUTHENTICATED.search(command.stderr), (
        f"{worker.name}: the tunnel key does not log in at all, so its restrictions are not what refused it:\n"
        + command.stderr[-2000:]
    )
    assert marker not in command.stdout, f"{worker.name}: the tunnel key ran a command (rc {command.rc})"
    shell = master.host.run(f"echo {shlex.quote('echo ' + marker)} | timeout 30 {ssh} -v -T {target}")
    assert _AUTHENTICATED.search(shell.stderr), shell.stderr[-2000:]
    assert marker not in shell.stdout, f"{worker.name}: the tunnel key got a shell (rc {shell.rc})"


# Bash on the master: the first local port from $1 on that nothing accepts.
_FREE_PORT = "free_port() { p=$1; while (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; do p=$((p+1)); done; echo $p; }; "


def test_tunnel_key_forwards_only_the_rpc_port(tunnel_worker, node_for, cluster):
    """From the master, one ssh with the tunnel key forwards two local ports: one to the
    worker's sshd (127.0.0.1:<ssh port>), which must not be reached (no SSH banner comes
    through), and one to its RPC port, which is (positive control: the connection is held open,
    not closed at once as a refused channel is). The banner reader is checked on the worker's
    sshd directly."""
    worker, master = tunnel_worker, node_for(cluster.plan.master.name)
    ssh, target, address, ssh_port = _tunnel_ssh(master, cluster, worker.name)
    rpc_port = worker_rpc_port(cluster.data, worker.name, cluster.recorded_ports)
    read8 = "head -c 8 <&3\" 2>/dev/null | tr -cd 'A-Za-z0-9.-'"
    script = (
        _FREE_PORT
        + "denied=$(free_port 47311); allowed=$(free_port $((denied + 1))); err=$(mktemp); "
        + f"{ssh} -N -o ExitOnForwardFailure=yes -L 127.0.0.1:$denied:127.0.0.1:{ssh_port} "
        + f"-L 127.0.0.1:$allowed:127.0.0.1:{rpc_port} {target} 2>$err & pid=$!; "
        + "i=0; until (exec 3<>/dev/tcp/127.0.0.1/$denied) 2>/dev/null || [ $i -ge 150 ]; do sleep 0.1; i=$((i+1)); done; "
        + "kill -0 $pid 2>/dev/null && echo alive=yes || echo alive=no; "
        + f"echo denied_read=$(timeout 5 bash -c \"exec 3<>/dev/tcp/127.0.0.1/$denied; {read8}); "
        + "timeout 3 bash -c \"exec 3<>/dev/tcp/127.0.0.1/$allowed; head -c 1 <&3 >/dev/null\" 2>/dev/null; echo allowed_rc=$?; "
        + f"echo direct_read=$(timeout 5 bash -c \"exec 3<>/dev/tcp/{address}/{ssh_port}; {read8}); "
        + "kill $pid 2>/dev/null; wait $pid 2>/dev/null; echo '--- ssh:'; cat $err; rm -f $err"
    )
    result = _bash(master, script)
    seen = _key_values(result.stdout)
    assert seen.get("alive") == "yes", f"{worker.name}: the tunnel key's ssh did not stay up: {result.stdout}"
    assert seen.get("direct_read", "").startswith("SSH-"), f"control: no SSH banner from {address}:{ssh_port} directly: {result.stdout}"
    assert seen.get("allowed_rc") == "124", f"control: the forward to the RPC port was closed at once: {result.stdout}"
    assert "SSH-" not in seen.get("denied_read", ""), (
        f"{worker.name}: the tunnel key forwards to its sshd (127.0.0.1:{ssh_port}), not only to the RPC port: {result.stdout}"
    )


def test_tunnel_key_cannot_listen_on_the_worker(tunnel_worker, node_for, cluster):
    """A remote forward (ssh -R) with the tunnel key would let the master's key listen on the
    worker's loopback (where the rpc-server listens): refused. Control: the same ssh with the
    allowed local forward instead stays up."""
    worker, master = tunnel_worker, node_for(cluster.plan.master.name)
    ssh, target, _, _ = _tunnel_ssh(master, cluster, worker.name)
    rpc_port = worker_rpc_port(cluster.data, worker.name, cluster.recorded_ports)
    listen = next(
        port for port in range(47411, 47511)
        if worker.host.run(connect_probe("127.0.0.1", port)).stdout.strip() == "refused"
    )  # free on the worker, so a refusal is sshd's and not a port in use
    held = _bash(master, _FREE_PORT + (
        f"timeout 8 {ssh} -N -o ExitOnForwardFailure=yes -L 127.0.0.1:$(free_port 47611):127.0.0.1:{rpc_port} {target}; echo rc=$?"
    ))
    assert _key_values(held.stdout).get("rc") == "124", f"control: the allowed forward did not stay up: {held.stdout} {held.stderr}"
    remote = master.host.run(
        f"timeout 8 {ssh} -N -o ExitOnForwardFailure=yes -R 127.0.0.1:{listen}:127.0.0.1:{rpc_port} {target}; echo rc=$?"
    )
    assert _key_values(remote.stdout).get("rc") != "124", (
        f"{worker.name}: the tunnel key may listen on the worker's 127.0.0.1:{listen} (ssh -R held for 8 s)"
    )


def test_api_key_on_the_master_is_the_controllers(master, api_key):
    """The key llama-server reads is the one the controller keeps and prints once."""
    on_master = master.host.file(f"{master.paths.base}/etc/api-key").content_string.strip()
    assert on_master, f"{master.name}: empty API key file"
    assert on_master == api_key, f"{master.name}: the API key differs from the controller's api-key (in .llamafleet/secrets/ beside the inventory)"


def _http_status(url: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_api_refuses_a_missing_or_wrong_key(master, cluster, api_key):
    """The same requests, with the right key first (answered: the probe sees an open API), then
    without a key and with wrong ones (401). /health is public by design; /v1/models and
    /completion are not."""
    url = cluster.plan.master.api_url
    assert _wait_healthy(url, 180), f"{url}/health not ok within 180 s"  # 503 while loading, before any key check
    models = f"{url}/v1/models"
    assert _http_status(models, {"Authorization": f"Bearer {api_key}"}) == 200, "the right key is refused"
    near_miss = api_key[:-1] + ("A" if api_key[-1] != "A" else "B")
    for label, headers in (
        ("no key", {}),
        ("an empty bearer", {"Authorization": "Bearer "}),
        ("a wrong key", {"Authorization": f"Bearer {near_miss}"}),
        ("a wrong X-Api-Key", {"X-Api-Key": near_miss}),
        ("the key's prefix", {"Authorization": f"Bearer {api_key[:8]}"}),
    ):
        assert _http_status(models, headers) == 401, f"GET /v1/models with {label} is not refused with 401"
    completion = json.dumps({"prompt": "x", "n_predict": 1}).encode()
    headers = {"Content-Type": "application/json"}
    assert _http_status(f"{url}/completion", headers, completion) == 401, "POST /completion without a key is not 401"
    wrong = {**headers, "Authorization": f"Bearer {near_miss}"}
    assert _http_status(f"{url}/completion", wrong, completion) == 401, "POST /completion with a wrong key is not 401"


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
    serving = [host.name for host in cluster.plan.serving()]
    for planned in cluster.plan.workers():
        if planned.name not in serving:  # the speed split gives it nothing: no connection is right
            assert not _rpc_peers(master, planned), (
                f"{planned.name}: {master.name} holds a connection to {planned.connect}, which the plan leaves "
                f"out of --rpc ({cluster.plan.master.rpc or 'none'})")
            continue
        assert _rpc_peers(master, planned), (
            f"{planned.name}: {master.name} holds no connection to {planned.connect}: the master does not use it "
            "(its launcher leaves out a worker that does not answer HELLO: see llama-server's log)"
        )
