"""Refuse bad data and impossible plans before any host is touched.

The same checks as `llamafleet check`, on the inventory pyinfra loaded, then the plan (which
needs the devices' facts: RAM, cores) and the model file's sha256. Any problem stops the deploy
here, in the preparation phase: pyinfra executes no operation on any host.
"""

from pyinfra import host, inventory
from pyinfra.context import ctx_inventory
from pyinfra.api.exceptions import PyinfraError

from llamafleet.plan import PlanError
from llamafleet.serving import cluster
from llamafleet.serving.model import local_sha256
from llamafleet.validate import validate_pyinfra_inventory

# Once per deploy, not once per host: on the first host this run deploys. pyinfra loads task
# files for those only, so with --limit the inventory's first host may not be one of them.
_deployed = set(inventory.get_active_hosts())
if host.name == next(h for h in inventory if h in _deployed).name:
    problems = validate_pyinfra_inventory(ctx_inventory.get())
    if problems:
        raise PyinfraError("llamafleet check failed, nothing was changed:\n" + "\n".join(map(str, problems)))

# Every host asks (the plan is made once and shared): pyinfra loads all hosts' tasks at once,
# so whichever host meets a refused plan first reports it in these words.
try:
    cluster.current_plan()
except PlanError as error:
    raise PyinfraError(f"the cluster plan cannot work, nothing was changed:\n{error}") from None

settings = cluster.settings()
model_file, model_sha256 = settings.model_file, settings.model_sha256
if model_file and local_sha256(model_file) != str(model_sha256).lower():
    raise PyinfraError(
        f"{host.name}: model_sha256: {model_file} has sha256 {local_sha256(model_file)}, "
        f"not {model_sha256}; nothing was changed"
    )
