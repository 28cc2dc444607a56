"""SSH tunnels from the master to Termux workers: RPC without an open port on the Wi-Fi.

A phone without root cannot firewall, and llama.cpp's RPC has no authentication. So the worker's
rpc-server listens on 127.0.0.1 only, and the master keeps one supervised `ssh -N -L` per worker,
with a key that the worker accepts for that one port forward and nothing else.
"""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

# restrict: no pty, agent or X11 forwarding, no ~/.ssh/rc; port-forwarding re-enables forwards,
# permitopen limits local forwards (-L) to the RPC port. restrict does not stop a command or a
# shell, so a forced command ends every session at once (`ssh -N` opens none). permitlisten
# limits remote forwards (-R), which port-forwarding re-enables too, to 127.0.0.1:1: a port an
# unprivileged user cannot bind (sshd accepts no "none" in authorized_keys).
KEY_OPTIONS = (
    'restrict,port-forwarding,command="exit 1",permitopen="127.0.0.1:{port}",permitlisten="127.0.0.1:1"'
)


def authorized_key_line(public_key: str, port: int) -> str:
    """The worker's authorized_keys line: this key may forward to its RPC port only."""
    return f"{KEY_OPTIONS.format(port=port)} {public_key}"


def authorized_key_pattern(public_key: str) -> str:
    """The pattern that finds the key's line in authorized_keys (for pyinfra's files.line): any
    line holding the key's base64 field, with each "/" of it matched by "." instead. files.line
    deletes and replaces with sed's `/PATTERN/` and `s/PATTERN/.../`, which pyinfra does not
    escape: a "/" of the key would end the pattern there (about two keys in three have one)."""
    return f".*{public_key.split()[1].replace('/', '.')}.*"


def local_forward(rpc_port: int) -> str:
    """ssh's -L argument of a worker's tunnel: the master's loopback port to the worker's,
    same number. The master's launcher finds the tunnel's ssh process by it."""
    return f"127.0.0.1:{rpc_port}:127.0.0.1:{rpc_port}"


def tunnel_argv(
    *, key_file: str, known_hosts: str, user: str, address: str, ssh_port: int, rpc_port: int
) -> list[str]:
    return [
        "ssh", "-N",
        "-i", key_file,
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=yes",
        # Fail (and let the supervisor restart us) rather than run without the forward.
        "-o", "ExitOnForwardFailure=yes",
        # Notice a dead phone within 10-15 s and end, so the forward closes and the master's
        # launcher serves without it; then retry every few seconds (a connect gives up after
        # 5 s rather than the kernel's two minutes of SYNs), so the phone is back soon after
        # its link. The phone's sshd ends its side just as soon (ClientAliveInterval, in
        # templates/termux/sshd-llamafleet.conf.j2): else its rpc-server keeps serving the
        # dead tunnel's connection and never answers the new one.
        "-o", "ServerAliveInterval=5",
        "-o", "ServerAliveCountMax=2",
        "-o", "ConnectTimeout=5",
        "-o", "TCPKeepAlive=yes",
        "-p", str(ssh_port),
        "-L", local_forward(rpc_port),
        f"{user}@{address}",
    ]


def known_hosts_line(address: str, ssh_port: int, host_key: str) -> str:
    name = address if ssh_port == 22 else f"[{address}]:{ssh_port}"
    key_type, key_blob = host_key.split()[:2]
    return f"{name} {key_type} {key_blob}"


class SshHostKey(FactBase):
    """
    The device's sshd ed25519 host public key ("ssh-ed25519 AAAA..."), None when not found.
    Termux keeps it in $PREFIX/etc/ssh, Linux in /etc/ssh.
    """

    def command(self) -> str:
        candidates = " ".join(
            shlex.quote(path)
            for path in ("${PREFIX:-/nonexistent}/etc/ssh/ssh_host_ed25519_key.pub", "/etc/ssh/ssh_host_ed25519_key.pub")
        ).replace("'", '"')
        return f"for f in {candidates}; do [ -r \"$f\" ] && {{ cat \"$f\"; break; }}; done; true"

    def process(self, output):
        line = "".join(output).strip()
        return " ".join(line.split()[:2]) if line.startswith("ssh-") else None
