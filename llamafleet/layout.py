"""Where llamafleet keeps things on a device.

Every task asks `device_paths(host)` instead of building paths itself, so the layout is decided in
one place:

    <base>/src/llama.cpp      -> symlink to the current source tree (swapped atomically); the
                              trees of the current and previous releases stay beside it
    <base>/build              CMake build tree (kept between runs: incremental, resumable)
    <base>/releases/<id>      one directory per installed build: binaries + build-stamp.json;
                              the current one and the previous one are kept (operations.keep)
    <base>/bin                -> symlink to the current release (swapped atomically)
    <base>/logs               build.log and service logs
    <base>/models             model files; .llamafleet-downloads names those the deploy put there
    <base>/run                pid files, lock files, transfer files, the wake-lock record
    <base>/libexec            helper scripts llamafleet uploads (the build script, the self-test)
    <base>/etc                the master's secrets; a worker's rpc-port record (llamafleet.plan.ports);
                              cpu-refused, the ISA features the CPU refused (llamafleet.cpu.refused)
    <base>/.llamafleet        the marker: the deploy made this directory (llamafleet.serving.basedir)

The base is the `llamafleet_dir` data key, else `$HOME/llamafleet` on Termux (the app's home is
the only place an app may write) and `/opt/llamafleet` on Linux.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from pyinfra.api.exceptions import OperationValueError

TERMUX_BASE_NAME = "llamafleet"
# The Termux:Boot script llamafleet writes, relative to the Termux home (Termux:Boot runs the
# files in ~/.termux/boot/ in name order).
TERMUX_BOOT_SCRIPT = ".termux/boot/50-llamafleet"
LINUX_DEFAULT_BASE = "/opt/llamafleet"
# Written into the base directory by the deploy that made it, never into one that was there.
BASE_MARKER = ".llamafleet"
# In <base>/models: the names of the files the deploy downloaded or uploaded there, one a line.
# Only those are ever removed (llamafleet.operations.prune); a file put there by hand is not.
MODEL_RECORD = ".llamafleet-downloads"


class LayoutError(OperationValueError):
    """The data describing where llamafleet lives on a host is unusable (a ValueError that
    pyinfra's CLI reports in one line before anything runs)."""


@dataclass(frozen=True)
class Paths:
    """Absolute paths of llamafleet's directories on one device."""

    base: str
    src: str
    build: str
    releases: str
    bin: str
    logs: str
    models: str
    run: str
    libexec: str

    @property
    def llama_src(self) -> str:
        """The current llama.cpp source tree (a symlink swapped when the source changes)."""
        return f"{self.src}/llama.cpp"

    @property
    def stamp(self) -> str:
        """The build stamp, next to the binaries it describes."""
        return f"{self.bin}/build-stamp.json"

    @property
    def source_archive(self) -> str:
        """Where a llama.cpp source archive is uploaded (removed once it is unpacked)."""
        return f"{self.src}/archive.tar.gz"

    @property
    def model_record(self) -> str:
        """The names of the model files the deploy put in <base>/models (MODEL_RECORD)."""
        return f"{self.models}/{MODEL_RECORD}"

    @property
    def build_log(self) -> str:
        return f"{self.logs}/build.log"

    @property
    def build_script(self) -> str:
        return f"{self.libexec}/llamafleet-build.sh"

    @property
    def wake_lock_record(self) -> str:
        """Where a phone records when llamafleet last took the wake lock (boot id and time):
        Android cannot be asked whether a wake lock is held (llamafleet.serving.wakelock)."""
        return f"{self.run}/wake-lock"

    @property
    def rpc_port_record(self) -> str:
        """Where the deploy records a worker's RPC port, for the next plans to keep it
        (llamafleet.plan.ports; read back by the RpcPortRecord fact)."""
        return f"{self.base}/etc/rpc-port"

    @property
    def speed_record(self) -> str:
        """Where `llamafleet plan --measure` records the device's measured speed, for every later
        plan to split the model by (llamafleet.plan.speed; read back by the SpeedRecord fact)."""
        return f"{self.base}/etc/speed"

    @property
    def cpu_refused(self) -> str:
        """Where the build records the ISA features this device's CPU refused (SIGILL in the
        self-test), for every later plan to leave out (llamafleet.cpu.refused; read back by
        the CpuRefusals fact)."""
        return f"{self.base}/etc/cpu-refused"

    @property
    def selftest_source(self) -> str:
        """The build's self-test program, uploaded next to the build script."""
        return f"{self.libexec}/ggml-selftest.c"

    @property
    def marker(self) -> str:
        """The file saying llamafleet's deploy made the base directory: only a base holding it
        is deleted by `llamafleet remove` (llamafleet.serving.basedir)."""
        return f"{self.base}/{BASE_MARKER}"


def paths_for(base: str) -> Paths:
    """The layout under one base directory (pure; `base` must be absolute)."""
    base = posixpath.normpath(base)
    return Paths(
        base=base,
        src=f"{base}/src",
        build=f"{base}/build",
        releases=f"{base}/releases",
        bin=f"{base}/bin",
        logs=f"{base}/logs",
        models=f"{base}/models",
        run=f"{base}/run",
        libexec=f"{base}/libexec",
    )


def model_file_name(settings: Any) -> str:
    """The model's file name under <base>/models: `model_name`, else the last part of
    `model_file` or `model_url` ("" when none is set), from a host's typed settings.
    `llamafleet check` refuses a name that is not a plain file name."""
    return settings.model_name or posixpath.basename(settings.model_file or settings.model_url or "")


def resolve_base(host_name: str, configured: Any, platform: dict | None) -> str:
    """Decide the base directory from the `llamafleet_dir` data and the DevicePlatform fact.

    `~` and `~/x` are expanded with the device's home. Anything else must be absolute: a relative
    path would depend on the SSH login directory, which differs between Termux and Linux.
    """
    platform = platform or {}
    home = platform.get("home") or ""
    if configured is not None:
        if not isinstance(configured, str) or not configured.strip():
            raise LayoutError(
                f"{host_name}: llamafleet_dir: expected an absolute path, got {configured!r}"
            )
        value = configured.strip()
        if value == "~" or value.startswith("~/"):
            if not home:
                raise LayoutError(
                    f"{host_name}: llamafleet_dir: cannot expand {value!r}, the device's home is unknown"
                )
            value = home + value[1:]
        if not value.startswith("/"):
            raise LayoutError(
                f"{host_name}: llamafleet_dir: expected an absolute path, got {configured!r}"
            )
        return posixpath.normpath(value)

    if platform.get("platform") == "termux":
        if not home:
            raise LayoutError(
                f"{host_name}: llamafleet_dir: not set and the Termux home directory is unknown"
            )
        return posixpath.join(home, TERMUX_BASE_NAME)
    return LINUX_DEFAULT_BASE


def device_platform(host) -> dict:
    """The DevicePlatform fact of `host`, read once per host and deploy (llamafleet.facts.reading:
    a device's platform does not change while a deploy runs)."""
    from llamafleet.facts.device import DevicePlatform  # lazy: facts import pyinfra
    from llamafleet.facts.reading import read_fact

    return read_fact(host, DevicePlatform) or {}


def platform_name(host) -> str:
    """"termux" or "linux" for `host`; anything else is an error naming the host."""
    name = device_platform(host).get("platform")
    if name not in ("termux", "linux"):
        raise LayoutError(
            f"{host.name}: platform: could not tell Termux from Linux on this host (got {name!r})"
        )
    return name


def device_paths(host) -> Paths:
    """Where llamafleet's files live on `host` (reads `llamafleet_dir` and DevicePlatform)."""
    configured = host.data.get("llamafleet_dir")
    platform = None
    if configured is None or str(configured).startswith("~"):
        platform = device_platform(host)
    return paths_for(resolve_base(host.name, configured, platform))
