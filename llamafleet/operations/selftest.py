"""The compile that proves itself: build, run the self-test, and on SIGILL step down the ladder.

`build.compile` runs `compile_proven` (a FunctionCommand: it must see how the script ended).
The build script compiles llama.cpp, then compiles and runs ggml-selftest.c with the build's ISA
flags against the build tree's ggml libraries; only a build whose self-test passed is installed.
When the self-test dies of SIGILL the script installs nothing and exits SELFTEST_SIGILL_EXIT;
then, on the controller:

1. the deploy warns, naming the host, the flags, the features given up and the next rung;
2. the features the failed rung used beyond the next one are recorded on the device
   (`<base>/etc/cpu-refused`, templates/llamafleet/etc/cpu-refused.j2) before anything else,
   so every later plan leaves them out (the CpuRefusals fact, `build_flags(refused=...)`) and
   plans exactly what is installed now;
3. the host's HostBuild takes the new flags, inputs and class key, and the compile runs again;

down to the plainest rung. A build that fails otherwise (wrong results included) fails the host
as before; the previous binaries stay. Twins of the class (same inputs, so the same CPU) take
the same refusals over when their turn comes (buildclass.adopt_refusals) and copy the binaries
the builder ended with; `build.install_copy` records the refusals on them too.
"""

from __future__ import annotations

from datetime import datetime, timezone
from io import StringIO

from pyinfra import logger
from pyinfra.api import QuoteString, StringCommand

from llamafleet.operations.buildclass import HostBuild, class_refusals, record_binaries
from llamafleet.operations.buildinputs import installed_matches, installed_name, make_stamp, stamp_json
from llamafleet.operations.buildscript import (
    SELFTEST_SIGILL_EXIT, SELFTEST_SIGILL_LINE, SELFTEST_SOURCE, SELFTEST_SOURCE_SHA256, run_script,
)
from llamafleet.operations.transfer import upload_verified
from llamafleet.templates import render

# Never more self-test threads than this: enough to reach every core of a phone.
MAX_SELFTEST_THREADS = 8


def selftest_threads(logical_cpus: int | None) -> int:
    """Every core up to MAX_SELFTEST_THREADS: a core that lacks a feature must run a part."""
    return max(1, min(int(logical_cpus or 1), MAX_SELFTEST_THREADS))


def upload_selftest(build: HostBuild):
    """Commands that put the self-test's source next to the build script (unchanged: nothing)."""
    yield from upload_verified(StringIO(SELFTEST_SOURCE), build.paths.selftest_source, SELFTEST_SOURCE_SHA256)


def isa_flags(build: HostBuild) -> str:
    """The flags ggml's CPU code is compiled with (BuildFlags.compile_flags), for the self-test."""
    return " ".join(getattr(build.flags, "compile_flags", None) or [])


def compile_command(build: HostBuild) -> StringCommand:
    """The build script's `compile` for the host's current inputs and flags."""
    inputs, paths = build.inputs, build.paths
    assert inputs is not None
    return run_script(
        build,
        "compile",
        inputs.cmake_args,
        LF_SRC=paths.llama_src,
        LF_BUILD=paths.build,
        LF_JOBS=str(build.jobs),
        LF_TARGETS=" ".join(inputs.targets),
        LF_INSTALL=" ".join(f"{target}:{installed_name(target)}" for target in inputs.targets),
        LF_STAMP=stamp_json(make_stamp(inputs, build.name)),
        LF_CC=build.cc or "cc",
        LF_CXX=build.cxx or "c++",
        LF_ISA_FLAGS=isa_flags(build),
        LF_SELFTEST_SRC=paths.selftest_source,
        LF_SELFTEST_THREADS=str(build.selftest_threads),
    )


def record_text(refused: dict) -> str:
    """The device's cpu-refused record for `refused` (feature -> details), oldest first."""
    rows = sorted(
        ({"feature": feature, **details} for feature, details in refused.items()),
        key=lambda row: (row.get("date", ""), row["feature"]),
    )
    return render("llamafleet/etc/cpu-refused.j2", refusals=rows) + "\n"


def record_command(build: HostBuild) -> StringCommand:
    """Shell: write the host's refusals to <base>/etc/cpu-refused (via a .part file, renamed)."""
    path = build.paths.cpu_refused
    return StringCommand(
        "mkdir", "-p", QuoteString(path.rsplit("/", 1)[0]), "&&",
        "printf", "%s", QuoteString(record_text(build.refused)), ">", QuoteString(f"{path}.part"), "&&",
        "mv", "-f", QuoteString(f"{path}.part"), QuoteString(path),
    )


def adopted_record(build: HostBuild):
    """On a twin that took its builder's refusals over: the command recording them (once)."""
    if build.adopted:
        build.adopted = []
        yield record_command(build)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _show_failure(host, output) -> None:
    for line in output.stderr_lines or output.stdout_lines:
        host.log(line, log_func=logger.error)


def compile_proven(state, host, build: HostBuild) -> bool:
    """Compile on `host` until a rung passes the self-test (see the module docstring)."""
    planned_key = build.key
    while True:
        status, output = host.run_shell_command(
            compile_command(build), _success_exit_codes=(0, SELFTEST_SIGILL_EXIT)
        )
        if not status:
            _show_failure(host, output)
            return False
        if not any(SELFTEST_SIGILL_LINE in line for line in output.stdout_lines):
            for line in output.stdout_lines:
                if "ggml-selftest:" in line:
                    host.log(line.replace("llamafleet: ", "", 1))
            return record_binaries(state, host, build)
        descent = build.planner.step_down(build.flags, build.refused) if build.planner else None
        if descent is None:
            host.log_styled(
                f"{host.name}: the self-test of {isa_flags(build) or 'the plainest build'} died of SIGILL "
                "(illegal instruction) and there is no lower rung to try; nothing was installed "
                "(llama_cpu_arch = native? name an architecture instead)",
                fg="red", log_func=logger.error,
            )
            return False
        host.log_styled(descent.message(host.name), fg="yellow", log_func=logger.warning)
        date, flags = _now(), isa_flags(build)
        new = {feature: {"date": date, "reason": "sigill", "flags": flags} for feature in descent.dropped}
        build.refused = {**build.refused, **new}
        # Recorded before the next compile: if that one is interrupted, the next deploy still
        # plans without these features (and this one's twins can take them over).
        status, output = host.run_shell_command(record_command(build))
        if not status:
            _show_failure(host, output)
            return False
        class_refusals(state).setdefault(planned_key or "", []).extend(
            {"feature": feature, **details, "reason": f"sigill-on-{host.name}"} for feature, details in new.items()
        )
        build.flags = descent.next
        build.inputs = build.inputs_for(descent.next) if build.inputs_for else build.inputs
        build.reason = f"one step down after SIGILL ({', '.join(descent.dropped)} refused)"
        if build.inputs is not None and installed_matches(build.installed, build.inputs):
            # The installed binaries are this rung's (an over-reaching llama_cpu_arch on a
            # device that was fine): keep them, so the worker is not restarted for nothing.
            # up_to_date: binaries_changed() reads it, and the worker's and master's restarts follow it.
            host.log(f"class {build.key}: the installed build has these inputs; kept")
            build.up_to_date = True
            return record_binaries(state, host, build)


__all__ = ["compile_command", "compile_proven", "record_command", "record_text", "selftest_threads", "upload_selftest"]
