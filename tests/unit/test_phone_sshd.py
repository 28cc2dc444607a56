"""The drop-in a tunnelled phone gets, read by a real sshd the way Termux's reads its own:
an sshd_config that starts with Termux's Include line (llamafleet_lab.sshd renders it)."""

from __future__ import annotations

import os
import shutil
import subprocess

from llamafleet.serving import phone_sshd
from llamafleet.templates import render
from llamafleet_lab import sshd as lab_sshd

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def effective(config) -> dict[str, str]:
    # sshd run by root wants its privilege separation directory even for -T; Debian's service
    # makes it at every start (RuntimeDirectory=sshd), this machine may run no system sshd.
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    shown = subprocess.run([SSHD, "-T", "-f", str(config)], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    return dict(line.split(" ", 1) for line in shown.stdout.splitlines() if " " in line)


def test_sshd_takes_the_client_alive_checks_from_the_drop_in_and_drops_them_without_it(tmp_path):
    prefix = tmp_path / "usr"
    (prefix / "etc/ssh/sshd_config.d").mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "key")], check=True)
    config = prefix / "etc/ssh/sshd_config"
    config.write_text(lab_sshd.render_sshd_config(port=8022, host_key=str(tmp_path / "key"), user="root",
                                                  termux_prefix=str(prefix)))
    assert effective(config)["clientaliveinterval"] == "0"  # sshd's default: a dead client is kept
    drop_in = tmp_path / "usr/etc/ssh/sshd_config.d/llamafleet.conf"
    assert str(drop_in) == phone_sshd.drop_in_path(str(prefix))
    drop_in.write_text(render(phone_sshd.DROP_IN_TEMPLATE, interval=phone_sshd.CLIENT_ALIVE_INTERVAL,
                              count_max=phone_sshd.CLIENT_ALIVE_COUNT_MAX))
    shown = effective(config)
    assert (shown["clientaliveinterval"], shown["clientalivecountmax"]) == ("5", "3")
    assert shown["pidfile"] == phone_sshd.pid_file(str(prefix))
