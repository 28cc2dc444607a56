"""tests/integration/host_snapshot.py, which the lab's remove test compares hosts with: its parsing
and normalisation on sample output, and its script run on this machine."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location("host_snapshot", REPO / "tests" / "integration" / "host_snapshot.py")
snap = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(snap)

NFT = """table inet llamafleet { # handle 7
\tchain input { # handle 1
\t\ttype filter hook input priority -10; policy accept;
\t\ttcp dport 50052 ip saddr 198.18.0.11 counter packets 12 bytes 720 accept # handle 3

\t}
}
"""

SAMPLE = "\n".join([
    "@@kind phone",
    "@@files /data/data/com.termux/files/home/llamafleet",
    "d \t",
    "f .llamafleet\t",
    "l bin\treleases/abc",
    "@@files /data/data/com.termux/files/home/.termux/boot",
    "absent",
    "@@authorized_keys",
    "ssh-ed25519 AAAA alice",
    "@@self 40",
    "@@processes",
    "1 (init) S 0 0",
    "7 (sshd) S 1 7",
    "12 (runsvdir) S 1 12",
    "13 (runsv) S 12 12",
    "14 (runsv) S 12 12",
    "15 (ggml-rpc-server) S 13 12",
    "20 (sv (old)) S 1 20",
    "40 (sh) S 0 40",
    "41 (cat) S 40 40",
    "42 (sort) S 41 40",
    "",
    "@@iptables",
    "-P INPUT ACCEPT",
    "-A INPUT -j LLAMAFLEET",
    "@@nftables",
    *NFT.splitlines(),
    "@@ufw",
    "@@missing",
    "@@firewalld",
    "@@missing",
    "@@users",
    "u0_a123",
    "root",
    "@@groups",
    "root",
])


def test_the_sample_parses_into_plain_sorted_data():
    found = snap.parse(SAMPLE)
    base = "/data/data/com.termux/files/home/llamafleet"
    assert found["kind"] == "phone"
    assert found["files"] == sorted([
        f"{base}  d", f"{base}/.llamafleet  f", f"{base}/bin  l -> releases/abc",
        "/data/data/com.termux/files/home/.termux/boot  absent",
    ])
    assert found["authorized_keys"] == ["ssh-ed25519 AAAA alice"]
    assert found["iptables"] == ["-P INPUT ACCEPT", "-A INPUT -j LLAMAFLEET"]
    assert found["ufw"] is None and found["firewalld"] is None
    assert found["users"] == ["root", "u0_a123"] and found["groups"] == ["root"]


def test_processes_leave_out_init_the_labs_sshd_and_the_snapshot_itself():
    found = snap.parse(SAMPLE)
    # Two runsv, one per service: repeats count. A name with parentheses is read whole.
    assert found["processes"] == ["ggml-rpc-server", "runsv", "runsv", "runsvdir", "sv (old)"]


def test_nft_loses_handles_and_counts_and_blank_lines():
    assert snap.nft_lines(NFT.splitlines()) == [
        "table inet llamafleet {",
        "\tchain input {",
        "\t\ttype filter hook input priority -10; policy accept;",
        "\t\ttcp dport 50052 ip saddr 198.18.0.11 counter accept",
        "\t}",
        "}",
    ]
    later = NFT.replace("packets 12 bytes 720", "packets 9000 bytes 81234").replace("handle 3", "handle 9")
    assert snap.nft_lines(later.splitlines()) == snap.nft_lines(NFT.splitlines())


def test_differences_name_what_went_and_what_came():
    before = snap.parse(SAMPLE)
    after = snap.parse(SAMPLE.replace("15 (ggml-rpc-server) S 13 12", "15 (sleep) S 1 15")
                       .replace("-A INPUT -j LLAMAFLEET\n", ""))
    assert snap.differences(before, before) == {}
    assert snap.differences(before, after) == {
        "iptables": {"gone": ["-A INPUT -j LLAMAFLEET"], "new": []},
        "processes": {"gone": ["ggml-rpc-server"], "new": ["sleep"]},
    }
    assert snap.differences({"ufw": None}, {"ufw": ["ufw allow 22/tcp"]}) == {
        "ufw": {"gone": None, "new": ["ufw allow 22/tcp"]}}


def test_the_script_runs_on_this_machine_and_leaves_itself_out(tmp_path):
    calls = []

    def lab_exec(name, command, root=False):
        calls.append((name, root))
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True)

    base = tmp_path / "lf"
    (base / "bin").mkdir(parents=True)
    (base / "bin" / "x").write_text("")
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA alice\n")
    found = snap.snapshot(lab_exec, "linux1", bases=[str(base)], home=str(tmp_path))
    assert calls == [("linux1", True)]
    assert found["kind"] in ("linux", "phone")
    assert f"{base}/bin/x  f" in found["files"] and f"{base}  d" in found["files"]
    listed = {entry.split("  ")[0] for entry in found["files"]}
    assert set(snap.LINUX_PATHS if found["kind"] == "linux" else snap.PHONE_PATHS) <= listed
    assert found["authorized_keys"] == ["ssh-ed25519 AAAA alice"]
    assert "cat" not in found["processes"]  # the snapshot's own
    assert found["users"] and found["groups"]
    if os.geteuid() == 0:
        assert "root" in found["users"]
