"""Compile what each role needs, once per device class.

Workers build the RPC server, the master builds llama-server. Devices whose build inputs are
identical (flags, compiler and version, platform, arch, targets, source) form a class: one member
compiles and the others receive its binaries through the controller. A build runs only when the
stamp next to the installed binaries differs from what is wanted.
"""

import os

from pyinfra import host

from llamafleet.cpu.flags import FlagsError, build_flags
from llamafleet.cpu.table import CpuTableError, table_for
from llamafleet.facts import CpuProfile
from llamafleet.facts.reading import read_fact
from llamafleet.layout import device_paths
from llamafleet.operations import build
from llamafleet.operations.archive import sha256_file
from llamafleet.operations.hostdata import HostDataError
from llamafleet.serving import cluster

me = cluster.this_host()
settings = cluster.settings()
paths = device_paths(host)


def _expected_source() -> str | None:
    """The source identity the device will have once tasks/source.py ran (for the preview)."""
    archive = settings.llama_cpp_archive
    if archive and os.path.isfile(os.path.expanduser(archive)):
        return f"archive:{sha256_file(os.path.expanduser(archive))}"
    if settings.llama_cpp_ref:
        return f"git:{settings.llama_cpp_ref}"
    return None


# The CPU overrides against this device's CPU (a fact): a bad fit must stop the deploy now,
# while preparing, not halfway through it.
try:
    build_flags(
        read_fact(host, CpuProfile),
        None,
        llama_cpu_arch=settings.llama_cpu_arch,
        llama_cpu_mcpu=settings.llama_cpu_mcpu,
        llama_cmake_args=settings.llama_cmake_args,
        table=table_for(settings.llama_cpu_table),
    )
except FlagsError as error:
    raise HostDataError(host.name, error.key, str(error).split(": ", 1)[-1]) from error
except CpuTableError as error:
    raise HostDataError(host.name, "llama_cpu_table", str(error)) from error

build.resolve(
    name="Work out the llama.cpp build (class, flags, targets)",
    paths=paths,
    role=me.role,
    compiler=settings.llama_compiler,
    cpu_arch=settings.llama_cpu_arch,
    cpu_mcpu=settings.llama_cpu_mcpu,
    cmake_args=settings.llama_cmake_args,
    cpu_table=settings.llama_cpu_table,
    jobs=settings.llama_build_jobs,
    once_per_class=settings.llama_build_once_per_class,
    expected_source=_expected_source(),
)

build.compile(name="Compile llama.cpp (one member per class)", paths=paths)

build.share(name="Fetch the class binaries to the controller for twins", paths=paths)

build.install_copy(name="Install class binaries built by a twin", paths=paths)
