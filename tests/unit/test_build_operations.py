"""The build operations' decisions, driven with recorded facts (no device, no compile).

Each host runs `build.resolve` first (as pyinfra runs one operation on every host before the
next), then `compile`, `share`, `install_copy`; the assertions are about which host compiles,
which copies, and what the commands say.
"""

from __future__ import annotations

import hashlib

import pytest
from pyinfra.api import FunctionCommand, StringCommand
from pyinfra.api.command import FileUploadCommand
from pyinfra.context import ctx_host, ctx_state

from llamafleet.cpu.profile import parse_cpuinfo
from llamafleet.layout import paths_for
from llamafleet.operations import build
from llamafleet.operations.buildinputs import make_stamp
from llamafleet.operations.selftest import compile_command, compile_proven

# A phone with four Cortex-A76 cores: dotprod + fp16.
CPUINFO = "".join(
    f"processor\t: {n}\nFeatures\t: fp asimd aes crc32 atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n"
    for n in range(4)
)
PROFILE = parse_cpuinfo(CPUINFO, "aarch64").to_dict()
SOURCE = {
    "identity": {"kind": "archive", "sha256": "ab" * 32, "root": "x/vendor/llama.cpp/"},
    "rpc_target": "ggml-rpc-server",
    "server_target": "llama-server",
}
TERMUX = {"platform": "termux", "home": "/data/data/com.termux/files/home", "prefix": "/data/data/com.termux/files/usr"}


class FakeState:
    """Stands in for pyinfra's State: the inventory order and the execution phase."""

    def __init__(self, names, executing=True, cwd="/nonexistent"):
        self.inventory = [type("H", (), {"name": name})() for name in names]
        self.is_executing = executing
        self.cwd = cwd


class FakeHost:
    """Stands in for a pyinfra Host: facts are recorded values (or functions of the fact's
    arguments), noops and log lines are collected."""

    def __init__(self, name, state, facts):
        self.name = name
        self.state = state
        self.facts = facts
        self.data = {}
        self.noops: list[str] = []
        self.logs: list[str] = []

    def get_fact(self, cls, *args, **kwargs):
        value = self.facts[cls.__name__]
        return value(**kwargs) if callable(value) else value

    def noop(self, text):
        self.noops.append(text)

    def log(self, message, log_func=None):
        self.logs.append(message)

    log_styled = log


def phone_facts(**overrides):
    facts = {
        "DevicePlatform": TERMUX,
        "CpuProfile": PROFILE,
        "MemInfo": {"total_mb": 7600, "available_mb": 4000},
        "CompilerInfo": {"family": "clang", "version": "18.1.8", "path": "/usr/bin/clang", "cxx": "/usr/bin/clang++"},
        "CompilerAccepts": lambda flags, compiler: True,
        "LlamaSource": SOURCE,
        "InstalledBuild": None,
        "Releases": None,  # no release kept from an earlier deploy (tests/unit/test_upgrade_rollback.py)
        "CpuRefusals": {},  # no ISA feature refused yet (tests/unit/test_selftest_descent.py)
        "Sha256File": None,
    }
    facts.update(overrides)
    return facts


PATHS = paths_for("/data/data/com.termux/files/home/llamafleet")


def run(op, fake, *args, **kwargs):
    with ctx_state.use(fake.state), ctx_host.use(fake):
        return list(op._inner(*args, **kwargs))


def deploy(state, hosts, resolve_args=None):
    """Run the four operations host by host, operation by operation; return commands per op."""
    results = {}
    for fake in hosts:
        args = {"paths": PATHS, "role": "worker", **(resolve_args or {}).get(fake.name, {})}
        results[(fake.name, "resolve")] = run(build.resolve, fake, **args)
    for op in ("compile", "share", "install_copy"):
        for fake in hosts:
            results[(fake.name, op)] = run(getattr(build, op), fake, paths=PATHS)
    return results


@pytest.fixture(autouse=True)
def empty_build_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMAFLEET_BUILD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def raw(commands):
    """The shell commands, the compile run by `compile_proven` included (as its first try)."""
    return [
        c.get_raw_value() if isinstance(c, StringCommand) else compile_command(c.args[0]).get_raw_value()
        for c in commands
        if isinstance(c, StringCommand) or (isinstance(c, FunctionCommand) and c.function is compile_proven)
    ]


def test_cold_class_of_three_compiles_on_the_first_only():
    state = FakeState(["phone1", "phone2", "phone3"])
    hosts = [FakeHost(name, state, phone_facts()) for name in ("phone1", "phone2", "phone3")]
    results = deploy(state, hosts)

    compile_runs = [cmd for cmd in raw(results[("phone1", "compile")]) if " compile " in cmd]
    assert len(compile_runs) == 1
    command = compile_runs[0]
    assert "LF_TARGETS=ggml-rpc-server" in command
    assert "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16" in command
    assert "-DLLAMA_BUILD_SERVER=OFF" in command
    assert "LF_JOBS=2" in command  # 4 cores, 4 GB available: min(4, 4000 // 1536 = 2)
    assert "LF_INSTALL=ggml-rpc-server:ggml-rpc-server" in command
    assert any("tail -f /data/data/com.termux/files/home/llamafleet/logs/build.log" in line for line in hosts[0].logs)

    for twin in ("phone2", "phone3"):
        assert results[(twin, "compile")] == []
        assert any("come from phone1" in text for text in hosts[int(twin[-1]) - 1].noops)
    assert [type(c) for c in results[("phone1", "share")]] == [FunctionCommand]
    assert results[("phone2", "share")] == []
    # The builder's share step did not run here (no real host): the twins fetch from it late.
    late = results[("phone2", "install_copy")]
    assert [type(c) for c in late] == [FunctionCommand]
    assert late[0].function is build.copy_late and late[0].args[1].name == "phone1"


def test_twins_install_from_the_controller_cache(empty_build_cache):
    state = FakeState(["phone1", "phone2"])
    hosts = [FakeHost(name, state, phone_facts()) for name in ("phone1", "phone2")]
    for fake in hosts:
        run(build.resolve, fake, paths=PATHS, role="worker")
    key = build.registry(state)["phone1"].key
    empty_build_cache.mkdir()
    archive = empty_build_cache / f"{key}.tar.gz"
    archive.write_bytes(b"class binaries")
    digest = hashlib.sha256(b"class binaries").hexdigest()
    (empty_build_cache / f"{key}.tar.gz.sha256").write_text(digest + "\n")

    # With the class in the cache nobody compiles; both install the cached copy.
    assert run(build.compile, hosts[0], paths=PATHS) == []
    commands = run(build.install_copy, hosts[1], paths=PATHS)
    uploads = [c for c in commands if isinstance(c, FileUploadCommand)]
    assert uploads and uploads[0].src == str(archive)
    install = [c for c in raw(commands) if " install" in c][-1]
    assert f"LF_SHA256={digest}" in install and f"LF_KEY={key}" in install



def run_host_serially(fake):
    """All four operations on one host, as `pyinfra --serial` runs them, with llamafleet's own
    bookkeeping commands carried out (a compile or install that succeeded records it)."""
    commands = {}
    for op in ("resolve", "compile", "share", "install_copy"):
        args = {"role": "worker"} if op == "resolve" else {}
        commands[op] = run(getattr(build, op), fake, paths=PATHS, **args)
        for command in commands[op]:
            if isinstance(command, FunctionCommand) and command.function in (build.record_binaries, compile_proven):
                build.record_binaries(fake.state, fake, command.args[0])  # as a passing compile does
    return commands


@pytest.mark.parametrize("order", [("phone1", "phone2"), ("phone2", "phone1")])
def test_serial_run_compiles_once_whichever_twin_runs_first(order):
    """pyinfra --serial takes hosts in no fixed order (a set): the first twin to run compiles,
    the next one copies from it. Planning with the other twin's preview made both compile."""
    state = FakeState(["phone1", "phone2"], executing=False)
    hosts = {name: FakeHost(name, state, phone_facts()) for name in ("phone1", "phone2")}
    for fake in hosts.values():  # preparing: every host's preview
        run(build.resolve, fake, paths=PATHS, role="worker")
    state.is_executing = True
    first, second = (run_host_serially(hosts[name]) for name in order)

    assert [c for c in raw(first["compile"]) if " compile " in c]
    assert first["share"] == []  # the twin's needs are not known yet: nothing to fetch
    assert raw(second["compile"]) == []
    assert any(f"come from {order[0]}" in text for text in hosts[order[1]].noops)
    late = second["install_copy"]
    assert [type(c) for c in late] == [FunctionCommand]
    assert late[0].function is build.copy_late and late[0].args[1].name == order[0]


def test_up_to_date_host_does_nothing():
    state = FakeState(["phone1"])
    fake = FakeHost("phone1", state, phone_facts())
    run(build.resolve, fake, paths=PATHS, role="worker")
    inputs = build.registry(state)["phone1"].inputs
    fake.facts["InstalledBuild"] = {
        "stamp": make_stamp(inputs, "phone1"), "release": "/r", "intact": True, "files": ["ggml-rpc-server"],
    }
    results = deploy(state, [fake])
    assert all(commands == [] for commands in results.values())
    assert any("is installed (stamp matches)" in text for text in fake.noops)
    assert build.binaries_changed(fake) is False


def test_binaries_changed_after_a_build_or_copy():
    state = FakeState(["phone1", "phone2"])
    hosts = [FakeHost(name, state, phone_facts()) for name in ("phone1", "phone2")]
    deploy(state, hosts)
    assert build.binaries_changed(hosts[0]) and build.binaries_changed(hosts[1])
    state.is_executing = False  # while preparing nothing has been built yet
    assert not build.binaries_changed(hosts[0])


def test_changing_the_arch_of_one_class_rebuilds_only_that_class():
    state = FakeState(["phone1", "phone2", "phone3"])
    hosts = [FakeHost(name, state, phone_facts()) for name in ("phone1", "phone2", "phone3")]
    for fake in hosts:
        run(build.resolve, fake, paths=PATHS, role="worker")
    for fake in hosts:
        inputs = build.registry(state)[fake.name].inputs
        fake.facts["InstalledBuild"] = {
            "stamp": make_stamp(inputs, "phone1"), "release": "/r", "intact": True, "files": ["ggml-rpc-server"],
        }
    # phone3 alone is its own class now (as if group data for its class changed).
    results = deploy(state, hosts, {"phone3": {"cpu_arch": "armv8.2-a+dotprod"}})
    compiled = [name for name in ("phone1", "phone2", "phone3") if results[(name, "compile")]]
    assert compiled == ["phone3"]
    assert "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod " in raw(results[("phone3", "compile")])[-1] + " "


def test_master_builds_llama_server():
    state = FakeState(["linux1"])
    facts = phone_facts(DevicePlatform={"platform": "linux", "home": "/root"})
    fake = FakeHost("linux1", state, facts)
    results = deploy(state, [fake], {"linux1": {"role": "master"}})
    command = raw(results[("linux1", "compile")])[-1]
    assert "LF_TARGETS=llama-server" in command and "-DLLAMA_BUILD_SERVER=ON" in command


def test_refused_rung_falls_back_and_is_reported():
    state = FakeState(["phone1"])
    refuses_fp16 = lambda flags, compiler: not any("fp16" in flag for flag in flags)  # noqa: E731
    fake = FakeHost("phone1", state, phone_facts(CompilerAccepts=refuses_fp16))
    run(build.resolve, fake, paths=PATHS, role="worker")
    args = build.registry(state)["phone1"].inputs.cmake_args
    assert "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod" in args
    assert any("refused" in line for line in fake.logs)


def test_missing_compiler_fails_the_host_at_execution_only():
    preparing = FakeState(["phone1"], executing=False)
    fake = FakeHost("phone1", preparing, phone_facts(CompilerInfo=None, LlamaSource=None, InstalledBuild=None))
    assert run(build.resolve, fake, paths=PATHS, role="worker") == []  # earlier tasks will install it

    executing = FakeState(["phone1"])
    fake = FakeHost("phone1", executing, phone_facts(CompilerInfo=None))
    commands = run(build.resolve, fake, paths=PATHS, role="worker")
    assert [type(c) for c in commands] == [FunctionCommand]
    assert "llama_compiler" in build.registry(executing)["phone1"].problem
    assert run(build.compile, fake, paths=PATHS) == []  # a host with a problem is not planned


def test_bad_override_names_host_and_key():
    state = FakeState(["phone1"])
    fake = FakeHost("phone1", state, phone_facts())
    with pytest.raises(ValueError, match=r"^phone1: llama_cpu_arch: "):
        run(build.resolve, fake, paths=PATHS, role="worker", cpu_arch="pentium")


def test_once_per_class_off_compiles_everywhere():
    state = FakeState(["phone1", "phone2"])
    hosts = [FakeHost(name, state, phone_facts()) for name in ("phone1", "phone2")]
    results = deploy(state, hosts, {name: {"once_per_class": False} for name in ("phone1", "phone2")})
    assert results[("phone1", "compile")] and results[("phone2", "compile")]
    assert results[("phone1", "share")] == [] and results[("phone2", "install_copy")] == []


def test_a_device_class_cpu_table_reaches_profile_and_tuning(tmp_path):
    """llama_cpu_table names a core the built-in table lacks: the fact is read with it and the
    flag table's -mtune support comes from it, so the class is tuned for that core."""
    from llamafleet.cpu.table import table_for

    table = tmp_path / "cpu.yaml"
    table.write_text(
        "cores:\n  - {implementer: 0x43, part: 0x0a2, name: thunderxt81, tune: thunderxt81}\n"
        "tune:\n  - {name: thunderxt81, gcc: 12, clang: 14}\n"
    )
    cpuinfo = CPUINFO.replace("0x41", "0x43").replace("0xd0b", "0x0a2")
    commands = {}
    for cpu_table in (None, str(table)):
        state = FakeState(["phone1"])
        fake = FakeHost("phone1", state, phone_facts(
            CpuProfile=lambda cpu_table=None: parse_cpuinfo(cpuinfo, "aarch64", table_for(cpu_table)).to_dict()
        ))
        results = deploy(state, [fake], {"phone1": {"cpu_table": cpu_table}})
        [commands[cpu_table]] = [cmd for cmd in raw(results[("phone1", "compile")]) if " compile " in cmd]
    assert "-mtune" not in commands[None]
    assert "-mtune=thunderxt81" in commands[str(table)]
