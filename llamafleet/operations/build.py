"""Build llama.cpp once per device class and copy the binaries to the class's other members.

Four operations, run in this order by tasks/build.py; pyinfra runs each one on every host before
the next one starts, which is what lets the class members coordinate:

1. `build.resolve`  every host works out its build inputs (flags, compiler, targets, source) and
                    whether its installed stamp matches; it records them for the others.
2. `build.compile`  the one member per class chosen to build (first in inventory order that needs
                    binaries, unless a member already has them) compiles; the others wait.
3. `build.share`    the member holding the class's binaries packs them and the controller fetches
                    the archive into its cache (sha256-checked).
4. `build.install_copy`  every other member that needs binaries receives the archive, checks it,
                    unpacks it into a new release and swaps it in, with the builder's stamp.

pyinfra 3.10 runs an operation's body twice: once while preparing (to show what would change)
and again at execution, with fresh facts. The class plan therefore records *preview* values while
preparing and is recomputed from real facts during execution, when packages and sources from the
earlier tasks are in place.

`pyinfra --serial` runs every operation of one host before the next host, in no fixed order
(pyinfra keeps its active hosts in a set): the first member of a class to run compiles, and
each later one copies from it (`build.install_copy` fetches the binaries itself then). With
`--no-wait` the hosts do not wait for one another at all; nothing here coordinates that mode.
"""

from __future__ import annotations

import hashlib
import os
import re
import weakref
from dataclasses import dataclass
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, QuoteString, StringCommand, operation
from pyinfra.api.exceptions import OperationValueError

from llamafleet.cpu.flags import FlagsError, build_flags
from llamafleet.cpu.table import table_for
from llamafleet.facts import CompilerInfo, CpuProfile, MemInfo, compiler_accepts
from llamafleet.facts.build import InstalledBuild, LlamaSource
from llamafleet.facts.reading import read_fact
from llamafleet.layout import Paths, device_platform
from llamafleet.operations.archive import sha256_file
from llamafleet.operations.buildinputs import (
    CACHE_SOURCE,
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
from llamafleet.operations.transfer import upload_verified, verify_and_rename
from llamafleet.templates import render

# The same text for every host (its inputs come as LF_* variables), so one render serves the deploy.
BUILD_SCRIPT = render("llamafleet/libexec/llamafleet-build.sh.j2")
BUILD_SCRIPT_SHA256 = hashlib.sha256(BUILD_SCRIPT.encode()).hexdigest()

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


# --- what each host found out in `resolve`, shared between hosts of one deploy ---------------


@dataclass
class HostBuild:
    """One host's build situation, as recorded by `build.resolve`."""

    name: str
    order: int
    paths: Paths
    inputs: BuildInputs | None
    up_to_date: bool
    reason: str
    share: bool
    jobs: int
    cc: str | None
    cxx: str | None
    problem: str | None = None
    # Recorded while executing (not the preview made while preparing): only such records say
    # what a host really needs, so only they take part in the class plan during execution.
    executed: bool = False
    # Set once this deploy compiled or installed the class's binaries here: the host can give
    # them to a twin that runs after it (pyinfra --serial runs one host after the other).
    has_binaries: bool = False

    @property
    def key(self) -> str | None:
        return self.inputs.key() if self.inputs else None


# One registry per pyinfra State: several deploys (tests) may live in one process.
_registries: "weakref.WeakKeyDictionary[object, dict[str, HostBuild]]" = weakref.WeakKeyDictionary()


def registry(state) -> dict[str, HostBuild]:
    return _registries.setdefault(state, {})


def build_cache_dir(state) -> str:
    """Controller directory holding class binaries: $LLAMAFLEET_BUILD_CACHE, else
    `.llamafleet/cache/builds` in the deploy directory."""
    configured = os.environ.get("LLAMAFLEET_BUILD_CACHE")
    if configured:
        return configured
    return os.path.join(state.cwd or os.getcwd(), ".llamafleet", "cache", "builds")


def cached_artifact(cache_dir: str, key: str) -> tuple[str, str] | None:
    """(path, sha256) of a verified class archive in the controller cache, or None."""
    path = os.path.join(cache_dir, f"{key}.tar.gz")
    try:
        with open(f"{path}.sha256") as handle:
            expected = handle.read().strip()
    except OSError:
        return None
    if not os.path.exists(path) or sha256_file(path) != expected:
        return None
    return path, expected


def binaries_changed(host) -> bool:
    """True, during execution, when this deploy put new binaries in `host`'s <base>/bin.

    For `_if=` callbacks of later operations (restart a service on a new binary): once
    `build.compile` / `build.install_copy` have run, a host that needed binaries and is still
    in the deploy has them.
    """
    build = registry(host.state).get(host.name)
    return bool(host.state.is_executing and build and build.problem is None and not build.up_to_date)


def _class_plan(state):
    """Who compiles and who copies, from the records of `build.resolve`.

    While executing, a host whose record is still the preview has not run yet (pyinfra --serial
    runs every operation of one host before the next host starts): it is left out and plans
    for itself when its turn comes, copying from whoever has the binaries by then.
    """
    builds = registry(state)
    members = [
        ClassMember(build.name, build.key, build.up_to_date or build.has_binaries, build.share)
        for build in sorted(builds.values(), key=lambda build: build.order)
        if build.problem is None and (build.executed or not state.is_executing)
    ]
    cache_dir = build_cache_dir(state)
    cached = {member.key for member in members if member.key and cached_artifact(cache_dir, member.key)}
    return plan_class_builds(members, cached)


def _fail(message: str) -> FunctionCommand:
    """A command that fails this host (only this one) with `message`."""

    def report(state, host) -> bool:
        host.log_styled(message, fg="red", log_func=logger.error)
        return False

    return FunctionCommand(report, (), {})


def _script_env(build: HostBuild, **extra: str) -> list:
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


def _run_script(build: HostBuild, mode: str, args: tuple[str, ...] = (), **env: str) -> StringCommand:
    return StringCommand(
        *_script_env(build, **env), "sh", QuoteString(build.paths.build_script), mode,
        *(QuoteString(arg) for arg in args),
    )


def _upload_script(build: HostBuild):
    yield from upload_verified(StringIO(BUILD_SCRIPT), build.paths.build_script, BUILD_SCRIPT_SHA256)


def _record_binaries(state, host, build: HostBuild) -> bool:
    """Run after a compile or an install succeeded: later twins may copy from this host."""
    build.has_binaries = True
    return True


# --- 1. resolve ------------------------------------------------------------------------------


@operation()
def resolve(
    paths: Paths,
    role: str,
    compiler: str | None = None,
    cpu_arch: str | None = None,
    cpu_mcpu: str | None = None,
    cmake_args: list[str] | None = None,
    cpu_table: str | None = None,
    jobs: int | None = None,
    once_per_class: bool = True,
    expected_source: str | None = None,
):
    """
    Work out this host's build inputs and class, and whether its installed build is current.

    + paths: the device layout (llamafleet.layout.device_paths)
    + role: "worker" (builds the RPC server) or "master" (builds llama-server)
    + compiler: C compiler name or path; default clang on Termux, cc on Linux
    + cpu_arch, cpu_mcpu, cmake_args: the `llama_cpu_arch`, `llama_cpu_mcpu`, `llama_cmake_args`
      overrides, passed to the flag table
    + cpu_table: `llama_cpu_table`, a YAML file of CPU table rows merged over the built-in ones
    + jobs: parallel compile jobs (default from cores and RAM)
    + once_per_class: share binaries with identical devices instead of compiling everywhere
    + expected_source: the source identity to assume while no tree is on the device yet

    Changes nothing: it records what it found for `build.compile`, `build.share` and
    `build.install_copy`, and says it in one line.

    **Example:**

    .. code:: python

        build.resolve(name="Work out the build", paths=device_paths(host), role="worker")
    """
    state = host.state
    executing = state.is_executing
    builds = registry(state)
    platform = device_platform(host)
    platform_name = platform.get("platform") or "linux"
    compiler_name = compiler or ("clang" if platform_name == "termux" else "cc")

    profile = read_fact(host, CpuProfile, **({"cpu_table": cpu_table} if cpu_table else {}))
    memory = read_fact(host, MemInfo) or {}
    compiler_info = host.get_fact(CompilerInfo, compiler=compiler_name)
    tree = host.get_fact(LlamaSource, path=paths.llama_src)
    installed = host.get_fact(InstalledBuild, bin_dir=paths.bin)

    problem = None
    if not compiler_info:
        problem = (
            f"{host.name}: llama_compiler: no C compiler {compiler_name!r} on the device "
            "(is it in termux_packages / apt_packages?)"
        )
    elif not compiler_info.get("cxx"):
        problem = f"{host.name}: llama_compiler: no C++ compiler next to {compiler_info['path']}"
    source = source_identity((tree or {}).get("identity"))
    if source is None and problem is None:
        problem = (
            f"{host.name}: llama_cpp_archive/llama_cpp_ref: no llama.cpp source recorded at "
            f"{paths.llama_src} (did the source task fail?)"
        )

    # Probing the compiler costs one SSH round trip per rung: only when the result counts.
    accepts = compiler_accepts(host, compiler_info["path"]) if executing and compiler_info else None
    try:
        flags = build_flags(
            profile,
            compiler_info,
            llama_cpu_arch=cpu_arch,
            llama_cpu_mcpu=cpu_mcpu,
            llama_cmake_args=cmake_args or [],
            platform=platform_name,
            accepts=accepts,
            table=table_for(cpu_table),
        )
    except FlagsError as error:
        # tasks/build.py checks the overrides while preparing; this guards direct callers.
        raise OperationValueError(f"{host.name}: {error}") from error

    source = source or expected_source or "unknown"
    inputs = BuildInputs(
        source=source,
        platform=platform_name,
        arch=profile.get("arch") or "unknown",
        compiler=compiler_identity(compiler_info) or f"{compiler_name} (not installed yet)",
        targets=role_targets(role, tree),
        cmake_args=cmake_args_for(role, flags.cmake_args, source),
    )
    up_to_date = installed_matches(installed, inputs)
    builds[host.name] = HostBuild(
        name=host.name,
        order=[h.name for h in state.inventory].index(host.name),
        paths=paths,
        inputs=inputs,
        up_to_date=up_to_date,
        reason="stamp matches" if up_to_date else describe_difference(installed, inputs),
        share=once_per_class,
        jobs=choose_jobs(profile.get("logical_cpus"), memory.get("available_mb") or memory.get("total_mb"), jobs, platform_name),
        cc=(compiler_info or {}).get("path"),
        cxx=(compiler_info or {}).get("cxx"),
        # Before execution a missing compiler or tree is expected: earlier tasks provide them.
        problem=problem if executing else None,
        executed=executing,
    )
    if executing:
        for warning in flags.warnings:
            host.log_styled(f"build flags: {warning}", fg="yellow", log_func=logger.warning)
        if flags.fallback:
            host.log(f"build flags: {flags.fallback}")
    host.noop(
        f"build class {inputs.key()}: {platform_name}/{inputs.arch}, {inputs.compiler}, "
        f"march {flags.march}, targets {' '.join(inputs.targets)}"
    )
    if executing and problem:
        yield _fail(problem)


# --- 2. compile ------------------------------------------------------------------------------


def _mine(state) -> tuple[HostBuild | None, object]:
    build = registry(state).get(host.name)
    plan = _class_plan(state)
    return build, plan.get(host.name) if build else None


@operation()
def compile(paths: Paths):
    """
    Compile llama.cpp on this host when it is the one chosen to build its class.

    + paths: the device layout (must match the one given to `build.resolve`)

    The build log is `<base>/logs/build.log` (named in the output before the compile starts);
    a failed build prints its last 40 lines. Builds in a staging directory and swaps `<base>/bin`
    atomically, so a killed build leaves the previous binaries and stamp in place and the next
    run finishes it.

    **Example:**

    .. code:: python

        build.compile(name="Compile llama.cpp", paths=device_paths(host))
    """
    build, assignment = _mine(host.state)
    if build is None or assignment is None:
        host.noop("no build planned (see build.resolve)")
        return
    key = build.key
    if assignment.action == "none":
        host.noop(f"llama.cpp class {key} is installed ({build.reason})")
        return
    if assignment.action == "copy":
        source = "the controller cache" if assignment.source == CACHE_SOURCE else assignment.source
        host.noop(f"class {key} binaries come from {source}: no compile here")
        return

    inputs = build.inputs
    assert inputs is not None
    if host.state.is_executing:
        host.log(
            f"compiling {' '.join(inputs.targets)} for class {key} (-j{build.jobs}; {build.reason}); "
            f"follow with: tail -f {paths.build_log}"
        )
    yield from _upload_script(build)
    yield _run_script(
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
    )
    yield FunctionCommand(_record_binaries, (build,), {})


# --- 3. share --------------------------------------------------------------------------------


def _class_archive_on_device(build: HostBuild) -> str:
    return f"{build.paths.run}/class-{build.key}.tar.gz"


def _pack_and_fetch(state, host, build: HostBuild, cache_dir: str) -> bool:
    """Pack the release on this host, download it to the controller cache and verify it."""
    remote = _class_archive_on_device(build)
    status, output = host.run_shell_command(_run_script(build, "pack", LF_ARCHIVE=remote))
    if not status:
        for line in output.stderr_lines or output.stdout_lines:
            host.log(line, log_func=logger.error)
        return False
    digests = [line.strip() for line in output.stdout_lines if _HEX64.match(line.strip())]
    if not digests:
        host.log_styled("packing printed no sha256", fg="red", log_func=logger.error)
        return False
    expected = digests[-1]

    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, f"{build.key}.tar.gz")
    part = f"{path}.part"
    if not host.get_file(remote, part):
        return False
    actual = sha256_file(part)
    if actual != expected:
        os.remove(part)
        host.log_styled(
            f"class {build.key}: downloaded archive has sha256 {actual}, the device said {expected}",
            fg="red",
            log_func=logger.error,
        )
        return False
    os.replace(part, path)
    with open(f"{path}.sha256.part", "w") as handle:
        handle.write(expected + "\n")
    os.replace(f"{path}.sha256.part", f"{path}.sha256")
    host.run_shell_command(StringCommand("rm", "-f", QuoteString(remote)))
    host.log(f"class {build.key}: binaries fetched to {path} (sha256 {expected[:12]})")
    return True


@operation()
def share(paths: Paths):
    """
    On the member holding its class's binaries, send them to the controller for the twins.

    + paths: the device layout

    Packs the current release (binaries, SHA256SUMS, stamp), downloads it to the controller's
    build cache and checks its sha256. Only when a twin needs the binaries and the cache does not
    hold them yet.

    **Example:**

    .. code:: python

        build.share(name="Fetch class binaries", paths=device_paths(host))
    """
    build, assignment = _mine(host.state)
    if build is None or assignment is None or not assignment.share_to:
        host.noop("no twin needs binaries from this host")
        return
    yield FunctionCommand(_pack_and_fetch, (build, build_cache_dir(host.state)), {})


# --- 4. install_copy -------------------------------------------------------------------------


def _run_checked(host, command) -> bool:
    """Run one command on `host`; on failure show its output and return False."""
    status, output = host.run_shell_command(command)
    if not status:
        for line in output.stderr_lines or output.stdout_lines:
            host.log(line, log_func=logger.error)
    return bool(status)


def _copy_late(state, host, build: HostBuild, source: HostBuild, cache_dir: str) -> bool:
    """Fetch the class binaries from `source` now, then install them on `host` (the same steps
    as `build.share` + `build.install_copy`, for runs where the source was done first)."""
    source_host = state.inventory.get_host(source.name, None)
    if source_host is None or source_host not in state.active_hosts:
        host.log_styled(
            f"class {build.key}: {source.name}, which holds the binaries, is not in this deploy any more",
            fg="red",
            log_func=logger.error,
        )
        return False
    if cached_artifact(cache_dir, build.key) is None and not _pack_and_fetch(state, source_host, source, cache_dir):
        return False
    local, sha256 = cached_artifact(cache_dir, build.key) or (None, None)
    if local is None:
        return False
    remote = _class_archive_on_device(build)
    return (
        _run_checked(host, StringCommand("mkdir", "-p", QuoteString(build.paths.run), QuoteString(build.paths.libexec)))
        and host.put_file(local, f"{remote}.part")
        and _run_checked(host, verify_and_rename(f"{remote}.part", remote, sha256))
        and host.put_file(StringIO(BUILD_SCRIPT), build.paths.build_script)
        and _run_checked(host, _run_script(build, "install", LF_ARCHIVE=remote, LF_SHA256=sha256, LF_SOURCE_HOST=source.name))
        and _record_binaries(state, host, build)
    )


@operation()
def install_copy(paths: Paths):
    """
    On a twin, install the binaries its class's builder made (checked by sha256, same stamp).

    + paths: the device layout

    **Example:**

    .. code:: python

        build.install_copy(name="Install class binaries", paths=device_paths(host))
    """
    build, assignment = _mine(host.state)
    if build is None or assignment is None or assignment.action != "copy":
        host.noop("this host does not need binaries from a twin")
        return
    cache_dir = build_cache_dir(host.state)
    artifact = cached_artifact(cache_dir, build.key)
    if artifact is None:
        if not host.state.is_executing:
            # Preview while preparing: the builder's binaries only exist once it has run.
            yield StringCommand("true")
            return
        source = registry(host.state).get(assignment.source or "")
        if source is None:
            yield _fail(
                f"{host.name}: class {build.key}: the binaries from {assignment.source} did not reach "
                "the controller (see its errors above); run the deploy again"
            )
            return
        # The source ran all its operations before this host's turn (pyinfra --serial), so its
        # `build.share` did not know this twin: fetch from it now.
        yield FunctionCommand(_copy_late, (build, source, cache_dir), {})
        return
    local, sha256 = artifact
    remote = _class_archive_on_device(build)
    source = "the controller cache" if assignment.source == CACHE_SOURCE else assignment.source
    yield from upload_verified(local, remote, sha256)
    yield from _upload_script(build)
    yield _run_script(build, "install", LF_ARCHIVE=remote, LF_SHA256=sha256, LF_SOURCE_HOST=source)
    yield FunctionCommand(_record_binaries, (build,), {})
