"""A phone's Termux:Boot script, and the wake lock llamafleet took (only when its record says so)."""

from pyinfra import host
from pyinfra.operations import files

from llamafleet.layout import TERMUX_BOOT_SCRIPT, device_paths, device_platform, platform_name
from llamafleet.serving.removal import wake_lock_released

if platform_name(host) == "termux":
    files.file(
        name="Termux:Boot script",
        path=f"{device_platform(host)['home']}/{TERMUX_BOOT_SCRIPT}",
        present=False,
    )
    wake_lock_released(name="Wake lock llamafleet took", record=device_paths(host).wake_lock_record)
