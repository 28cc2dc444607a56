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
from llamafleet.layout import device_paths
from llamafleet.operations import build
from llamafleet.operations.archive import sha256_file
from llamafleet.operations.buildinputs import ROLES
from llamafleet.operations.hostdata import (
    HostDataError,
    boolean,
    choice,
    optional_positive_int,
    optional_string,
    string_list,
)

paths = device_paths(host)
data = host.data


def _expected_source() -> str | None:
    """The source identity the device will have once tasks/source.py ran (for the preview)."""
    archive = data.get("llama_cpp_archive")
    if archive and os.path.isfile(os.path.expanduser(str(archive))):
        return f"archive:{sha256_file(os.path.expanduser(str(archive)))}"
    if data.get("llama_cpp_ref"):
        return f"git:{data.get('llama_cpp_ref')}"
    return None


role = choice(host.name, "llama_role", data.get("llama_role"), ROLES)
cpu_arch = optional_string(host.name, "llama_cpu_arch", data.get("llama_cpu_arch"))
cpu_mcpu = optional_string(host.name, "llama_cpu_mcpu", data.get("llama_cpu_mcpu"))
cmake_args = string_list(host.name, "llama_cmake_args", data.get("llama_cmake_args"))
cpu_table = optional_string(host.name, "llama_cpu_table", data.get("llama_cpu_table"))

# Check the CPU overrides now, while preparing: a bad one must stop the deploy before any host
# is touched, not halfway through it.
try:
    build_flags(
        host.get_fact(CpuProfile, cpu_table=cpu_table),
        None,
        llama_cpu_arch=cpu_arch,
        llama_cpu_mcpu=cpu_mcpu,
        llama_cmake_args=cmake_args,
        table=table_for(cpu_table),
    )
except FlagsError as error:
    raise HostDataError(host.name, error.key, str(error).split(": ", 1)[-1]) from error
except CpuTableError as error:
    raise HostDataError(host.name, "llama_cpu_table", str(error)) from error

build.resolve(
    name="Work out the llama.cpp build (class, flags, targets)",
    paths=paths,
    role=role,
    compiler=optional_string(host.name, "llama_compiler", data.get("llama_compiler")),
    cpu_arch=cpu_arch,
    cpu_mcpu=cpu_mcpu,
    cmake_args=cmake_args,
    cpu_table=cpu_table,
    jobs=optional_positive_int(host.name, "llama_build_jobs", data.get("llama_build_jobs")),
    once_per_class=boolean(
        host.name, "llama_build_once_per_class", data.get("llama_build_once_per_class", True)
    ),
    expected_source=_expected_source(),
)

build.compile(name="Compile llama.cpp (one member per class)", paths=paths)

build.share(name="Fetch the class binaries to the controller for twins", paths=paths)

build.install_copy(name="Install class binaries built by a twin", paths=paths)
