"""`/proc/cpuinfo` + `uname -m` → a CPU profile (pure functions, no pyinfra).

What the profile decides and why:
- arch: from the Features vocabulary first. A 32-bit process on a 64-bit CPU (32-bit Termux on
  a 64-bit phone) reads AArch32 hwcap names (`half thumb ... neon`) although the header line
  still says "AArch64 Processor" and `uname -m` says armv8l; its compiler builds 32-bit code,
  so the arch is armv7l. `CPU architecture` is never used for bitness (it says 8 in that view).
- cores: per-CPU MIDR (implementer, part) → core name (llamafleet.cpu.midr: the `cores:` rows
  of the CPU table, table.yaml, or of a table with a user's rows merged in).
- features: the Features words every CPU reports (intersection: a thread may run anywhere).
- big_cores / threads: cores that are not little in-order ones; a little-only device (Pi 3)
  uses all its cores; x86 counts physical cores (SMT siblings share the FPU). Never below 1.
- march: the best rung of the flag ladder for these features (compiler-independent).
- mcpu: the core to tune for (the most numerous big core; ties go to the later-listed one,
  which on big.LITTLE kernels is the faster cluster), spelled as GCC's -mcpu spells it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, replace

from . import features as feat
from .ladder import ARM32_ARCHES, ladder_for
from .midr import CoreType, lookup
from .table import CpuTable

UNAME_TO_ARCH = {
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "armv8l": "armv7l",
    "armv7l": "armv7l",
    "armv7": "armv7l",
    "armv6l": "armv6l",
    "x86_64": "x86_64",
    "amd64": "x86_64",
}


@dataclass
class CpuProfile:
    """What llamafleet knows about one device's CPU. `to_dict()` is the fact's shape:

    {"arch": "aarch64", "uname_m": "aarch64", "logical_cpus": 8,
     "cores": {"cortex-a55": 4, "cortex-a76": 4}, "core_equivalents": {},
     "features": ["asimd", "atomics", "dotprod", "fp16", ...], "big_cores": 4, "threads": 4,
     "march": "armv8.2-a+dotprod+fp16", "mcpu": "cortex-a76", "tune_candidates": ["cortex-a76"],
     "cpu_architecture": 8, "model": "Rockchip RK3588S", "usable_cpus": 8,
     "cpu_max_khz": {"0-3": 1800000, "4-7": 2352000}, "allowed_cpus": "0-7"}
    """

    arch: str
    cores: dict[str, int]
    features: list[str]
    big_cores: int
    threads: int
    logical_cpus: int
    march: str
    mcpu: str | None
    uname_m: str | None = None
    core_equivalents: dict[str, str] = field(default_factory=dict)
    tune_candidates: list[str] = field(default_factory=list)
    cpu_architecture: int | None = None
    model: str | None = None
    # CPUs this user's processes may run on (`nproc`: the affinity mask, which an Android
    # cpuset or a container narrows); the plan's thread count never exceeds it. None: not read.
    usable_cpus: int | None = None
    # Each CPU's max clock (cpufreq's cpuinfo_max_freq, kHz) as {CPU list: kHz}, one entry per
    # clock ({"0-3": 1803000, "4-7": 2850000}); {} where cpufreq is unreadable. And the CPUs
    # the reading shell may run on (Cpus_allowed_list: "0-7"), None when unread. The plan pins
    # a worker to the big ones among them (llamafleet.cpu.affinity).
    cpu_max_khz: dict[str, int] = field(default_factory=dict)
    allowed_cpus: str | None = None

    def to_dict(self) -> dict:
        """Plain data (JSON-safe), as returned by the CpuProfile fact."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CpuProfile:
        """Inverse of `to_dict` (ignores keys it does not know, so newer facts still load)."""
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


def _split_cpus(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Key/value pairs outside any CPU block (header, trailer) and one dict per CPU.

    A CPU block starts at `processor : <number>` (the capitalised `Processor : AArch64 ...`
    header is not a CPU) and ends at a blank line. Old ARM kernels print the processor lines
    and then one shared block (Features, CPU part) after a blank line: that block lands in the
    shared dict and fills the CPUs' gaps (see `_cpu_value`)."""
    shared: dict[str, str] = {}
    cpus: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if not line.strip():
            current = None
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "processor" and value.isdigit():
            current = {}
            cpus.append(current)
            continue
        target = current if current is not None else shared
        target.setdefault(key, value)
    return shared, cpus


def _cpu_value(cpu: dict[str, str], shared: dict[str, str], cpus: list[dict[str, str]], key: str) -> str | None:
    """A CPU's value for `key`, else the shared block's, else the last CPU that has one."""
    if key in cpu:
        return cpu[key]
    if key in shared:
        return shared[key]
    for other in reversed(cpus):
        if key in other:
            return other[key]
    return None


def _hex(value: str | None) -> int | None:
    try:
        return int(value, 16) if value else None
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _detect_arch(words: set[str], is_x86: bool, uname_m: str | None) -> str:
    """Decide bitness from the feature vocabulary, falling back to `uname -m`."""
    uname_arch = UNAME_TO_ARCH.get((uname_m or "").strip().lower())
    if is_x86:
        return "x86_64"
    if words & feat.ARM32_VOCABULARY:
        return "armv6l" if uname_arch == "armv6l" else "armv7l"
    if words & feat.ARM64_VOCABULARY:
        return "aarch64"
    return uname_arch or (uname_m or "unknown")


def _x86_physical_cores(shared: dict[str, str], cpus: list[dict[str, str]]) -> int:
    """Distinct (physical id, core id) pairs; every logical CPU when topology is hidden (VMs)."""
    pairs = {(cpu.get("physical id"), cpu.get("core id")) for cpu in cpus}
    if any(core is None for _, core in pairs):
        return len(cpus)
    return len(pairs)


def _tune_candidates(types: list[CoreType]) -> list[str]:
    """Tune names of the core types threads run on, best first: most numerous, then the
    later-listed, then any other type (a compiler may not know the first)."""
    big = [t for t in types if not t.little] or types
    count = Counter(t.name for t in big)
    last_index = {t.name: i for i, t in enumerate(big)}
    by_name = {t.name: t for t in big}
    ranked = sorted(count, key=lambda name: (count[name], last_index[name]), reverse=True)
    tunes: list[str] = []
    for name in ranked:
        tune = by_name[name].tune
        if tune and tune not in tunes:
            tunes.append(tune)
    return tunes


def parse_cpuinfo(text: str, uname_m: str | None = None, table: CpuTable | None = None) -> CpuProfile:
    """Build a CpuProfile from the text of /proc/cpuinfo and, optionally, `uname -m`; cores are
    named by `table` (llamafleet.cpu.table.table_for; default: the built-in table).

    Never raises on odd input: unknown cores become "unknown-<impl>-<part>" (counted as big),
    an unreadable file gives arch from uname and one thread."""
    shared, cpus = _split_cpus(text)
    if not cpus and shared:
        cpus = [dict(shared)]  # a single-CPU dump without a processor line
    is_x86 = any("flags" in cpu or "vendor_id" in cpu for cpu in cpus)
    feature_key = "flags" if is_x86 else "Features"

    per_cpu_words = [set((_cpu_value(cpu, shared, cpus, feature_key) or "").split()) for cpu in cpus]
    common_words = set.intersection(*per_cpu_words) if per_cpu_words else set()
    all_words = set().union(*per_cpu_words) if per_cpu_words else set()
    arch = _detect_arch(all_words, is_x86, uname_m)

    if arch == "aarch64":
        features = feat.normalise_arm64(common_words)
    elif arch in ARM32_ARCHES:
        features = feat.normalise_arm32(common_words)
    elif arch == "x86_64":
        features = feat.normalise_x86(common_words)
    else:
        features = set()

    types: list[CoreType] = []
    if not is_x86:
        for cpu in cpus:
            implementer = _hex(_cpu_value(cpu, shared, cpus, "CPU implementer"))
            part = _hex(_cpu_value(cpu, shared, cpus, "CPU part"))
            types.append(lookup(implementer, part, table))
    cores = dict(Counter(t.name for t in types))
    equivalents = {t.name: t.arm_equivalent for t in types if t.arm_equivalent}

    logical = len(cpus)
    if is_x86:
        big = _x86_physical_cores(shared, cpus)
    else:
        big = sum(1 for t in types if not t.little) or logical
    big = max(1, big)

    cpu_architecture = _int(_cpu_value(cpus[0], shared, cpus, "CPU architecture")) if cpus else None
    tunes = _tune_candidates(types)
    march = ladder_for(arch, features, cpu_architecture)[0].march
    first = cpus[0] if cpus else {}
    model = shared.get("Model") or shared.get("Hardware") or first.get("model name")

    return CpuProfile(
        arch=arch,
        uname_m=uname_m.strip() if uname_m else None,
        logical_cpus=logical,
        cores=cores,
        core_equivalents=equivalents,
        features=sorted(features),
        big_cores=big,
        threads=big,
        march=march,
        mcpu=tunes[0] if tunes else None,
        tune_candidates=tunes,
        cpu_architecture=cpu_architecture,
        model=model,
    )
