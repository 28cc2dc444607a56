"""The system account llamafleet's services run as on Linux, when llamafleet made it
(llamafleet.serving.account_removal). After the services that ran as it are gone."""

from pyinfra import host

from llamafleet.layout import platform_name
from llamafleet.plan.decide import service_account_of
from llamafleet.serving import cluster
from llamafleet.serving.account_removal import service_account_removed

platform = platform_name(host)
# The plan's decision, from this host's settings alone: remove.py makes no plan of the cluster.
user, group = service_account_of(cluster.settings(), platform)
if user is not None:
    service_account_removed(
        name=f"Service user {user} and group {group} (if llamafleet made them)",
        user=user,
        group=group,
        login_user=host.data.get("ssh_user"),
    )
