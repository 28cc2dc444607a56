"""One step down the flag ladder after a build died of SIGILL in its self-test (pure Python).

The build keeps a `FlagPlanner` per host: the same arguments `build_flags` got, so that after a
SIGILL it can ask for the flags without the features the failed rung added over the next one
down, exactly as the next deploy will plan them from the refusals recorded on the device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .flags import Accepts, BuildFlags, build_flags
from .ladder import ladder_for
from .profile import CpuProfile
from .refused import allowed_steps, as_refusals, next_drop
from .table import CpuTable


@dataclass(frozen=True)
class Descent:
    """What a SIGILL at `failed` leads to: the features given up and the rung to try next."""

    failed: BuildFlags
    dropped: tuple[str, ...]
    next: BuildFlags

    def message(self, host: str) -> str:
        """The warning the deploy prints (host, both rungs, what is dropped and why)."""
        return (
            f"{host}: the self-test of {' '.join(self.failed.compile_flags) or '(no ISA flags)'} died of SIGILL "
            f"(illegal instruction): this CPU refuses {', '.join(self.dropped)}; building one step down: "
            f"{' '.join(self.next.compile_flags) or '(no ISA flags)'}"
        )


@dataclass
class FlagPlanner:
    """`build_flags` for one device, to be asked again with more refused features."""

    profile: dict
    compiler: dict | None = None
    llama_cpu_arch: str | None = None
    llama_cpu_mcpu: str | None = None
    llama_cmake_args: Sequence[str] = field(default_factory=list)
    platform: str | None = None
    accepts: Accepts | None = None
    table: CpuTable | None = None

    def flags(self, refused: Mapping | None = None) -> BuildFlags:
        return build_flags(
            self.profile,
            self.compiler,
            llama_cpu_arch=self.llama_cpu_arch,
            llama_cpu_mcpu=self.llama_cpu_mcpu,
            llama_cmake_args=list(self.llama_cmake_args),
            platform=self.platform,
            accepts=self.accepts,
            table=self.table,
            refused=refused,
        )

    def step_down(self, failed: BuildFlags, refused: Mapping | None) -> Descent | None:
        """The next rung after `failed` died of SIGILL with `refused` already known, or None
        when there is none (the plainest rung, or `llama_cpu_arch = native`)."""
        if failed.march == "native":
            return None
        profile = CpuProfile.from_dict(self.profile) if isinstance(self.profile, dict) else self.profile
        known = as_refusals(refused)
        steps = allowed_steps(ladder_for(profile.arch, set(profile.features), profile.cpu_architecture,
                                         self.platform), known)
        dropped = next_drop(frozenset(failed.features), steps, failed.override, profile.arch)
        if not dropped:
            return None
        more = {**known, **{feature: "" for feature in dropped}}
        following = self.flags(more)
        if following.compile_flags == failed.compile_flags:
            return None  # the plainest rung is kept whatever it uses: nothing lower to try
        return Descent(failed, tuple(sorted(dropped)), following)


__all__ = ["Descent", "FlagPlanner"]
