"""The system account llamafleet's services run as on Linux, when llamafleet made it
(llamafleet.serving.account_removal). After the services that ran as it are gone."""

from pyinfra import host

from llamafleet.layout import platform_name
from llamafleet.serving import cluster
from llamafleet.serving.account_removal import DEFAULT_SERVICE_USER, service_account_removed

if platform_name(host) == "linux":
    # `service_user` is a setting once the deploy makes the account; until then its default.
    user = getattr(cluster.settings(), "service_user", None) or DEFAULT_SERVICE_USER
    service_account_removed(name=f"Service user {user} (if llamafleet made it)", user=user,
                            login_user=host.data.get("ssh_user"))
