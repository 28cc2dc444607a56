"""What the members of a build class know of each other during one deploy, and who builds.

`build.resolve` records each host's `HostBuild` in a registry kept per pyinfra State; the later
build operations read it to plan the class (one member compiles, its twins copy) and to know
whether a host already holds the class's binaries, here or in the controller's build cache.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from pyinfra import host

from llamafleet.facts.build import InstalledBuild
from llamafleet.facts.store import Releases
from llamafleet.layout import Paths
from llamafleet.operations.archive import sha256_file
from llamafleet.operations.buildinputs import BuildInputs, ClassMember, installed_matches, plan_class_builds
from llamafleet.operations.keep import kept_release_for

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
    # A release kept from an earlier deploy with exactly these inputs (a roll back): swapped in
    # by `build.compile` instead of compiling, so the host holds the class's binaries.
    reuse: str | None = None
    # The flags of `inputs`, how to plan them again with more refused features, and the inputs
    # those flags make: the compile steps down the ladder with them after a SIGILL in the
    # self-test (llamafleet.operations.selftest). None in records made by hand (tests).
    flags: object = None
    planner: object = None
    inputs_for: Callable | None = None
    # ISA features this device's CPU refused: the CpuRefusals fact, plus this deploy's (feature ->
    # {"date", "reason", "flags"}), and the ones taken over from a twin, still to be recorded here.
    refused: dict = field(default_factory=dict)
    adopted: list = field(default_factory=list)
    # Threads the self-test runs with: every core, so that a core lacking a feature shows it.
    selftest_threads: int = 1
    # The InstalledBuild fact: a step down that lands on the installed inputs keeps them.
    installed: dict | None = None

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


def class_plan(state):
    """Who compiles and who copies, from the records of `build.resolve`.

    While executing, a host whose record is still the preview has not run yet (pyinfra --serial
    runs every operation of one host before the next host starts): it is left out and plans
    for itself when its turn comes, copying from whoever has the binaries by then.
    """
    builds = registry(state)
    members = [
        ClassMember(build.name, build.key, build.up_to_date or build.has_binaries or bool(build.reuse), build.share)
        for build in sorted(builds.values(), key=lambda build: build.order)
        if build.problem is None and (build.executed or not state.is_executing)
    ]
    cache_dir = build_cache_dir(state)
    cached = {member.key for member in members if member.key and cached_artifact(cache_dir, member.key)}
    return plan_class_builds(members, cached)


# Per State: class key -> the refusals its builder met in this deploy ({"feature", "date",
# "reason", "flags"} each), for the twins of that class (llamafleet.operations.selftest).
_class_refusals: "weakref.WeakKeyDictionary[object, dict[str, list[dict]]]" = weakref.WeakKeyDictionary()


def class_refusals(state) -> dict[str, list[dict]]:
    return _class_refusals.setdefault(state, {})


def adopt_refusals(state, build: HostBuild | None) -> None:
    """A twin whose class's builder died of SIGILL has the same CPU: plan it with the same
    refused features, so it joins the class the builder stepped down to (and copies its
    binaries) instead of the refused one. The features are recorded on it by `build.install_copy`."""
    if build is None or not build.executed or build.planner is None or build.inputs_for is None:
        return
    new = [entry for entry in class_refusals(state).get(build.key or "", []) if entry["feature"] not in build.refused]
    if not new:
        return
    build.refused = {**build.refused, **{entry["feature"]: entry for entry in new}}
    build.flags = build.planner.flags(build.refused)
    build.inputs = build.inputs_for(build.flags)
    # Its installed build may already be the lower rung's: then nothing is copied or restarted.
    build.up_to_date, build.reuse = installed_matches(build.installed, build.inputs), None
    build.reason = f"its twin's CPU refused {', '.join(entry['feature'] for entry in new)} (SIGILL)"
    build.adopted = build.adopted + new


def current_host_assignment(state) -> tuple[HostBuild | None, object]:
    """The current pyinfra host's record and its part in the class plan (None when unplanned)."""
    build = registry(state).get(host.name)
    adopt_refusals(state, build)
    plan = class_plan(state)
    return build, plan.get(host.name) if build else None


def record_binaries(state, host, build: HostBuild) -> bool:
    """Run after a compile or an install succeeded: later twins may copy from this host."""
    build.has_binaries = True
    return True


def kept_release(host, paths: Paths, inputs: BuildInputs) -> str | None:
    """The name of a release kept from an earlier deploy (not the current one) that was built
    from exactly `inputs` and is intact: setting the ref or archive back finds it, and the
    build swaps it in instead of compiling (llamafleet.operations.keep keeps one previous)."""
    found = host.get_fact(Releases, releases_dir=paths.releases, bin_dir=paths.bin, run_dir=paths.run)
    wanted = {"class_key": inputs.key(), "inputs": inputs.to_dict()}
    name = kept_release_for(found, lambda stamp: all(stamp.get(key) == value for key, value in wanted.items()))
    if name is None:
        return None
    # Its stamp is not proof: the binaries must still match their checksums.
    checked = host.get_fact(InstalledBuild, bin_dir=f"{paths.releases}/{name}")
    return name if installed_matches(checked, inputs) else None
