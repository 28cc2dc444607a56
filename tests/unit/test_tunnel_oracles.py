"""The SSH tunnel from the master to a Termux worker, checked against OpenSSH itself.

The expectations are written out from the rules the tunnel follows, not from the code:
- known_hosts (sshd(8), SSH_KNOWN_HOSTS FILE FORMAT): a host on the default port 22 is written as
  its bare name or address, on any other port as `[address]:port`; ssh looks a host up under that
  one form only, so a line in the other form is as good as none and StrictHostKeyChecking=yes
  refuses the worker;
- the tunnel (README "Security by default", this module's docstring): no prompts, only the
  tunnel key, the host key checked, no session, the worker's RPC port forwarded from the
  master's loopback to the worker's loopback on the same number, exit when the forward fails,
  a dead phone noticed within 45 s (15 s × 3);
- the host key: Termux keeps sshd's keys in $PREFIX/etc/ssh, Linux in /etc/ssh.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from llamafleet.serving.tunnels import SshHostKey, known_hosts_line, tunnel_argv

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOdpNqtG6dwn8Sr0f1SVjTnVrEdxqvAzpHSqzpOLfg9c root@phone"
TYPE_AND_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOdpNqtG6dwn8Sr0f1SVjTnVrEdxqvAzpHSqzpOLfg9c"
needs_openssh = pytest.mark.skipif(not (shutil.which("ssh") and shutil.which("ssh-keygen")), reason="needs OpenSSH")


# --- (d) the known_hosts line: bare on port 22, [address]:port elsewhere ------------------------


@pytest.mark.parametrize(
    "address, port, expected",
    [
        ("198.18.0.31", 22, f"198.18.0.31 {TYPE_AND_KEY}"),
        ("board.lan", 22, f"board.lan {TYPE_AND_KEY}"),
        ("198.18.0.21", 8022, f"[198.18.0.21]:8022 {TYPE_AND_KEY}"),
        ("198.18.0.21", 23, f"[198.18.0.21]:23 {TYPE_AND_KEY}"),
        ("198.18.0.21", 2222, f"[198.18.0.21]:2222 {TYPE_AND_KEY}"),
    ],
    ids=["ipv4-22", "name-22", "termux-8022", "port-23", "port-2222"],
)
def test_known_hosts_line_is_bare_on_port_22_and_bracketed_elsewhere(address, port, expected):
    # The key's comment (root@phone) is not part of the line: only type and key.
    assert known_hosts_line(address, port, KEY) == expected


@needs_openssh
@pytest.mark.parametrize("address, port, lookup", [
    ("198.18.0.31", 22, "198.18.0.31"),
    ("198.18.0.21", 8022, "[198.18.0.21]:8022"),
], ids=["port-22", "port-8022"])
def test_openssh_finds_the_line_under_the_name_it_looks_up(tmp_path, address, port, lookup):
    """`ssh-keygen -F` searches known_hosts exactly as ssh does for that host and port."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(known_hosts_line(address, port, KEY) + "\n")
    found = subprocess.run(["ssh-keygen", "-F", lookup, "-f", str(known_hosts)], capture_output=True, text=True)
    assert found.returncode == 0, f"ssh would not find {lookup} in: {known_hosts.read_text()}"
    assert TYPE_AND_KEY in found.stdout


# --- the tunnel command, as ssh reads it -----------------------------------------------------------


@needs_openssh
def test_ssh_reads_the_tunnel_command_as_intended(tmp_path):
    """`ssh -G` prints the configuration ssh would use for this command line, without connecting."""
    key, known_hosts = tmp_path / "tunnel_key", tmp_path / "known_hosts"
    key.write_text("")
    argv = tunnel_argv(key_file=str(key), known_hosts=str(known_hosts), user="u0_a201", address="198.18.0.21",
                       ssh_port=8022, rpc_port=50052)
    shown = subprocess.run([argv[0], "-G", "-F", "/dev/null", *argv[1:]], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    config: dict[str, list[str]] = {}
    for line in shown.stdout.splitlines():
        name, _, value = line.partition(" ")
        config.setdefault(name, []).append(value)
    expected = {
        "user": ["u0_a201"],
        "hostname": ["198.18.0.21"],
        "port": ["8022"],
        "sessiontype": ["none"],  # -N: the connection carries the forward only
        "batchmode": ["yes"],
        "identitiesonly": ["yes"],
        "identityfile": [str(key)],
        "userknownhostsfile": [str(known_hosts)],
        "stricthostkeychecking": ["true"],
        "exitonforwardfailure": ["yes"],
        "serveraliveinterval": ["5"],
        "serveralivecountmax": ["2"],
        "connecttimeout": ["5"],
        "tcpkeepalive": ["yes"],
        "localforward": ["[127.0.0.1]:50052 [127.0.0.1]:50052"],
    }
    assert {name: config.get(name) for name in expected} == expected
    assert "remoteforward" not in config and "dynamicforward" not in config


# --- the SshHostKey fact ------------------------------------------------------------------------


def run_fact_command(env: dict) -> list[str]:
    result = subprocess.run(["sh", "-c", SshHostKey().command()], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_host_key_is_read_from_termuxs_prefix(tmp_path):
    (tmp_path / "usr/etc/ssh").mkdir(parents=True)
    (tmp_path / "usr/etc/ssh/ssh_host_ed25519_key.pub").write_text(KEY + "\n")
    output = run_fact_command({"PATH": "/usr/bin:/bin", "PREFIX": str(tmp_path / "usr")})
    assert output == [KEY]
    assert SshHostKey().process(output) == TYPE_AND_KEY


def test_host_key_without_prefix_is_linuxs(tmp_path):
    output = run_fact_command({"PATH": "/usr/bin:/bin"})
    try:
        with open("/etc/ssh/ssh_host_ed25519_key.pub") as file:
            expected = file.read().splitlines()
    except OSError:
        expected = []  # no readable key here: nothing printed, and the command still succeeds
    assert output == expected


def test_host_key_fact_keeps_type_and_key_and_refuses_anything_else():
    assert SshHostKey().process([KEY]) == TYPE_AND_KEY
    assert SshHostKey().process([f"  {KEY}  "]) == TYPE_AND_KEY
    assert SshHostKey().process(["", KEY]) == TYPE_AND_KEY  # a blank line from the login shell first
    assert SshHostKey().process([]) is None
    assert SshHostKey().process(["cat: permission denied"]) is None
