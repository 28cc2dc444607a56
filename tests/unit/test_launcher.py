"""The master's launcher, rendered from its template and run by bash against real sockets:
rpc-server stand-ins that answer ggml-rpc's HELLO as rpc-server does (or accept and stay
silent, as one still holding a dead client does), tunnel stand-ins (a process named ssh that
carries the forward's -L argument), and a llama-server stand-in that records its arguments and
waits to be killed."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from llamafleet.plan import Plan
from llamafleet.plan.heal import ServingRow
from llamafleet.serving.launcher import LAUNCHER_TEMPLATE, HealTimes, launcher_context
from llamafleet.serving.probes import rpc_hello_request as hello_request
from llamafleet.serving.tunnels import local_forward
from llamafleet.templates import render

FAST = HealTimes(full_wait=1, give_up=6, probe=1, interval=1)
HELLO_ANSWER = (28).to_bytes(8, "little") + bytes([7, 0, 0, 0]) + bytes(24)


class RpcStandIn:
    """A listening socket with rpc-server's backlog of one. `answering`: it reads a HELLO and
    answers it, one client at a time; else it accepts and never answers."""

    def __init__(self, answering: bool = True):
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.answering = answering
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.answering:
                self.held.append(client)
                continue
            data = b""
            client.settimeout(2)
            try:
                while len(data) < len(hello_request()):
                    chunk = client.recv(64)
                    if not chunk:
                        break
                    data += chunk
                if data == hello_request():
                    client.sendall(HELLO_ANSWER)
            except OSError:
                pass
            client.close()

    def close(self):
        try:  # wakes the accept() of the serving thread, which a close alone would not
            self.server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.server.close()
        for client in self.held:
            client.close()


@dataclass
class _Worker:
    name: str
    connect: str
    transport: str

    @property
    def rpc_port(self) -> int:
        return int(self.connect.rsplit(":", 1)[1])


def fake_tunnel(tmp_path: Path, port: int) -> subprocess.Popen:
    """A process whose comm is ssh and whose command line carries the tunnel's -L argument."""
    ssh = tmp_path / "ssh"
    if not ssh.exists():
        ssh.symlink_to("/bin/sh")
    return subprocess.Popen([str(ssh), "-c", "while :; do sleep 1; done", local_forward(port)])


@dataclass
class _Master:
    rpc: str
    tensor_split: str
    degraded: tuple


class _Plan:
    def __init__(self, workers, degraded):
        self._workers = workers
        self.master = _Master(",".join(w.connect for w in workers), "0.5,0.25,0.25", tuple(degraded))

    def workers(self):
        return self._workers

    serving = Plan.serving  # the plan's own rule: the workers its --rpc names


def launch(tmp_path: Path, workers, degraded) -> tuple[subprocess.Popen, Path]:
    record = tmp_path / "argv"
    fake_server = tmp_path / "llama-server"
    fake_server.write_text(f'#!/bin/bash\necho "$@" > {record}\nexec sleep 60\n')
    fake_server.chmod(0o755)
    context = launcher_context(_Plan(workers, degraded), bash="/bin/bash", manager="runit",
                               argv=[str(fake_server), "-m", "model.gguf"], times=FAST)
    script = tmp_path / "launch.bash"
    script.write_text(render(LAUNCHER_TEMPLATE, **context))
    log = open(tmp_path / "log", "w")
    process = subprocess.Popen(["/bin/bash", str(script)], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    return process, record


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture
def three(tmp_path):
    stand_ins = {name: RpcStandIn() for name in ("phone1", "linux1", "phone2")}
    workers = [_Worker(name, f"127.0.0.1:{stand_in.port}", "tunnel" if name.startswith("phone") else "direct")
               for name, stand_in in stand_ins.items()]
    without_phone2 = ServingRow(("phone1", "linux1"), f"{workers[0].connect},{workers[1].connect}", "0.6,0.4")
    processes = {name: fake_tunnel(tmp_path, stand_ins[name].port) for name in ("phone1", "phone2")}
    yield stand_ins, workers, [without_phone2], processes
    for name, process in processes.items():
        if process.poll() is None:
            if name == "launcher":
                os.killpg(process.pid, 9)
            else:
                process.kill()
    for stand_in in stand_ins.values():
        stand_in.close()


def test_all_answering_serves_with_the_whole_plan_and_a_lost_tunnel_restarts_it(tmp_path, three):
    stand_ins, workers, degraded, processes = three
    process, record = launch(tmp_path, workers, degraded)
    processes["launcher"] = process
    assert wait_for(record.exists, 5), (tmp_path / "log").read_text()
    assert record.read_text().split() == ["-m", "model.gguf", "--rpc", ",".join(w.connect for w in workers),
                                          "-ts", "0.5,0.25,0.25"]
    time.sleep(3)
    assert process.poll() is None  # every tunnel up: nothing to do
    processes["phone2"].kill()  # phone2's tunnel ends (its ssh gave up on the phone) ...
    processes["phone2"].wait()  # ... and its supervisor reaps it, as runsv and systemd do
    assert wait_for(lambda: process.poll() is not None, 5), (tmp_path / "log").read_text()
    assert process.returncode == -9  # llama-server (the launcher, after exec) killed: the supervisor restarts
    assert f"the tunnel to phone2 ({workers[2].connect}) ended" in (tmp_path / "log").read_text()


def test_a_worker_that_does_not_answer_is_left_out_then_taken_back(tmp_path, three):
    stand_ins, workers, degraded, processes = three
    stand_ins["phone2"].close()
    silent = RpcStandIn(answering=False)  # accepts, never answers: rpc-server busy with a dead client
    workers[2] = _Worker("phone2", f"127.0.0.1:{silent.port}", "tunnel")
    degraded = [ServingRow(("phone1", "linux1"), f"{workers[0].connect},{workers[1].connect}", "0.6,0.4")]
    process, record = launch(tmp_path, workers, degraded)
    processes["launcher"] = process
    assert wait_for(record.exists, 8), (tmp_path / "log").read_text()
    assert record.read_text().split()[2:] == ["--rpc", f"{workers[0].connect},{workers[1].connect}", "-ts", "0.6,0.4"]
    assert "without phone2 (no answer)" in (tmp_path / "log").read_text()
    time.sleep(3)
    assert process.poll() is None  # still silent: not taken back
    silent.answering = True
    for client in silent.held:  # the dead client lets go; rpc-server answers again
        client.close()
    assert wait_for(lambda: process.poll() is not None, 10), (tmp_path / "log").read_text()
    assert "phone2" in (tmp_path / "log").read_text().splitlines()[-1]
    assert "answers again" in (tmp_path / "log").read_text()
    silent.close()


def test_no_group_that_holds_the_model_gives_up_in_time(tmp_path, three):
    stand_ins, workers, _, processes = three
    stand_ins["linux1"].close()
    process, record = launch(tmp_path, workers, [])  # no smaller group holds the model
    processes["launcher"] = process
    assert wait_for(lambda: process.poll() is not None, FAST.give_up + 8)
    assert process.returncode == 1 and not record.exists()
    assert "no group of workers that can hold the model answers" in (tmp_path / "log").read_text()


def test_a_worker_that_answers_but_fits_no_answering_group_is_not_waited_for(tmp_path, three):
    """A hand split can make groups that are not nested: phone1 and phone2 may serve together
    or phone1 alone, but never linux1 without phone2. With phone2 silent, phone1 serves alone;
    linux1 answers all along and must not restart it again and again."""
    stand_ins, workers, _, processes = three
    stand_ins["phone2"].answering = False
    ends = {w.name: w.connect for w in workers}
    degraded = [ServingRow(("phone1", "phone2"), f"{ends['phone1']},{ends['phone2']}", "0.5,0.5"),
                ServingRow(("phone1",), ends["phone1"], "1")]
    process, record = launch(tmp_path, workers, degraded)
    processes["launcher"] = process
    assert wait_for(record.exists, 8), (tmp_path / "log").read_text()
    assert record.read_text().split()[2:] == ["--rpc", ends["phone1"], "-ts", "1"]
    log = (tmp_path / "log").read_text()
    assert "without phone2 (no answer) linux1 (not in this group)" in log, log
    time.sleep(5)
    assert process.poll() is None, (tmp_path / "log").read_text()  # linux1's answers restart nothing


class _SpeedPlan(_Plan):
    """A speed split that gives phone2 nothing: the whole row is phone1 and linux1."""

    def __init__(self, workers, degraded, rpc: str, tensor_split: str):
        super().__init__(workers, degraded)
        self.master = _Master(rpc, tensor_split, tuple(degraded))


def launch_plan(tmp_path: Path, plan) -> tuple[subprocess.Popen, Path]:
    record = tmp_path / "argv"
    fake_server = tmp_path / "llama-server"
    fake_server.write_text(f'#!/bin/bash\necho "$@" > {record}\nexec sleep 60\n')
    fake_server.chmod(0o755)
    context = launcher_context(plan, bash="/bin/bash", manager="runit",
                               argv=[str(fake_server), "-m", "model.gguf"], times=FAST)
    script = tmp_path / "launch.bash"
    script.write_text(render(LAUNCHER_TEMPLATE, **context))
    log = open(tmp_path / "log", "w")
    return subprocess.Popen(["/bin/bash", str(script)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True), record


def test_a_worker_the_speed_split_leaves_out_is_neither_waited_for_nor_taken_back(tmp_path, three):
    """phone2 holds nothing in the whole plan and is silent: the launcher serves with the whole
    row at once, and phone2 answering again restarts nothing."""
    stand_ins, workers, _, processes = three
    stand_ins["phone2"].answering = False
    rpc = f"{workers[0].connect},{workers[1].connect}"
    process, record = launch_plan(tmp_path, _SpeedPlan(workers, [], rpc, "0.3,0.7"))
    processes["launcher"] = process
    assert wait_for(record.exists, 3), (tmp_path / "log").read_text()  # before full_wait + a probe
    assert record.read_text().split()[2:] == ["--rpc", rpc, "-ts", "0.3,0.7"]
    assert "without" not in (tmp_path / "log").read_text()
    stand_ins["phone2"].answering = True
    time.sleep(4)
    assert process.poll() is None, (tmp_path / "log").read_text()


def test_a_master_that_holds_the_whole_model_runs_without_rpc(tmp_path, three):
    _, workers, _, processes = three
    process, record = launch_plan(tmp_path, _SpeedPlan(workers, [], "", ""))
    processes["launcher"] = process
    assert wait_for(record.exists, 3), (tmp_path / "log").read_text()
    assert record.read_text().split() == ["-m", "model.gguf"]
