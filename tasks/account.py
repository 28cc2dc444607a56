"""The unprivileged user every llamafleet service runs as on Linux (llamafleet.serving.account).

Made before any service is written and before the files it owns. Termux is left alone: every
process there is the app's own user, the only one an app has.
"""

from pyinfra import host, logger

from llamafleet.layout import device_paths
from llamafleet.serving import cluster
from llamafleet.serving.account import DirectoryChain, blocking_directory, service_account, unreachable_base_message

me = cluster.this_host()

if me.service_user is None:
    logger.info(f"{host.name}: service_user does not apply: on Termux every process is the app's own user")
else:
    # The services read their binary and model under the base: under a directory the user cannot
    # pass through (~/llamafleet in root's home, mode 700) they would fail at every start.
    base = device_paths(host).base
    blocked = blocking_directory(host.get_fact(DirectoryChain, path=base), me.service_user, me.service_group)
    if blocked:
        raise ValueError(unreachable_base_message(host.name, base, blocked, me.service_user))
    service_account(
        name=f"Service user {me.service_user} (system account: no login, no password)",
        user=me.service_user,
        group=me.service_group,
        allow_root=cluster.settings().service_user_allow_root,
    )
