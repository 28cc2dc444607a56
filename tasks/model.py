"""The model on the master (and on workers when `model_on_workers`), sha256-checked, never re-sent."""

from pyinfra import host

from llamafleet.layout import device_paths
from llamafleet.serving.cluster import this_host
from llamafleet.serving.model import model_dest, model_file

if this_host().role == "master" or host.data.get("model_on_workers"):
    model_file(
        name="Model present and verified",
        dest=model_dest(host.data, device_paths(host).models),
        sha256=host.data.get("model_sha256"),
        src=host.data.get("model_file"),
        url=host.data.get("model_url"),
    )
