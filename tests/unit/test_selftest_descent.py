"""Refused ISA features: the flag table without them, the record and its fact, and the compile
that steps down the ladder after a SIGILL in the self-test (llamafleet.cpu.refused,
llamafleet.cpu.descent, llamafleet.facts.refusals, llamafleet.operations.selftest)."""

from __future__ import annotations

import pytest
from pyinfra.api import FunctionCommand, StringCommand

from llamafleet.cpu.descent import FlagPlanner
from llamafleet.cpu.flags import build_flags
from llamafleet.cpu.profile import parse_cpuinfo
from llamafleet.facts.refusals import CpuRefusals, parse_refusals
from llamafleet.operations import build
from llamafleet.operations.buildclass import class_refusals
from llamafleet.operations.buildinputs import make_stamp
from llamafleet.operations.buildscript import SELFTEST_SIGILL_LINE
from llamafleet.operations.selftest import compile_proven, record_text
from test_build_operations import CPUINFO, PATHS, FakeHost, FakeState, empty_build_cache, phone_facts, raw, run  # noqa: F401

# The lab's phone: reports i8mm and bf16 (so the ladder starts at armv8.6-a) on a core that has neither.
I8MM_CPUINFO = CPUINFO.replace("asimddp", "asimddp i8mm bf16")
I8MM = parse_cpuinfo(I8MM_CPUINFO, "aarch64").to_dict()
RYZEN = parse_cpuinfo(
    "processor\t: 0\nflags\t\t: fpu sse sse2 pni ssse3 sse4_1 sse4_2 popcnt cx16 lahf_lm avx avx2 fma f16c bmi1 bmi2 "
    "abm movbe avx_vnni\n\n", "x86_64").to_dict()
DATE = "2026-12-03T10:00:00Z"


# --- the flag table --------------------------------------------------------------------------

def test_the_ladder_starts_below_a_refused_feature():
    assert build_flags(I8MM).march == "armv8.6-a+dotprod+fp16+i8mm+bf16"
    flags = build_flags(I8MM, refused={"i8mm": {"date": DATE}})
    # Every rung with bf16 also has i8mm (the ladder drops from the end): both go.
    assert flags.march == "armv8.2-a+dotprod+fp16" and flags.features == ["dotprod", "fp16"]
    assert flags.fallback == ("this CPU refused i8mm (SIGILL in the self-test on 2026-12-03T10:00:00Z); "
                              "ladder starts at -march=armv8.2-a+dotprod+fp16")
    assert "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16" in flags.cmake_args


def test_x86_levels_fall_below_a_refused_feature():
    assert build_flags(RYZEN).march == "x86-64-v3"
    assert build_flags(RYZEN, refused=["avx_vnni"]).compile_flags[-1] == "-mavx2"  # v3 without VNNI
    flags = build_flags(RYZEN, refused=["avx2"])
    assert flags.march == "x86-64-v2" and "-DGGML_AVX2=OFF" in flags.cmake_args and "-DGGML_SSE42=ON" in flags.cmake_args


def test_a_refused_feature_is_stripped_from_the_override_with_a_warning():
    flags = build_flags(I8MM, llama_cpu_arch="armv8.2-a+dotprod+fp16+i8mm", refused={"i8mm": {"date": DATE}})
    assert flags.march == "armv8.2-a+dotprod+fp16"
    assert flags.warnings == [
        "llama_cpu_arch asks for +i8mm (armv8.2-a+dotprod+fp16+i8mm), which this device refused "
        f"(SIGILL in the self-test on {DATE}): built without it, as armv8.2-a+dotprod+fp16"
    ]
    # A base that implies the feature gives way to armv8.2-a with what else it implied.
    assert build_flags(I8MM, llama_cpu_arch="armv8.6-a+fp16", refused=["i8mm"]).march == "armv8.2-a+dotprod+fp16+bf16"
    assert build_flags(RYZEN, llama_cpu_arch="x86-64-v3", refused=["avx2"]).march == "x86-64-v2"
    # Nothing refused that it uses: taken as given, no warning.
    untouched = build_flags(I8MM, llama_cpu_arch="armv8.2-a+dotprod", refused=["i8mm"])
    assert untouched.march == "armv8.2-a+dotprod" and untouched.warnings == []


# --- the record and its fact -----------------------------------------------------------------

def test_the_record_reads_back_as_it_was_written():
    refused = {"i8mm": {"date": DATE, "reason": "sigill", "flags": "-march=armv8.2-a+dotprod+fp16+i8mm -mtune=cortex-a76"}}
    text = record_text(refused)
    assert text.startswith("# Managed by llamafleet")
    assert "i8mm 2026-12-03T10:00:00Z sigill -march=armv8.2-a+dotprod+fp16+i8mm -mtune=cortex-a76\n" in text
    assert parse_refusals(text.splitlines()) == refused
    assert CpuRefusals().process(text.splitlines()) == refused


def test_the_fact_is_empty_without_a_record_and_skips_what_it_cannot_read():
    assert CpuRefusals.default() == {}
    assert parse_refusals(["# comment", "", "i8mm", "sve 2026-01-01 sigill", "sve 2027-01-01 sigill -march=x"]) == {
        "sve": {"date": "2026-01-01", "reason": "sigill", "flags": ""}
    }


# --- one step down -----------------------------------------------------------------------------

def test_each_sigill_drops_the_features_the_next_rung_does_without():
    planner = FlagPlanner(I8MM)
    top = planner.flags({})
    first = planner.step_down(top, {})
    # armv8.2-a+...+i8mm+bf16 only spells the same features differently: skipped.
    assert first.dropped == ("bf16",) and first.next.march == "armv8.2-a+dotprod+fp16+i8mm"
    second = planner.step_down(first.next, {"bf16": ""})
    assert second.dropped == ("i8mm",) and second.next.march == "armv8.2-a+dotprod+fp16"
    assert second.message("phone2") == (
        "phone2: the self-test of -march=armv8.2-a+dotprod+fp16+i8mm died of SIGILL (illegal instruction): "
        "this CPU refuses i8mm; building one step down: -march=armv8.2-a+dotprod+fp16"
    )


def test_an_override_steps_down_one_tag_at_a_time_and_x86_one_level():
    planner = FlagPlanner(I8MM, llama_cpu_arch="armv8.2-a+dotprod+fp16+i8mm")
    descent = planner.step_down(planner.flags({}), {})
    assert descent.dropped == ("i8mm",) and descent.next.march == "armv8.2-a+dotprod+fp16"
    x86 = FlagPlanner(RYZEN, llama_cpu_arch="x86-64-v3")
    assert x86.step_down(x86.flags({}), {}).next.march == "x86-64-v2"


def test_there_is_nothing_below_the_plainest_rung_or_native():
    planner = FlagPlanner(I8MM)
    plainest = planner.flags({name: "" for name in ("dotprod", "fp16", "i8mm", "bf16")})
    assert plainest.march == "armv8.2-a" and planner.step_down(plainest, {"dotprod": ""}) is None
    native = FlagPlanner(I8MM, llama_cpu_arch="native")
    assert native.step_down(native.flags({}), {}) is None


# --- the compile on the controller ---------------------------------------------------------------

class Output:
    def __init__(self, stdout=(), stderr=()):
        self.stdout_lines, self.stderr_lines = list(stdout), list(stderr)


class DeviceHost(FakeHost):
    """A FakeHost whose commands are answered in turn: each compile by the next of `compiles`
    ("sigill", "ok", "fail"); anything else (the record) succeeds. Commands are kept."""

    def __init__(self, name, state, facts, compiles):
        super().__init__(name, state, facts)
        self.compiles = list(compiles)
        self.commands: list[str] = []

    def log_styled(self, message, fg=None, log_func=None):
        self.logs.append(message)

    def run_shell_command(self, command, **arguments):
        text = command.get_raw_value()
        self.commands.append(text)
        if " compile " not in text:
            return True, Output()
        assert arguments["_success_exit_codes"] == (0, 86)
        answer = self.compiles.pop(0)
        if answer == "sigill":
            return True, Output([f"llamafleet: {SELFTEST_SIGILL_LINE} with ... nothing installed"])
        if answer == "fail":
            return False, Output(stderr=["llamafleet: compile failed on phone1: compile (exit 1)"])
        return True, Output(["llamafleet: ggml-selftest: ok: mul_mat 32x512 by 512x4, 4 thread(s)"])


def lab_phones(names, compiles, refused=None):
    state = FakeState(names)
    hosts = [DeviceHost(name, state, phone_facts(CpuProfile=I8MM, CpuRefusals=refused or {}), compiles)
             for name in names]
    for fake in hosts:
        run(build.resolve, fake, paths=PATHS, role="worker")
    return state, hosts


def run_compile(fake):
    [proven] = [c for c in run(build.compile, fake, paths=PATHS) if isinstance(c, FunctionCommand)]
    assert proven.function is compile_proven
    return proven.function(fake.state, fake, *proven.args)


def test_a_sigill_is_warned_recorded_and_rebuilt_one_rung_down():
    state, [phone] = lab_phones(["phone1"], ["sigill", "sigill", "ok"])
    first_key = build.registry(state)["phone1"].key
    assert run_compile(phone) is True

    compiles = [c for c in phone.commands if " compile " in c]
    assert len(compiles) == 3 and len({c.split("LF_KEY=", 1)[1].split()[0] for c in compiles}) == 3
    assert "-DGGML_CPU_ARM_ARCH=armv8.6-a+dotprod+fp16+i8mm+bf16" in compiles[0]
    assert "LF_ISA_FLAGS=-march=armv8.2-a+dotprod+fp16+i8mm" in compiles[1]
    assert "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16 " in compiles[2]
    # Each SIGILL wrote the record before the next compile, with everything refused so far.
    records = [c for c in phone.commands if "cpu-refused" in c]
    assert len(records) == 2 and "bf16 " in records[0] and "i8mm " not in records[0]
    assert "i8mm " in records[1] and "-march=armv8.2-a+dotprod+fp16+i8mm" in records[1]
    warnings = [line for line in phone.logs if "died of SIGILL" in line]
    assert warnings[1] == ("phone1: the self-test of -march=armv8.2-a+dotprod+fp16+i8mm -mtune=cortex-a76 died of "
                           "SIGILL (illegal instruction): this CPU refuses i8mm; building one step down: "
                           "-march=armv8.2-a+dotprod+fp16 -mtune=cortex-a76")
    assert "ggml-selftest: ok: mul_mat 32x512 by 512x4, 4 thread(s)" in phone.logs

    record = build.registry(state)["phone1"]
    assert record.has_binaries and record.key != first_key
    assert sorted(record.refused) == ["bf16", "i8mm"] and record.refused["i8mm"]["reason"] == "sigill"
    assert [entry["feature"] for entry in class_refusals(state)[first_key]] == ["bf16", "i8mm"]


def test_the_next_deploy_plans_what_was_installed():
    """Idempotence: the record written by the fallback, read back by the fact, gives the key of
    the binaries installed; nothing is compiled again."""
    state, [phone] = lab_phones(["phone1"], ["sigill", "sigill", "ok"])
    run_compile(phone)
    installed_inputs = build.registry(state)["phone1"].inputs
    written = [c for c in phone.commands if "cpu-refused" in c][-1]
    text = written.split("printf %s ", 1)[1].split(" > ", 1)[0]
    refused = parse_refusals(text.strip("'").splitlines())
    assert sorted(refused) == ["bf16", "i8mm"]

    again = FakeState(["phone1"])
    fake = DeviceHost("phone1", again, phone_facts(CpuProfile=I8MM, CpuRefusals=refused), [])
    fake.facts["InstalledBuild"] = {"stamp": make_stamp(installed_inputs, "phone1"), "release": "/r", "intact": True,
                                    "files": ["ggml-rpc-server"]}
    run(build.resolve, fake, paths=PATHS, role="worker")
    assert build.registry(again)["phone1"].up_to_date
    assert run(build.compile, fake, paths=PATHS) == []


def test_a_step_down_onto_the_installed_inputs_keeps_the_installed_build():
    """An over-reaching llama_cpu_arch on a device whose installed build is one rung lower: after
    the SIGILL nothing is compiled again (the worker is not restarted for nothing)."""
    state, [phone] = lab_phones(["phone1"], ["sigill", "sigill", "ok"])
    run_compile(phone)
    lower = build.registry(state)["phone1"].inputs
    again = FakeState(["phone1"])
    fake = DeviceHost("phone1", again, phone_facts(CpuProfile=I8MM, CpuRefusals={}), ["sigill", "sigill"])
    fake.facts["InstalledBuild"] = {"stamp": make_stamp(lower, "phone1"), "release": "/r", "intact": True,
                                    "files": ["ggml-rpc-server"]}
    run(build.resolve, fake, paths=PATHS, role="worker")
    assert not build.registry(again)["phone1"].up_to_date
    assert run_compile(fake) is True
    assert len([c for c in fake.commands if " compile " in c]) == 2  # the two that died; not a third
    assert any("the installed build has these inputs; kept" in line for line in fake.logs)
    # What tasks/workers.py and tasks/master.py restart on: nothing new was installed.
    assert not build.binaries_changed(fake)


def test_a_failure_that_is_not_sigill_fails_the_host_without_stepping_down():
    state, [phone] = lab_phones(["phone1"], ["fail"])
    assert run_compile(phone) is False
    assert not [c for c in phone.commands if "cpu-refused" in c]
    assert "llamafleet: compile failed on phone1: compile (exit 1)" in phone.logs
    assert not build.registry(state)["phone1"].has_binaries


def test_sigill_on_the_plainest_rung_fails_instead_of_installing():
    plainest = {name: {"date": DATE, "reason": "sigill", "flags": ""} for name in ("dotprod", "fp16", "i8mm", "bf16")}
    state, [phone] = lab_phones(["phone1"], ["sigill"], refused=plainest)
    assert run_compile(phone) is False
    assert any("no lower rung to try; nothing was installed" in line for line in phone.logs)


def test_a_twin_takes_the_refusals_over_records_them_and_copies_the_lower_build():
    state, (phone1, phone2) = lab_phones(["phone1", "phone2"], ["sigill", "sigill", "ok"])
    assert run(build.compile, phone2, paths=PATHS) == []  # the twin waits for phone1
    run_compile(phone1)
    builder = build.registry(state)["phone1"]
    assert run(build.share, phone1, paths=PATHS) == []  # the twin is not of the new class yet

    commands = run(build.install_copy, phone2, paths=PATHS)
    twin = build.registry(state)["phone2"]
    assert twin.key == builder.key and sorted(twin.refused) == ["bf16", "i8mm"]
    [record] = [c for c in raw(commands) if "cpu-refused" in c]
    assert "i8mm 2026" in record and "sigill-on-phone1" in record
    late = [c for c in commands if isinstance(c, FunctionCommand)]
    assert late[0].function is build.copy_late and late[0].args[1].name == "phone1"
    # Recorded once.
    assert not [c for c in raw(run(build.install_copy, phone2, paths=PATHS)) if "cpu-refused" in c]


def test_a_twin_that_already_has_the_lower_build_takes_the_refusals_over_and_keeps_it():
    """The over-reach deploy on two phones of one class whose installed build is the lower rung:
    the twin records the refusals, copies nothing and is not restarted."""
    state, [phone] = lab_phones(["phone1"], ["sigill", "sigill", "ok"])
    run_compile(phone)
    lower = build.registry(state)["phone1"].inputs
    again = FakeState(["phone1", "phone2"])
    twins = [DeviceHost(name, again, phone_facts(CpuProfile=I8MM, CpuRefusals={}), ["sigill", "sigill"])
             for name in ("phone1", "phone2")]
    for fake in twins:
        fake.facts["InstalledBuild"] = {"stamp": make_stamp(lower, fake.name), "release": "/r", "intact": True,
                                        "files": ["ggml-rpc-server"]}
        run(build.resolve, fake, paths=PATHS, role="worker")
    run_compile(twins[0])
    commands = run(build.install_copy, twins[1], paths=PATHS)
    assert [c for c in raw(commands) if "cpu-refused" in c]
    assert not [c for c in commands if isinstance(c, FunctionCommand)]  # no copy
    assert not build.binaries_changed(twins[1])


def test_the_compile_command_carries_the_flags_and_the_self_test():
    state, [phone] = lab_phones(["phone1"], [])
    [command] = [c for c in raw(run(build.compile, phone, paths=PATHS)) if " compile " in c]
    assert "LF_SELFTEST_SRC=/data/data/com.termux/files/home/llamafleet/libexec/ggml-selftest.c" in command
    assert "LF_SELFTEST_THREADS=4" in command
    # A device whose processes may use 2 of its CPUs (nproc): 2 threads, not one per core.
    narrow_state = FakeState(["phone1"])
    fake = DeviceHost("phone1", narrow_state, phone_facts(CpuProfile={**I8MM, "usable_cpus": 2}, CpuRefusals={}), [])
    run(build.resolve, fake, paths=PATHS, role="worker")
    assert build.registry(narrow_state)["phone1"].selftest_threads == 2
    assert "'LF_ISA_FLAGS=-march=armv8.6-a+dotprod+fp16+i8mm+bf16 -mtune=cortex-a76'" in command
    uploads = [c for c in run(build.compile, phone, paths=PATHS) if not isinstance(c, (StringCommand, FunctionCommand))]
    assert any(getattr(c, "dest", "").endswith("ggml-selftest.c.part") for c in uploads)
