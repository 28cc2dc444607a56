"""The tunnel key's authorized_keys line in a real OpenSSH sshd (a scratch network and mount
namespace): the key logs in and forwards the RPC port, and nothing else: no command, no shell,
no forward to another port, no remote forward. `restrict` alone lets a key run commands."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llamafleet.serving.tunnels import authorized_key_line

SSHD = "/usr/sbin/sshd"
RPC_PORT, SSH_PORT = 50052, 8022

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("ssh") and Path(SSHD).exists()),
    reason="needs root, unshare, ssh and sshd",
)

# Runs inside `unshare --net --mount --pid`: sshd on 127.0.0.1:8022 with the line under test, a
# listener standing for the rpc-server, then one probe per line of output (name=value).
PROBES = r"""
set -u
cd "$1"
mount -t tmpfs tmpfs /run && mkdir -m 755 /run/sshd
ip link set lo up
{sshd} -f sshd_config -D -e 2>sshd.log & sshd=$!
python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",{rpc})); s.listen(1); time.sleep(60)' & rpc=$!
i=0; until (exec 3<>/dev/tcp/127.0.0.1/{ssh}) 2>/dev/null || [ $i -ge 50 ]; do sleep 0.1; i=$((i+1)); done
SSH="ssh -F /dev/null -i key -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=known_hosts -o StrictHostKeyChecking=yes -p {ssh} $(id -un)@127.0.0.1"
echo command=$($SSH 'echo MARKER' </dev/null 2>/dev/null)
echo shell=$(echo 'echo MARKER' | $SSH -T 2>/dev/null)
timeout 3 $SSH -N -o ExitOnForwardFailure=yes -L 127.0.0.1:47001:127.0.0.1:{rpc}; echo rpc_forward_rc=$?
$SSH -N -o ExitOnForwardFailure=yes -L 127.0.0.1:47002:127.0.0.1:{ssh} 2>/dev/null & fwd=$!
i=0; until (exec 3<>/dev/tcp/127.0.0.1/47002) 2>/dev/null || [ $i -ge 50 ]; do sleep 0.1; i=$((i+1)); done
echo sshd_through_forward=$(timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/47002; head -c 8 <&3' 2>/dev/null | tr -cd 'A-Za-z0-9.-')
echo sshd_direct=$(timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{ssh}; head -c 8 <&3' 2>/dev/null | tr -cd 'A-Za-z0-9.-')
kill $fwd
timeout 3 $SSH -N -o ExitOnForwardFailure=yes -R 127.0.0.1:47003:127.0.0.1:{rpc} 2>/dev/null; echo remote_forward_rc=$?
kill $sshd $rpc
"""


def probe(tmp_path: Path, options_line: str) -> dict[str, str]:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "llamafleet-tunnel", "-f", str(tmp_path / "key")], check=True)
    public = (tmp_path / "key.pub").read_text().strip()
    (tmp_path / "authorized_keys").write_text(options_line.format(public=public) + "\n")
    host_key = (tmp_path / "host_key.pub").read_text().split()
    (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{SSH_PORT} {host_key[0]} {host_key[1]}\n")
    (tmp_path / "sshd_config").write_text(
        f"Port {SSH_PORT}\nListenAddress 127.0.0.1\nHostKey {tmp_path}/host_key\nPidFile none\n"
        f"AuthorizedKeysFile {tmp_path}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n"
    )
    script = PROBES.replace("{sshd}", SSHD).replace("{rpc}", str(RPC_PORT)).replace("{ssh}", str(SSH_PORT))
    result = subprocess.run(
        # A PID namespace too: whatever happens to the script, its sshd and listener die with it.
        ["unshare", "--net", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
         "bash", "-c", script, "probe", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def test_the_tunnel_key_forwards_the_rpc_port_and_nothing_else(tmp_path):
    seen = probe(tmp_path, authorized_key_line("{public}", RPC_PORT))
    assert seen["rpc_forward_rc"] == "124", f"the RPC forward did not stay up: {seen}"  # held until timeout
    assert seen["sshd_direct"].startswith("SSH-"), f"control: the banner reader sees no sshd: {seen}"
    assert seen["command"] == "" and seen["shell"] == "", f"the tunnel key ran something: {seen}"
    assert "SSH-" not in seen["sshd_through_forward"], f"the tunnel key forwards to sshd: {seen}"
    assert seen["remote_forward_rc"] != "124", f"the tunnel key may listen on the worker: {seen}"


def test_the_probes_see_an_unrestricted_key(tmp_path):
    """Positive control: with no options, the same probes see every one of those."""
    seen = probe(tmp_path, "{public}")
    assert seen["command"] == "MARKER" and seen["shell"] == "MARKER", seen
    assert seen["sshd_through_forward"].startswith("SSH-"), seen
    assert seen["remote_forward_rc"] == "124", seen
