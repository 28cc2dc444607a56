"""Moving a class's binaries from the member that holds them to its twins, via the controller.

The holder packs its release, the controller downloads the archive into its build cache and
checks the sha256 (`pack_and_fetch`, run by `build.share`); `copy_late` does the same and then
the install, for a twin whose source ran all its operations before it (pyinfra --serial).
"""

from __future__ import annotations

import os
import re
from io import StringIO

from pyinfra import logger
from pyinfra.api import QuoteString, StringCommand

from llamafleet.operations.archive import sha256_file
from llamafleet.operations.buildclass import HostBuild, cached_artifact, record_binaries
from llamafleet.operations.buildscript import BUILD_SCRIPT, run_checked, run_script
from llamafleet.operations.transfer import verify_and_rename

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def class_archive_on_device(build: HostBuild) -> str:
    return f"{build.paths.run}/class-{build.key}.tar.gz"


def pack_and_fetch(state, host, build: HostBuild, cache_dir: str) -> bool:
    """Pack the release on this host, download it to the controller cache and verify it."""
    remote = class_archive_on_device(build)
    status, output = host.run_shell_command(run_script(build, "pack", LF_ARCHIVE=remote))
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


def copy_late(state, host, build: HostBuild, source: HostBuild, cache_dir: str) -> bool:
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
    if cached_artifact(cache_dir, build.key) is None and not pack_and_fetch(state, source_host, source, cache_dir):
        return False
    local, sha256 = cached_artifact(cache_dir, build.key) or (None, None)
    if local is None:
        return False
    remote = class_archive_on_device(build)
    return (
        run_checked(host, StringCommand("mkdir", "-p", QuoteString(build.paths.run), QuoteString(build.paths.libexec)))
        and host.put_file(local, f"{remote}.part")
        and run_checked(host, verify_and_rename(f"{remote}.part", remote, sha256))
        and host.put_file(StringIO(BUILD_SCRIPT), build.paths.build_script)
        and run_checked(host, run_script(build, "install", LF_ARCHIVE=remote, LF_SHA256=sha256, LF_SOURCE_HOST=source.name))
        and record_binaries(state, host, build)
    )
