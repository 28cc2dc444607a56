"""The flag table: a CPU profile (+ compiler, + overrides) → CMake arguments for llama.cpp.

Keyed by the feature set, never by marketing names (see arm64.py, arm32.py, x86.py for the
ladders). Always `-DGGML_NATIVE=OFF`: `-mcpu=native` picks the wrong core or is silently dropped
on big.LITTLE phones (compiler-mcpu.md), and builds are copied between identical devices.

Why `-mtune=<core>` and not `-mcpu=<core>`: ggml turns GGML_CPU_ARM_ARCH into `-march=`, and
`-mcpu` next to it fights it. GCC warns "switch -mcpu=cortex-x2 conflicts with -march=..." and
clang passes `-target-cpu cortex-x2`, whose SVE2 the back end then uses despite the `-march`
without SVE (checked with clang 14: SVE instructions in a gather loop). On an ARMv9 phone with
SVE off that is SIGILL. `-mtune` only schedules for the core; the ISA stays what Features says.

The fallback ladder: `accepts(flags) -> bool` is asked about each rung, best first; the first
accepted rung wins and `BuildFlags.fallback` says what was refused. `accepts` is a plain
callable so tests pass a lambda and a deploy passes a wrapper around the CompilerAccepts fact.

Features the device's CPU refused (SIGILL in the build's self-test, llamafleet.cpu.refused) take
rungs out of the ladder and are stripped from an override: a compiler that accepts a flag does
not prove the CPU runs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from . import x86
from .compilers import tune_choices
from .ladder import ladder_for
from .profile import CpuProfile
from .refused import allowed_steps, as_refusals, override_features, strip_override
from .step import Step
from .table import CpuTable

Accepts = Callable[[list[str]], bool]

# Public: `llamafleet check` refuses the same values offline (llamafleet.validate.patterns).
ARM_MARCH = re.compile(r"armv(\d+)(\.\d+)?(-a)?(\+[a-z0-9-]+)*")
TUNE_NAME = re.compile(r"[a-z0-9][a-z0-9.+-]*")


class FlagsError(ValueError):
    """Bad override in group data. `key` names the data key; callers add the host name."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass
class BuildFlags:
    """What to pass to CMake for one device.

    cmake_args: one argv element each (quote each, never join them into a shell string:
                `-DCMAKE_C_FLAGS=-mfpu=neon-vfpv4 -mfloat-abi=hard` is a single argument).
    march:      the architecture used (GGML_CPU_ARM_ARCH, the x86-64 level, or "native").
    mcpu:       the core tuned for with -mtune, or None.
    fallback:   None when the first choice was used, else which rung was refused and why.
    c_flags:    what went into CMAKE_C_FLAGS / CMAKE_CXX_FLAGS.
    compile_flags: everything ggml's CPU code will be compiled with because of these args
                (-march/-m<isa> flags plus c_flags); what a probe should test.
    warnings:   things the user should know (an override the compiler refuses, ...).
    features:   the ISA features the chosen rung relies on (Step.features; for an override, what
                its value names), in the names the device's refusals use.
    override:   True when the rung is the user's `llama_cpu_arch`, not one of the ladder's.
    """

    cmake_args: list[str]
    march: str | None
    mcpu: str | None
    fallback: str | None = None
    c_flags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    compile_flags: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    override: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _check_overrides(arch: str, cpu_arch: str | None, mcpu: str | None, extra: object) -> None:
    """Reject malformed overrides before anything is built (FlagsError names the key)."""
    if cpu_arch is not None:
        if not isinstance(cpu_arch, str) or not cpu_arch:
            raise FlagsError("llama_cpu_arch", f"expected a string such as 'armv8.2-a+dotprod', got {cpu_arch!r}")
        if cpu_arch == "native":
            pass
        elif arch == "x86_64":
            if cpu_arch not in x86.LEVELS:
                raise FlagsError(
                    "llama_cpu_arch",
                    f"{cpu_arch!r} is not an x86-64 level; use one of {', '.join(x86.LEVELS)} or 'native'",
                )
        else:
            match = ARM_MARCH.fullmatch(cpu_arch)
            if not match or (arch == "aarch64" and int(match.group(1)) < 8):
                raise FlagsError(
                    "llama_cpu_arch",
                    f"{cpu_arch!r} is not an ARM -march value for this {arch} device "
                    "(e.g. 'armv8.2-a+dotprod+fp16', or 'native')",
                )
    if mcpu is not None and (not isinstance(mcpu, str) or (mcpu and not TUNE_NAME.fullmatch(mcpu))):
        raise FlagsError("llama_cpu_mcpu", f"expected a core name such as 'cortex-a76' or '' for none, got {mcpu!r}")
    if extra is not None:
        if isinstance(extra, str) or not isinstance(extra, Sequence):
            raise FlagsError("llama_cmake_args", f"expected a list of strings, got {type(extra).__name__} {extra!r}")
        for item in extra:
            if not isinstance(item, str) or not item.startswith("-"):
                raise FlagsError("llama_cmake_args", f"each item must be a string starting with '-', got {item!r}")


def _override_step(arch: str, value: str, detected: Step) -> Step:
    """The rung the user asked for: ARM keeps the detected -mfpu (32-bit) and swaps -march;
    x86 uses the options of the named level."""
    if arch == "x86_64":
        return x86.step_for(x86.options_for_level(value), value)
    compile_flags = (f"-march={value}", *detected.c_flags)
    return Step(value, compile_flags, (f"-DGGML_CPU_ARM_ARCH={value}",), detected.c_flags)


def _dropped(best: Step, chosen: Step) -> str:
    """Features given up between two rungs, for the fallback message."""
    lost = sorted(best.features - chosen.features)
    return ", ".join(lost) if lost else "only the spelling changed"


def _climb_down(steps: list[Step], accepts: Accepts) -> tuple[Step, str | None, list[str]]:
    """First rung `accepts` takes; the fallback text; warnings if it takes none."""
    refused: list[str] = []
    for index, step in enumerate(steps):
        if accepts(list(step.compile_flags)):
            if not refused:
                return step, None, []
            message = (
                f"rung {index + 1} of {len(steps)}: the compiler refused {'; '.join(refused)}; "
                f"using {step.label()} (dropped: {_dropped(steps[0], step)})"
            )
            return step, message, []
        refused.append(step.label())
    last = steps[-1]
    warning = (
        f"the compiler refused every rung down to {last.label()}; is it a working compiler for this "
        "CPU? Kept the lowest rung."
    )
    return last, warning, [warning]


def _choose_tune(
    profile: CpuProfile,
    compiler: dict | None,
    mcpu_override: str | None,
    base_flags: list[str],
    accepts: Accepts | None,
    table: CpuTable | None,
) -> tuple[str | None, str | None, list[str]]:
    """The -mtune core, a note when a known name was refused, and warnings."""
    if mcpu_override == "":
        return None, None, []
    if mcpu_override:
        if accepts is not None and not accepts(base_flags + [f"-mtune={mcpu_override}"]):
            return mcpu_override, None, [f"the compiler refuses -mtune={mcpu_override} (llama_cpu_mcpu); kept as asked"]
        return mcpu_override, None, []
    refused = []
    for name in tune_choices(profile.tune_candidates, compiler, table):
        if accepts is None or accepts(base_flags + [f"-mtune={name}"]):
            note = f"the compiler refused -mtune={', -mtune='.join(refused)}; tuning for {name}" if refused else None
            return name, note, []
        refused.append(name)
    note = f"the compiler refused -mtune={', -mtune='.join(refused)}; no tuning" if refused else None
    return None, note, []


def build_flags(
    profile: CpuProfile | dict,
    compiler: dict | None = None,
    *,
    llama_cpu_arch: str | None = None,
    llama_cpu_mcpu: str | None = None,
    llama_cmake_args: Sequence[str] | None = None,
    platform: str | None = None,
    accepts: Accepts | None = None,
    table: CpuTable | None = None,
    refused: Mapping[str, object] | Iterable[str] | None = None,
) -> BuildFlags:
    """CMake arguments for llama.cpp on this CPU.

    + profile: a CpuProfile or its `to_dict()` (the CpuProfile fact).
    + compiler: {"family": "gcc"|"clang", "version": "12.2.0"} (CompilerInfo fact) or None; it
      decides which -mtune names are safe. None: no tuning.
    + llama_cpu_arch / llama_cpu_mcpu / llama_cmake_args: the group data overrides; they win
      over detection ("native" → GGML_NATIVE=ON; llama_cpu_mcpu "" → no tuning; extra CMake
      args come last, so CMake lets them win too).
    + platform: "termux" or "linux"; on 32-bit ARM it fixes the float ABI (else left to the
      toolchain default).
    + accepts: `accepts(compiler_flags) -> bool`; when given, each rung is probed and the
      first accepted one is used.
    + table: the CPU table whose `tune:` rows say which -mtune names the compiler knows
      (llamafleet.cpu.table.table_for; default: the built-in table). Give the same table the
      profile was parsed with.
    + refused: features this device's CPU refused (the CpuRefusals fact: feature -> {"date": ..}
      or a list of names): rungs using one are skipped, an override loses them (with a warning).

    Raises FlagsError (a ValueError naming the data key) on malformed overrides.
    """
    if isinstance(profile, dict):
        profile = CpuProfile.from_dict(profile)
    _check_overrides(profile.arch, llama_cpu_arch, llama_cpu_mcpu, llama_cmake_args)
    extra = list(llama_cmake_args or [])

    if llama_cpu_arch == "native":
        # The user asked for the compiler's own detection; we add nothing that could fight it.
        c_flags = [f"-mtune={llama_cpu_mcpu}"] if llama_cpu_mcpu else []
        return BuildFlags(
            cmake_args=["-DGGML_NATIVE=ON", *_c_flag_args(c_flags), *extra],
            march="native",
            mcpu=llama_cpu_mcpu or None,
            c_flags=c_flags,
            compile_flags=["-march=native" if profile.arch == "x86_64" else "-mcpu=native", *c_flags],
            override=True,
        )

    refusals = as_refusals(refused)
    steps = ladder_for(profile.arch, set(profile.features), profile.cpu_architecture, platform)
    notes: list[str] = []
    warnings: list[str] = []
    allowed = allowed_steps(steps, refusals)
    if len(allowed) < len(steps) and not llama_cpu_arch:
        gone = sorted(set().union(*(step.features for step in steps[0:1])) & set(refusals))
        notes.append(f"this CPU refused {_when(gone, refusals)}; ladder starts at {allowed[0].label()}")
    steps = allowed
    if llama_cpu_arch:
        asked = llama_cpu_arch
        llama_cpu_arch, lost = strip_override(profile.arch, llama_cpu_arch, refusals)
        spelled = "" if profile.arch == "x86_64" else "+"
        for feature in lost:
            warnings.append(
                f"llama_cpu_arch asks for {spelled}{feature} ({asked}), which this device refused "
                f"({_why(feature, refusals)}): built without it, as {llama_cpu_arch}"
            )
        step = _override_step(profile.arch, llama_cpu_arch, steps[0])
        if accepts is not None and not accepts(list(step.compile_flags)):
            warnings.append(f"the compiler refuses {step.label()} (llama_cpu_arch); kept as asked")
    elif accepts is not None:
        step, note, more = _climb_down(steps, accepts)
        if note:
            notes.append(note)
        warnings += more
    else:
        step = steps[0]

    tune, tune_note, tune_warnings = _choose_tune(
        profile, compiler, llama_cpu_mcpu, list(step.compile_flags), accepts, table
    )
    if tune_note:
        notes.append(tune_note)
    warnings += tune_warnings

    c_flags = list(step.c_flags) + ([f"-mtune={tune}"] if tune else [])
    cmake_args = ["-DGGML_NATIVE=OFF", *step.cmake_args, *_c_flag_args(c_flags), *extra]
    return BuildFlags(
        cmake_args=cmake_args,
        march=step.march,
        mcpu=tune,
        fallback="; ".join(notes) or None,
        c_flags=c_flags,
        warnings=warnings,
        compile_flags=[*step.compile_flags, *(c_flags[len(step.c_flags) :])],
        features=sorted(override_features(profile.arch, llama_cpu_arch) if llama_cpu_arch else step.features),
        override=bool(llama_cpu_arch),
    )


def _why(feature: str, refusals: Mapping[str, str]) -> str:
    """`SIGILL in the self-test on 2026-12-03`, for messages."""
    date = refusals.get(feature)
    return f"SIGILL in the self-test on {date}" if date else "SIGILL in the self-test"


def _when(features: list[str], refusals: Mapping[str, str]) -> str:
    """`i8mm (SIGILL in the self-test on 2026-12-03)`, for messages."""
    return ", ".join(f"{feature} ({_why(feature, refusals)})" for feature in features)


def _c_flag_args(c_flags: list[str]) -> list[str]:
    """CMAKE_C_FLAGS/CMAKE_CXX_FLAGS arguments carrying `c_flags` (none when empty)."""
    if not c_flags:
        return []
    joined = " ".join(c_flags)
    return [f"-DCMAKE_C_FLAGS={joined}", f"-DCMAKE_CXX_FLAGS={joined}"]


__all__ = ["Accepts", "BuildFlags", "FlagsError", "build_flags"]
