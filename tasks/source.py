"""Put the cluster's one llama.cpp source on every device.

`llama_cpp_archive` (a .tar.gz on the controller, a llama-cpp-python sdist works too) is uploaded
and unpacked; otherwise `llama_cpp_ref` of `llama_cpp_repo` is fetched shallowly on the device.
`llamafleet check` (the deploy's first step) has made sure exactly one of them is set.
"""

import os

from pyinfra import host

from llamafleet.layout import device_paths
from llamafleet.operations import source
from llamafleet.operations.archive import ArchiveError, archive_llama_root, sha256_file
from llamafleet.operations.hostdata import HostDataError
from llamafleet.serving import cluster

settings = cluster.settings()
paths = device_paths(host)

if settings.llama_cpp_archive:
    archive = os.path.expanduser(settings.llama_cpp_archive)
    # The controller's files as they are now (this task also runs on its own, without check),
    # and what is inside the archive, known only by reading it.
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
        upload_path=paths.source_archive,
    )
else:
    source.git(
        name=f"Fetch llama.cpp {settings.llama_cpp_ref}",
        repo=settings.llama_cpp_repo,
        ref=settings.llama_cpp_ref,
        dest=paths.llama_src,
    )
