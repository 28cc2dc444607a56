"""What a llama.cpp build depends on, and the stamp that records it (pure Python, no pyinfra).

A build is described by its inputs: source identity, platform, architecture, compiler and
version, CMake targets and CMake arguments. Devices with equal inputs produce the same binaries,
so they form a *class* named by a hash of the inputs (the class key); the build stamp on a device
stores the inputs it was built from, and a build runs only when they differ from what is wanted.
Things that do not change the binaries (parallel jobs, ccache, install paths) stay out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

STAMP_SCHEMA = 1

# Options every llamafleet build uses (see shared reference llama-cpp-today.md):
COMMON_CMAKE_ARGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_RPC=ON",
    # CPU features come from the flag table for the device, never from the build machine.
    "-DGGML_NATIVE=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    # No HTTPS model downloads: models are copied by llamafleet; saves an OpenSSL dependency.
    "-DLLAMA_OPENSSL=OFF",
    # Static binaries carry no libllama/libggml to copy along, so a class leader's binaries run
    # on its twins as they are, from any directory.
    "-DBUILD_SHARED_LIBS=OFF",
    # The unified `llama` app links every tool; neither role needs it.
    "-DLLAMA_BUILD_APP=OFF",
)

ROLE_CMAKE_ARGS = {
    # Skipping the server (and its UI, CLI) keeps a worker build under a minute.
    "worker": ("-DLLAMA_BUILD_SERVER=OFF",),
    "master": ("-DLLAMA_BUILD_SERVER=ON",),
}

ROLES = tuple(ROLE_CMAKE_ARGS)

DEFAULT_RPC_TARGET = "ggml-rpc-server"
DEFAULT_SERVER_TARGET = "llama-server"

# Installed names in <base>/bin. Services need a path that is known before anything is built,
# so the RPC server keeps today's name even when an older ref calls its target `rpc-server`.
RPC_BINARY = DEFAULT_RPC_TARGET
SERVER_BINARY = DEFAULT_SERVER_TARGET
_INSTALL_NAMES = {"rpc-server": RPC_BINARY}


def installed_name(target: str) -> str:
    """The file name a CMake target is installed under in <base>/bin."""
    return _INSTALL_NAMES.get(target, target)

# A phone compiling llama.cpp needs about 1.5 GiB per compiler process (the guides report OOM
# kills at -j8 on 8 GB phones).
MB_PER_JOB = 1536


def role_targets(role: str, source: dict | None) -> tuple[str, ...]:
    """The CMake targets a role needs, named as the source tree names them.

    `source` is the LlamaSource fact (None before the tree exists: today's names are assumed).
    """
    source = source or {}
    if role == "master":
        return (source.get("server_target") or DEFAULT_SERVER_TARGET,)
    return (source.get("rpc_target") or DEFAULT_RPC_TARGET,)


# On Termux, at most this many compile jobs: Android 12+'s phantom process killer SIGKILLs an
# app's processes beyond 32 (termux-app #2366). A job is up to three processes (sh -c, ccache,
# clang); with ninja, cmake, the build script, the SSH session and the running services, four
# jobs stay near 20.
TERMUX_MAX_JOBS = 4


def choose_jobs(
    logical_cpus: int | None, available_mb: int | None, override: int | None = None, platform: str = "linux"
) -> int:
    """Parallel compile jobs: the override, else min(cores, MemAvailable / 1.5 GiB), at least
    1; on Termux never more than TERMUX_MAX_JOBS, the override included."""
    if override is not None:
        jobs = max(1, int(override))
    else:
        jobs = max(1, int(logical_cpus or 1))
        if available_mb:
            jobs = max(1, min(jobs, int(available_mb) // MB_PER_JOB))
    return min(jobs, TERMUX_MAX_JOBS) if platform == "termux" else jobs


def version_cmake_args(source: str | None) -> tuple[str, ...]:
    """What the binaries report as their build (`/props` build_info, `--version`).

    llama.cpp asks git for its commit at configure time (cmake/build-info.cmake); an unpacked
    archive has no .git and a shallow clone no count, so every binary said "b0-unknown". The
    source identity names the tree exactly: a git commit, or the archive's sha256.
    """
    kind, _, value = (source or "").partition(":")
    if kind == "git" and value:
        return ("-DLLAMA_BUILD_COMMIT=" + value[:12],)
    if kind == "archive" and value:
        return ("-DLLAMA_BUILD_COMMIT=archive-" + value[:12],)
    return ()


def cmake_args_for(role: str, flag_args: list[str] | tuple[str, ...], source: str | None = None) -> tuple[str, ...]:
    """All -D arguments in order: llamafleet's, the source's version, the role's, then the
    flag table's.

    The flag table's arguments end with the user's `llama_cmake_args`, so those come last: in
    CMake the last definition wins.
    """
    return tuple(COMMON_CMAKE_ARGS) + version_cmake_args(source) + ROLE_CMAKE_ARGS[role] + tuple(flag_args)


@dataclass(frozen=True)
class BuildInputs:
    """Everything that decides the binaries of one build."""

    source: str
    platform: str
    arch: str
    compiler: str
    targets: tuple[str, ...]
    cmake_args: tuple[str, ...]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["targets"] = list(self.targets)
        data["cmake_args"] = list(self.cmake_args)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "BuildInputs":
        return cls(
            source=data["source"],
            platform=data["platform"],
            arch=data["arch"],
            compiler=data["compiler"],
            targets=tuple(data["targets"]),
            cmake_args=tuple(data["cmake_args"]),
        )

    def key(self) -> str:
        """The class key: equal inputs, equal key; 16 hex digits are plenty for a fleet."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def source_identity(identity: dict | None) -> str | None:
    """One string for a recorded source identity: `archive:<sha256>` or `git:<commit>`."""
    if not identity:
        return None
    if identity.get("kind") == "archive" and identity.get("sha256"):
        return f"archive:{identity['sha256']}"
    if identity.get("kind") == "git" and identity.get("commit"):
        return f"git:{identity['commit']}"
    return None


def missing_input(host_name: str, compiler_name: str, compiler: dict | None, source: str | None, tree: str) -> str | None:
    """What the build lacks on the device (a compiler, its C++ half, the source), naming host
    and data key, or None."""
    if not compiler:
        return (f"{host_name}: llama_compiler: no C compiler {compiler_name!r} on the device "
                "(is it in termux_packages / apt_packages?)")
    if not compiler.get("cxx"):
        return f"{host_name}: llama_compiler: no C++ compiler next to {compiler['path']}"
    if source is None:
        return (f"{host_name}: llama_cpp_archive/llama_cpp_ref: no llama.cpp source recorded at "
                f"{tree} (did the source task fail?)")
    return None


def compiler_identity(compiler: dict | None) -> str | None:
    """`<family> <version>` from the CompilerInfo fact (None when there is no compiler)."""
    if not compiler or not compiler.get("family"):
        return None
    return f"{compiler['family']} {compiler.get('version') or 'unknown'}"


def make_stamp(inputs: BuildInputs, built_on: str) -> dict:
    """The build stamp written next to the binaries (the same on every member of the class)."""
    return {
        "schema": STAMP_SCHEMA,
        "class_key": inputs.key(),
        "inputs": inputs.to_dict(),
        "built_on": built_on,
    }


def stamp_json(stamp: dict) -> str:
    return json.dumps(stamp, indent=2, sort_keys=True) + "\n"


def installed_matches(installed: dict | None, inputs: BuildInputs) -> bool:
    """True when the InstalledBuild fact shows intact binaries built from exactly `inputs`."""
    if not installed or not installed.get("intact"):
        return False
    stamp = installed.get("stamp") or {}
    if stamp.get("class_key") != inputs.key() or stamp.get("inputs") != inputs.to_dict():
        return False
    present = set(installed.get("files") or [])
    return all(installed_name(target) in present for target in inputs.targets)


def describe_difference(installed: dict | None, inputs: BuildInputs) -> str:
    """Why a build is needed, in a few words for the deploy output."""
    if not installed:
        return "no build installed"
    stamp = installed.get("stamp")
    if not stamp:
        return "the build stamp is unreadable"
    if not installed.get("intact"):
        return "installed binaries do not match their checksums"
    old = stamp.get("inputs") or {}
    changed = [name for name, value in inputs.to_dict().items() if old.get(name) != value]
    if changed:
        return "changed: " + ", ".join(changed)
    return "installed binaries are incomplete"


# --- who builds, who copies ------------------------------------------------------------------

# `Assignment.source` when the binaries come from the controller's build cache.
CACHE_SOURCE = "@cache"


@dataclass(frozen=True)
class ClassMember:
    """A host as the class plan sees it (in inventory order)."""

    name: str
    key: str | None
    up_to_date: bool
    share: bool = True


@dataclass(frozen=True)
class Assignment:
    """What one host does about its binaries.

    action: "none" (its build is current), "compile", or "copy" (from `source`: a host name or
    CACHE_SOURCE). share_to: the twins this host's binaries are for (packed and fetched by the
    controller after the compile).
    """

    action: str
    source: str | None = None
    share_to: tuple[str, ...] = ()


def plan_class_builds(members: list[ClassMember], cached_keys: set[str] | frozenset = frozenset()) -> dict[str, Assignment]:
    """Decide, per class, who compiles and who copies.

    - A host whose build is current does nothing.
    - Hosts that opted out of sharing (`llama_build_once_per_class = False`) or whose key is not
      known yet compile for themselves.
    - Otherwise, per class key, the hosts that need binaries copy them from the controller cache
      when it holds the class, else from the first member (inventory order) whose build is
      current; when no member has them, the first member that needs them compiles, and the rest
      copy from it. So a cold class of N devices compiles exactly once.
    """
    plan: dict[str, Assignment] = {}
    classes: dict[str, list[ClassMember]] = {}
    for member in members:
        if member.up_to_date:
            plan[member.name] = Assignment("none")
        elif not member.share or member.key is None:
            plan[member.name] = Assignment("compile")
        if member.share and member.key is not None:
            classes.setdefault(member.key, []).append(member)

    for key, class_members in classes.items():
        needing = [member.name for member in class_members if not member.up_to_date]
        if not needing:
            continue
        if key in cached_keys:
            for name in needing:
                plan[name] = Assignment("copy", CACHE_SOURCE)
            continue
        donors = [member.name for member in class_members if member.up_to_date]
        if donors:
            source, receivers = donors[0], needing
            plan[source] = Assignment("none", share_to=tuple(receivers))
        else:
            source, receivers = needing[0], needing[1:]
            plan[source] = Assignment("compile", share_to=tuple(receivers))
        for name in receivers:
            plan[name] = Assignment("copy", source)
    return plan
