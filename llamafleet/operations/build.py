"""Build llama.cpp once per device class and copy the binaries to the class's other members.

Four operations, run in this order by tasks/build.py; pyinfra runs each one on every host before
the next one starts, which is what lets the class members coordinate:

1. `build.resolve`  every host works out its build inputs (flags, compiler, targets, source) and
                    whether its installed stamp matches; it records them for the others.
2. `build.compile`  the one member per class chosen to build (first in inventory order that needs
                    binaries, unless a member already has them) compiles; the others wait. A
                    build is installed only once its self-test ran on the device; one that dies
                    of SIGILL is recorded and rebuilt one rung down (operations/selftest.py).
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

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, StringCommand, operation
from pyinfra.api.exceptions import OperationValueError

from llamafleet.cpu.descent import FlagPlanner
from llamafleet.cpu.flags import FlagsError
from llamafleet.cpu.table import table_for
from llamafleet.facts import CompilerInfo, CpuProfile, CpuRefusals, MemInfo, compiler_accepts
from llamafleet.facts.build import InstalledBuild, LlamaSource
from llamafleet.facts.reading import read_fact
from llamafleet.layout import Paths, device_platform
from llamafleet.operations.buildclass import (
    HostBuild, binaries_changed, build_cache_dir, cached_artifact, current_host_assignment, kept_release,
    record_binaries, registry,
)
from llamafleet.operations.buildinputs import (
    CACHE_SOURCE, BuildInputs, choose_jobs, cmake_args_for, compiler_identity, describe_difference, installed_matches,
    missing_input, role_targets, source_identity,
)
from llamafleet.operations.buildscript import BUILD_SCRIPT, BUILD_SCRIPT_SHA256, activate_kept, fail, run_script, upload_script
from llamafleet.operations.buildshare import class_archive_on_device, copy_late, pack_and_fetch
from llamafleet.operations.selftest import adopted_record, compile_proven, selftest_threads, upload_selftest
from llamafleet.operations.transfer import upload_verified

# The operations, and the names other modules and tests reach through `build` (helpers live in
# buildclass, buildscript and buildshare).
__all__ = [
    "resolve", "compile", "share", "install_copy", "registry", "binaries_changed", "build_cache_dir",
    "cached_artifact", "HostBuild", "record_binaries", "copy_late", "BUILD_SCRIPT", "BUILD_SCRIPT_SHA256",
]


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
    refused = host.get_fact(CpuRefusals, path=paths.cpu_refused) or {}

    source = source_identity((tree or {}).get("identity"))
    problem = missing_input(host.name, compiler_name, compiler_info, source, paths.llama_src)

    # Probing the compiler costs one SSH round trip per rung: only when the result counts. The
    # host itself, not pyinfra's context proxy: a step down after a SIGILL probes again later.
    device = host._get_module() if hasattr(host, "_get_module") else host
    accepts = compiler_accepts(device, compiler_info["path"]) if executing and compiler_info else None
    planner = FlagPlanner(profile, compiler_info, cpu_arch, cpu_mcpu, list(cmake_args or []), platform_name,
                          accepts, table_for(cpu_table))
    try:
        flags = planner.flags(refused)
    except FlagsError as error:
        # tasks/build.py checks the overrides while preparing; this guards direct callers.
        raise OperationValueError(f"{host.name}: {error}") from error

    source = source or expected_source or "unknown"

    def inputs_for(chosen) -> BuildInputs:
        return BuildInputs(
            source=source,
            platform=platform_name,
            arch=profile.get("arch") or "unknown",
            compiler=compiler_identity(compiler_info) or f"{compiler_name} (not installed yet)",
            targets=role_targets(role, tree),
            cmake_args=cmake_args_for(role, chosen.cmake_args, source),
        )

    inputs = inputs_for(flags)
    up_to_date = installed_matches(installed, inputs)
    reuse = None if up_to_date else kept_release(host, paths, inputs)
    reason = "stamp matches" if up_to_date else describe_difference(installed, inputs)
    builds[host.name] = HostBuild(
        name=host.name,
        order=[h.name for h in state.inventory].index(host.name),
        paths=paths,
        inputs=inputs,
        up_to_date=up_to_date,
        reason=f"{reason}; releases/{reuse} has these inputs" if reuse else reason,
        share=once_per_class,
        jobs=choose_jobs(profile.get("logical_cpus"), memory.get("available_mb") or memory.get("total_mb"), jobs, platform_name),
        cc=(compiler_info or {}).get("path"),
        cxx=(compiler_info or {}).get("cxx"),
        # Before execution a missing compiler or tree is expected: earlier tasks provide them.
        problem=problem if executing else None,
        executed=executing,
        reuse=reuse,
        installed=installed,
        flags=flags,
        planner=planner,
        inputs_for=inputs_for,
        refused=dict(refused),
        # The CPUs its processes may use (nproc): more threads cannot reach another core.
        selftest_threads=selftest_threads(profile.get("usable_cpus") or profile.get("logical_cpus")),
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
        yield fail(problem)


# --- 2. compile ------------------------------------------------------------------------------


@operation()
def compile(paths: Paths):
    """
    Compile llama.cpp on this host when it is the one chosen to build its class.

    + paths: the device layout (must match the one given to `build.resolve`)

    The build log is `<base>/logs/build.log` (named in the output before the compile starts);
    a failed build prints its last 40 lines. The new build is installed only when its self-test
    passes on this CPU; on SIGILL the features are recorded and it is rebuilt one rung down. Builds in a staging directory and swaps `<base>/bin`
    atomically, so a killed build leaves the previous binaries and stamp in place and the next
    run finishes it. When `build.resolve` found a kept release with the wanted inputs (a roll
    back), that release is swapped in instead and nothing is compiled.

    **Example:**

    .. code:: python

        build.compile(name="Compile llama.cpp", paths=device_paths(host))
    """
    build, assignment = current_host_assignment(host.state)
    if build is None or assignment is None:
        host.noop("no build planned (see build.resolve)")
        return
    key = build.key
    if build.reuse:
        yield from activate_kept(build)
        return
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
    yield from upload_script(build)
    yield from upload_selftest(build)
    yield FunctionCommand(compile_proven, (build,), {})


# --- 3. share --------------------------------------------------------------------------------


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
    build, assignment = current_host_assignment(host.state)
    if build is None or assignment is None or not assignment.share_to:
        host.noop("no twin needs binaries from this host")
        return
    yield FunctionCommand(pack_and_fetch, (build, build_cache_dir(host.state)), {})


# --- 4. install_copy -------------------------------------------------------------------------


@operation()
def install_copy(paths: Paths):
    """
    On a twin, install the binaries its class's builder made (checked by sha256, same stamp).

    + paths: the device layout

    **Example:**

    .. code:: python

        build.install_copy(name="Install class binaries", paths=device_paths(host))
    """
    build, assignment = current_host_assignment(host.state)
    # A twin whose builder's CPU refused features: the same CPU here, recorded for later plans.
    recorded = list(adopted_record(build)) if build is not None else []
    yield from recorded
    if build is None or assignment is None or assignment.action != "copy":
        if not recorded:
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
            yield fail(
                f"{host.name}: class {build.key}: the binaries from {assignment.source} did not reach "
                "the controller (see its errors above); run the deploy again"
            )
            return
        # The source ran all its operations before this host's turn (pyinfra --serial), so its
        # `build.share` did not know this twin: fetch from it now.
        yield FunctionCommand(copy_late, (build, source, cache_dir), {})
        return
    local, sha256 = artifact
    remote = class_archive_on_device(build)
    source = "the controller cache" if assignment.source == CACHE_SOURCE else assignment.source
    yield from upload_verified(local, remote, sha256)
    yield from upload_script(build)
    yield run_script(build, "install", LF_ARCHIVE=remote, LF_SHA256=sha256, LF_SOURCE_HOST=source)
    yield FunctionCommand(record_binaries, (build,), {})
