"""A phone's Termux:Boot script, the wake lock llamafleet took (only when its record says so),
and the sshd drop-in of a tunnelled phone (sshd then reads its configuration again)."""

from pyinfra import host
from pyinfra.operations import files

from llamafleet.layout import TERMUX_BOOT_SCRIPT, device_paths, device_platform, platform_name
from llamafleet.serving import phone_sshd
from llamafleet.serving.removal import wake_lock_released

if platform_name(host) == "termux":
    files.file(
        name="Termux:Boot script",
        path=f"{device_platform(host)['home']}/{TERMUX_BOOT_SCRIPT}",
        present=False,
    )
    wake_lock_released(name="Wake lock llamafleet took", record=device_paths(host).wake_lock_record)
    prefix = device_platform(host)["prefix"]
    drop_in = files.file(name="sshd drop-in (client-alive checks)", path=phone_sshd.drop_in_path(prefix),
                         present=False)
    phone_sshd.sshd_reloaded(name="sshd reads its configuration again", prefix=prefix, _if=drop_in.did_change)
