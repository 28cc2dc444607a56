"""The model on the master (and on workers when `model_on_workers`), sha256-checked, never re-sent."""

from llamafleet.plan.decide import holds_model
from llamafleet.serving import cluster
from llamafleet.serving.model import model_file

me, settings = cluster.this_host(), cluster.settings()

if holds_model(me.role, settings):
    model_file(
        name="Model present and verified",
        dest=cluster.model_path(me),
        sha256=settings.model_sha256,
        src=settings.model_file,
        url=settings.model_url,
    )
