"""Pure parts of the build pipeline: inputs, class keys, stamps, jobs, targets, class plans."""

from __future__ import annotations

import dataclasses

import pytest

from llamafleet.operations.buildinputs import (
    CACHE_SOURCE,
    COMMON_CMAKE_ARGS,
    Assignment,
    BuildInputs,
    ClassMember,
    choose_jobs,
    cmake_args_for,
    compiler_identity,
    describe_difference,
    installed_matches,
    installed_name,
    make_stamp,
    plan_class_builds,
    role_targets,
    source_identity,
    stamp_json,
)

INPUTS = BuildInputs(
    source="archive:" + "a" * 64,
    platform="termux",
    arch="aarch64",
    compiler="clang 18.1.8",
    targets=("ggml-rpc-server",),
    cmake_args=("-DGGML_RPC=ON", "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod"),
)


def installed_for(inputs: BuildInputs, intact: bool = True, files=None) -> dict:
    return {
        "stamp": make_stamp(inputs, "phone1"),
        "release": "/base/releases/x",
        "intact": intact,
        "files": list(inputs.targets) if files is None else files,
    }


# --- jobs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cores, available_mb, override, platform, expected",
    [
        (8, 8 * 1024, None, "linux", 5),  # 8 GB free: RAM limits (8192 // 1536 = 5), not the 8 cores
        (8, 32 * 1024, None, "linux", 8),  # plenty of RAM: one job per core
        (2, 24 * 1024, None, "linux", 2),  # this machine
        (4, 1024, None, "linux", 1),  # 1 GB free: never 0 jobs
        (4, None, None, "linux", 4),  # unknown RAM: cores
        (None, None, None, "linux", 1),
        (8, 8 * 1024, 3, "linux", 3),  # llama_build_jobs wins
        (8, 16 * 1024, 12, "linux", 12),  # no cap on Linux
        (8, 16 * 1024, None, "termux", 4),  # 8 cores, 16 GB phone: the phantom killer's cap
        (8, 16 * 1024, 12, "termux", 4),  # the cap holds against an override too
        (8, 3 * 1024, None, "termux", 2),  # little free RAM on a phone: RAM decides
    ],
)
def test_choose_jobs(cores, available_mb, override, platform, expected):
    assert choose_jobs(cores, available_mb, override, platform) == expected


# --- targets and arguments ------------------------------------------------------------------------


def test_role_targets_follow_the_source_tree():
    today = {"rpc_target": "ggml-rpc-server", "server_target": "llama-server"}
    older = {"rpc_target": "rpc-server", "server_target": "llama-server"}
    assert role_targets("worker", today) == ("ggml-rpc-server",)
    assert role_targets("worker", older) == ("rpc-server",)
    assert role_targets("master", today) == ("llama-server",)
    # Before the tree exists (preview), today's names are assumed.
    assert role_targets("worker", None) == ("ggml-rpc-server",)


def test_rpc_server_is_installed_under_one_name():
    assert installed_name("rpc-server") == "ggml-rpc-server"
    assert installed_name("ggml-rpc-server") == "ggml-rpc-server"
    assert installed_name("llama-server") == "llama-server"
    older = dataclasses.replace(INPUTS, targets=("rpc-server",))
    assert installed_matches(installed_for(older, files=["ggml-rpc-server"]), older)


def test_cmake_args_order_lets_user_args_win():
    args = cmake_args_for("worker", ["-DGGML_NATIVE=OFF", "-DGGML_CPU_ARM_ARCH=armv8-a", "-DGGML_OPENMP=OFF"])
    assert args[: len(COMMON_CMAKE_ARGS)] == COMMON_CMAKE_ARGS
    assert "-DLLAMA_BUILD_SERVER=OFF" in args
    assert args[-1] == "-DGGML_OPENMP=OFF"
    assert "-DLLAMA_BUILD_SERVER=ON" in cmake_args_for("master", [])
    # The options the brief asks for, always:
    for option in ("-DGGML_RPC=ON", "-DGGML_NATIVE=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                   "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_OPENSSL=OFF", "-DCMAKE_BUILD_TYPE=Release"):
        assert option in args


# --- identities, keys, stamps ---------------------------------------------------------------------


def test_identities():
    assert source_identity({"kind": "archive", "sha256": "ab" * 32}) == "archive:" + "ab" * 32
    assert source_identity({"kind": "git", "commit": "c0ffee", "ref": "b6000"}) == "git:c0ffee"
    assert source_identity(None) is None
    assert source_identity({"kind": "git"}) is None
    assert compiler_identity({"family": "gcc", "version": "12.2.0", "path": "/usr/bin/cc"}) == "gcc 12.2.0"
    assert compiler_identity(None) is None


def test_class_key_is_stable_and_sensitive_to_every_input():
    assert INPUTS.key() == BuildInputs.from_dict(INPUTS.to_dict()).key()
    assert len(INPUTS.key()) == 16
    changes = {
        "source": "git:0123",
        "platform": "linux",
        "arch": "armv7l",
        "compiler": "clang 19.1.0",
        "targets": ("llama-server",),
        "cmake_args": INPUTS.cmake_args + ("-DGGML_OPENMP=OFF",),
    }
    keys = {INPUTS.key()}
    for field, value in changes.items():
        keys.add(dataclasses.replace(INPUTS, **{field: value}).key())
    assert len(keys) == 1 + len(changes)


def test_stamp_round_trip_and_matching():
    stamp = make_stamp(INPUTS, "phone1")
    assert stamp["class_key"] == INPUTS.key()
    assert stamp["built_on"] == "phone1"
    assert '"class_key": "%s"' % INPUTS.key() in stamp_json(stamp)  # the build script greps this
    assert installed_matches(installed_for(INPUTS), INPUTS)


@pytest.mark.parametrize(
    "installed, reason",
    [
        (None, "no build installed"),
        ({"stamp": None, "intact": True, "files": []}, "unreadable"),
        (installed_for(INPUTS, intact=False), "checksums"),
        (installed_for(dataclasses.replace(INPUTS, compiler="clang 17.0.6")), "changed: compiler"),
        (installed_for(dataclasses.replace(INPUTS, cmake_args=("-DGGML_RPC=ON",))), "changed: cmake_args"),
        (installed_for(INPUTS, files=[]), "incomplete"),
    ],
)
def test_installed_build_that_does_not_match(installed, reason):
    assert not installed_matches(installed, INPUTS)
    assert reason in describe_difference(installed, INPUTS)


# --- class plans ----------------------------------------------------------------------------------


def test_cold_class_compiles_once_and_copies_to_twins():
    members = [ClassMember("phone1", "k1", False), ClassMember("phone2", "k1", False), ClassMember("phone3", "k1", False)]
    plan = plan_class_builds(members)
    assert plan["phone1"] == Assignment("compile", share_to=("phone2", "phone3"))
    assert plan["phone2"] == Assignment("copy", "phone1")
    assert plan["phone3"] == Assignment("copy", "phone1")
    assert sum(a.action == "compile" for a in plan.values()) == 1


def test_member_with_a_current_build_donates_so_nobody_compiles():
    # A phone added to a fleet gets the binaries of an identical phone that has them.
    members = [ClassMember("phone1", "k1", True), ClassMember("phone2", "k1", False)]
    plan = plan_class_builds(members)
    assert plan["phone1"] == Assignment("none", share_to=("phone2",))
    assert plan["phone2"] == Assignment("copy", "phone1")


def test_first_member_that_needs_binaries_builds():
    members = [ClassMember("phone1", "old", True), ClassMember("phone2", "k1", False), ClassMember("phone3", "k1", False)]
    plan = plan_class_builds(members)
    assert plan["phone1"] == Assignment("none")
    assert plan["phone2"] == Assignment("compile", share_to=("phone3",))
    assert plan["phone3"] == Assignment("copy", "phone2")


def test_each_class_builds_on_its_own_member():
    members = [
        ClassMember("phone1", "arm", False),
        ClassMember("linux1", "master", False),
        ClassMember("phone2", "arm", False),
        ClassMember("linux2", "x86", False),
    ]
    plan = plan_class_builds(members)
    assert {name for name, a in plan.items() if a.action == "compile"} == {"phone1", "linux1", "linux2"}
    assert plan["phone2"] == Assignment("copy", "phone1")
    assert plan["linux1"].share_to == () and plan["linux2"].share_to == ()


def test_controller_cache_serves_a_class_without_compiling():
    members = [ClassMember("phone1", "k1", False), ClassMember("phone2", "k1", False)]
    plan = plan_class_builds(members, {"k1"})
    assert plan == {"phone1": Assignment("copy", CACHE_SOURCE), "phone2": Assignment("copy", CACHE_SOURCE)}


def test_opting_out_builds_everywhere():
    members = [ClassMember("phone1", "k1", False, share=False), ClassMember("phone2", "k1", False, share=False)]
    plan = plan_class_builds(members, {"k1"})
    assert plan == {"phone1": Assignment("compile"), "phone2": Assignment("compile")}


def test_up_to_date_class_does_nothing_and_unknown_key_compiles():
    members = [ClassMember("a", "k1", True), ClassMember("b", "k1", True), ClassMember("c", None, False)]
    plan = plan_class_builds(members)
    assert plan["a"] == Assignment("none") and plan["b"] == Assignment("none")
    assert plan["c"] == Assignment("compile")


def test_binaries_report_the_source_they_were_built_from():
    # llama.cpp's build info asks git; an archive has none and said "b0-unknown".
    from llamafleet.operations.buildinputs import version_cmake_args

    assert version_cmake_args("archive:832db0699007f1be95a7") == ("-DLLAMA_BUILD_COMMIT=archive-832db0699007",)
    assert version_cmake_args("git:0123456789abcdef0123") == ("-DLLAMA_BUILD_COMMIT=0123456789ab",)
    assert version_cmake_args(None) == () and version_cmake_args("unknown") == ()
    args = cmake_args_for("worker", ["-DGGML_CPU_ARM_ARCH=armv8-a"], "git:0123456789abcdef")
    assert "-DLLAMA_BUILD_COMMIT=0123456789ab" in args
    assert args[-1] == "-DGGML_CPU_ARM_ARCH=armv8-a"  # the user's arguments stay last
