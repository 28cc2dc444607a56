"""The build script's self-test step, run for real with stand-ins for CMake and the compilers.

A build is installed only when the self-test ran: a self-test that dies of SIGILL makes
`compile` exit SELFTEST_SIGILL_EXIT with a recognisable line and leaves the previous release in
place; wrong results or a self-test that cannot be built fail as any build failure does. (The
real program against real ggml is checked by hand under qemu: see the branch's report.)
"""

from __future__ import annotations

import os
from pathlib import Path

from llamafleet.operations.buildscript import BUILD_SCRIPT, SELFTEST_SIGILL_EXIT, SELFTEST_SIGILL_LINE, SELFTEST_SOURCE
from test_build_script import device, installed, log_text, run_script  # noqa: F401 - fixture

SIGILL = "-march=armv8.2-a+dotprod+fp16+i8mm"


def cc_calls(tmp_path, device, key="k1", **extra):  # noqa: F811 - the fixture
    calls = tmp_path / "cc.log"
    result = run_script(device, "compile", key, FAKE_CC_LOG=str(calls), **extra)
    return result, (calls.read_text().splitlines() if calls.exists() else [])


def test_the_script_and_the_controller_agree_on_the_exit_status_and_the_line():
    assert f"SIGILL_EXIT={SELFTEST_SIGILL_EXIT}\n" in BUILD_SCRIPT
    assert f'say "{SELFTEST_SIGILL_LINE} with $LF_ISA_FLAGS' in BUILD_SCRIPT


def test_a_passing_self_test_installs_and_logs_its_line(tmp_path, device):  # noqa: F811
    result, calls = cc_calls(tmp_path, device)
    assert result.returncode == 0, result.stderr
    assert installed(device)["stamp"]["class_key"] == "k1"
    assert "llamafleet: ggml-selftest: ok: mul_mat, 4 thread(s)" in result.stdout
    assert "ggml-selftest: ok" in log_text(device)
    compile_call, link_call = calls
    build = device["paths"].build
    # Compiled with the build's ISA flags against the tree's headers; linked by the C++
    # compiler with the static ggml libraries, libm and threads (no OpenMP: the build had none).
    assert compile_call.startswith(f"{SIGILL} -O2 -I{device['paths'].llama_src}/ggml/include -c ")
    assert link_call.startswith(f"{SIGILL} {build}/llamafleet-selftest.o ")
    assert f"{build}/ggml/src/libggml-cpu.a" in link_call and f"{build}/ggml/src/libggml-base.a" in link_call
    assert link_call.endswith(" -lm -pthread -o " + f"{build}/llamafleet-selftest")
    assert "-fopenmp" not in link_call


def test_the_self_test_links_openmp_when_the_build_used_it(tmp_path, device):  # noqa: F811
    result, calls = cc_calls(tmp_path, device, FAKE_OPENMP="1")
    assert result.returncode == 0, result.stderr
    assert " -fopenmp -lm -pthread " in calls[-1]


def test_sigill_exits_with_its_own_status_and_keeps_the_previous_release(tmp_path, device):  # noqa: F811
    assert run_script(device, "compile", "k1").returncode == 0
    before = os.readlink(device["paths"].bin)

    result, _ = cc_calls(tmp_path, device, key="k2", FAKE_SELFTEST="sigill")

    assert result.returncode == SELFTEST_SIGILL_EXIT
    [line] = [line for line in result.stdout.splitlines() if SELFTEST_SIGILL_LINE in line]
    assert line == (f"llamafleet: {SELFTEST_SIGILL_LINE} with {SIGILL} (illegal instruction): "
                    "this CPU refuses these flags; nothing installed")
    assert line in log_text(device)
    assert os.readlink(device["paths"].bin) == before
    assert installed(device)["stamp"]["class_key"] == "k1"
    assert not list(Path(device["paths"].releases).glob("k2-*")) and not list(Path(device["paths"].releases).glob(".staging-*"))
    assert not Path(device["paths"].run, "build.lock").exists()


def test_wrong_results_fail_the_build_and_install_nothing(device):  # noqa: F811
    result = run_script(device, "compile", "k1", FAKE_SELFTEST="wrong")
    assert result.returncode == 1
    assert "compile failed on phone1: self-test: ggml-selftest: wrong results: q4_K WRONG 0.9" in result.stderr
    assert SELFTEST_SIGILL_LINE not in result.stdout
    assert installed(device) is None


def test_a_self_test_that_does_not_compile_fails_the_build(device):  # noqa: F811
    result = run_script(device, "compile", "k1", FAKE_SELFTEST="cc-fails")
    assert result.returncode == 1
    assert "self-test: cannot compile" in result.stderr and "unknown target feature" in log_text(device)
    assert installed(device) is None


def test_the_self_test_source_is_the_same_for_every_host_and_uses_the_public_api():
    """Rendered once; it includes only ggml's public headers and checks the model's types with
    an even number of src1 columns (nrc=2: the i8mm kernels)."""
    assert '#include "ggml.h"' in SELFTEST_SOURCE and '#include "ggml-cpu.h"' in SELFTEST_SOURCE
    for call in ("ggml_quantize_chunk(", "ggml_mul_mat(", "ggml_graph_compute_with_ctx(", "->to_float("):
        assert call in SELFTEST_SOURCE
    for name in ("GGML_TYPE_F16", "GGML_TYPE_Q4_0", "GGML_TYPE_Q8_0", "GGML_TYPE_Q4_K", "GGML_TYPE_Q6_K"):
        assert name in SELFTEST_SOURCE
    assert "#define COLS 4" in SELFTEST_SOURCE and "{#" not in SELFTEST_SOURCE
