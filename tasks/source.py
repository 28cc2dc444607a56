"""Put the cluster's one llama.cpp source on every device.

`llama_cpp_archive` (a .tar.gz on the controller, a llama-cpp-python sdist works too) is uploaded
and unpacked; otherwise `llama_cpp_ref` of `llama_cpp_repo` is fetched shallowly on the device.
The archive wins when both are set: it needs no network on the devices.
"""

import os

from pyinfra import host

from llamafleet.layout import device_paths
from llamafleet.operations import source
from llamafleet.operations.archive import ArchiveError, archive_llama_root, sha256_file
from llamafleet.operations.hostdata import HostDataError, optional_string

paths = device_paths(host)
archive = optional_string(host.name, "llama_cpp_archive", host.data.get("llama_cpp_archive"))
ref = optional_string(host.name, "llama_cpp_ref", host.data.get("llama_cpp_ref"))
repo = optional_string(host.name, "llama_cpp_repo", host.data.get("llama_cpp_repo"))

if archive:
    archive = os.path.expanduser(str(archive))
    if not os.path.isfile(archive):
        raise HostDataError(host.name, "llama_cpp_archive", f"no such file on the controller: {archive}")
    try:
        root = archive_llama_root(archive)
    except ArchiveError as error:
        raise HostDataError(host.name, "llama_cpp_archive", str(error)) from error
    source.archive(
        name="Upload and unpack the llama.cpp source archive",
        src=archive,
        sha256=sha256_file(archive),
        root=root,
        dest=paths.llama_src,
        upload_path=f"{paths.src}/archive.tar.gz",
    )
elif ref:
    if not repo or repo.startswith("-"):
        raise HostDataError(host.name, "llama_cpp_repo", f"expected a git URL, got {repo!r}")
    if ref.startswith("-"):
        raise HostDataError(host.name, "llama_cpp_ref", f"expected a tag or commit, got {ref!r}")
    source.git(
        name=f"Fetch llama.cpp {ref}",
        repo=repo,
        ref=ref,
        dest=paths.llama_src,
    )
else:
    raise HostDataError(
        host.name, "llama_cpp_ref", "set llama_cpp_ref (a tag or commit) or llama_cpp_archive"
    )
