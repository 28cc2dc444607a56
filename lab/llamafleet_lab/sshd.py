"""SSH pieces of the lab: key pairs, each host's sshd_config, known_hosts, and a liveness probe.

Every host runs the machine's OpenSSH server with its own config: key-only login, one allowed
user, no PAM (PAM's session modules expect a real login environment). Phones run sshd as the app
user on 8022, with config and host key in $PREFIX/etc/ssh like Termux's openssh package.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from llamafleet_lab.topology import LabHost

SSHD = "/usr/sbin/sshd"  # sshd must be started by absolute path (it re-executes itself)
SFTP_SERVER = "/usr/lib/openssh/sftp-server"  # pyinfra uploads files over SFTP
HOST_KEY_NAME = "ssh_host_ed25519_key"


def generate_keypair(private_key: Path, comment: str) -> str:
    """Create an ed25519 key pair without passphrase; return the public key line."""
    private_key.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private_key)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    private_key.chmod(0o600)
    return Path(str(private_key) + ".pub").read_text().strip()


def render_sshd_config(
    *,
    port: int,
    host_key: str,
    user: str,
    env: dict[str, str] | None = None,
    termux_prefix: str | None = None,
) -> str:
    """sshd_config for one lab host. `env` goes to SetEnv: it reaches every session,
    non-interactive commands included (pyinfra runs `sh -c '...'`). A phone's (termux_prefix
    given) starts as Termux's openssh package's does (termux-packages
    packages/openssh/sshd_config.patch): an Include of $PREFIX/etc/ssh/sshd_config.d/*.conf
    first, so a drop-in's values win, and the pid file in $PREFIX/var/run (its
    --with-pid-dir), where a SIGHUP finds the listener."""
    lines = ["# Written by `llamafleet lab up`: one lab host's sshd."]
    if termux_prefix:
        lines.append(f"Include {termux_prefix}/etc/ssh/sshd_config.d/*.conf")
    lines += [
        f"Port {port}",
        "ListenAddress 0.0.0.0",
        f"HostKey {host_key}",
        f"PidFile {termux_prefix}/var/run/sshd.pid" if termux_prefix else "PidFile none",
        f"AllowUsers {user}",
        "PermitRootLogin prohibit-password" if user == "root" else "PermitRootLogin no",
        "PubkeyAuthentication yes",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        f"Subsystem sftp {SFTP_SERVER}",
    ]
    if env:
        lines.append("SetEnv " + " ".join(f"{key}={value}" for key, value in sorted(env.items())))
    return "\n".join(lines) + "\n"


# sshd sets these itself from the user's passwd entry.
_SET_BY_SSHD = ("HOME", "USER", "LOGNAME", "SHELL")


def write_phone_sshd_files(host: LabHost, etc_ssh: Path, env: dict[str, str]) -> None:
    """$PREFIX/etc/ssh of a phone: host key and sshd_config (paths as the phone sees them)."""
    from llamafleet_lab.termux import TERMUX_PREFIX  # termux imports this module

    generate_keypair(etc_ssh / HOST_KEY_NAME, f"{host.user}@{host.name}")
    session_env = {key: value for key, value in env.items() if key not in _SET_BY_SSHD}
    config = render_sshd_config(
        port=host.ssh_port,
        host_key=f"{TERMUX_PREFIX}/etc/ssh/{HOST_KEY_NAME}",
        user=host.user,
        env=session_env,
        termux_prefix=TERMUX_PREFIX,
    )
    (etc_ssh / "sshd_config").write_text(config)


def write_linux_sshd_files(host: LabHost, directory: Path) -> Path:
    """Host key and sshd_config of a Linux host in its (root-only) lab directory."""
    host_key = directory / HOST_KEY_NAME
    generate_keypair(host_key, f"root@{host.name}")
    config = directory / "sshd_config"
    config.write_text(render_sshd_config(port=host.ssh_port, host_key=str(host_key), user=host.user))
    return config


def known_hosts_line(host: LabHost, host_public_key: str) -> str:
    """One known_hosts line; OpenSSH and paramiko write non-22 ports as [address]:port."""
    where = host.address if host.ssh_port == 22 else f"[{host.address}]:{host.ssh_port}"
    key_type, key_data = host_public_key.split()[:2]
    return f"{where} {key_type} {key_data}"


def ssh_answers(address: str, port: int, timeout: float = 1.0) -> bool:
    """True when an SSH server answers on address:port with its version banner."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as connection:
            connection.settimeout(timeout)
            return connection.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def read_public_key(private_key: Path) -> str:
    return Path(str(private_key) + ".pub").read_text().strip()
