"""The build script a host runs (rendered once per deploy) and the commands that call it."""

from __future__ import annotations

import hashlib
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, QuoteString, StringCommand

from llamafleet.operations.buildclass import HostBuild, record_binaries
from llamafleet.operations.transfer import upload_verified
from llamafleet.templates import render

# `compile` exits with this status, after printing a line with SELFTEST_SIGILL_LINE, when the
# self-test of the new build died of SIGILL (llamafleet.operations.selftest takes it from there).
# Written out in the script too (it holds no Jinja2 markup); tests/unit/test_selftest_script.py
# checks that both say the same.
SELFTEST_SIGILL_EXIT = 86
SELFTEST_SIGILL_LINE = "self-test died of SIGILL"

# The same text for every host (its inputs come as LF_* variables), so one render serves the deploy.
BUILD_SCRIPT = render("llamafleet/libexec/llamafleet-build.sh.j2")
BUILD_SCRIPT_SHA256 = hashlib.sha256(BUILD_SCRIPT.encode()).hexdigest()
SELFTEST_SOURCE = render("llamafleet/libexec/ggml-selftest.c.j2")
SELFTEST_SOURCE_SHA256 = hashlib.sha256(SELFTEST_SOURCE.encode()).hexdigest()


def fail(message: str) -> FunctionCommand:
    """A command that fails this host (only this one) with `message`."""

    def report(state, host) -> bool:
        host.log_styled(message, fg="red", log_func=logger.error)
        return False

    return FunctionCommand(report, (), {})


def script_env(build: HostBuild, **extra: str) -> list:
    paths = build.paths
    env = {
        "LF_HOST": build.name,
        "LF_KEY": build.key or "",
        "LF_LOG": paths.build_log,
        "LF_RUN": paths.run,
        "LF_RELEASES": paths.releases,
        "LF_BIN": paths.bin,
        **extra,
    }
    return ["env", *(QuoteString(f"{name}={value}") for name, value in env.items())]


def run_script(build: HostBuild, mode: str, args: tuple[str, ...] = (), **env: str) -> StringCommand:
    return StringCommand(
        *script_env(build, **env), "sh", QuoteString(build.paths.build_script), mode,
        *(QuoteString(arg) for arg in args),
    )


def upload_script(build: HostBuild):
    yield from upload_verified(StringIO(BUILD_SCRIPT), build.paths.build_script, BUILD_SCRIPT_SHA256)


def activate_kept(build: HostBuild):
    """Commands that swap in the release `build.resolve` found kept with the wanted inputs (a
    roll back): the script checks it again under the build lock; nothing is compiled."""
    if host.state.is_executing:
        host.log(f"class {build.key}: switching <base>/bin back to releases/{build.reuse} ({build.reason})")
    yield from upload_script(build)
    yield run_script(build, "activate", LF_RELEASE=build.reuse or "")
    yield FunctionCommand(record_binaries, (build,), {})


def run_checked(host, command) -> bool:
    """Run one command on `host`; on failure show its output and return False."""
    status, output = host.run_shell_command(command)
    if not status:
        for line in output.stderr_lines or output.stdout_lines:
            host.log(line, log_func=logger.error)
    return bool(status)
