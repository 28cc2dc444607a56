"""Everything a host gets comes from templates/: the fragments render to the very lines the run
scripts, units and boot script held before they were templates (a changed line would restart
every service on the next deploy), the whole files say they are managed, and no template is
left unused."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from llamafleet.operations.build import BUILD_SCRIPT
from llamafleet.serving.wakelock import prestart_lines, take_command
from llamafleet.templates import TEMPLATES, render

REPO = TEMPLATES.parents[1]
RECORD = "/data/data/com.termux/files/home/llamafleet/run/wake-lock"


def test_the_wake_lock_line_and_a_phones_prestart_are_as_before():
    take = (
        "termux-wake-lock && mkdir -p /data/data/com.termux/files/home/llamafleet/run && "
        "printf '%s %s\\n' \"$(cat /proc/sys/kernel/random/boot_id)\" \"$(date +%s)\" > "
        f"{RECORD}.tmp && mv -f {RECORD}.tmp {RECORD}"
    )
    assert take_command(RECORD) == take
    assert prestart_lines(RECORD) == [
        f"{take} || echo 'llamafleet: termux-wake-lock failed, or its record {RECORD} could not be written'"
    ]
    # A path that needs quoting is quoted.
    assert "mkdir -p '/tmp/a b' &&" in take_command("/tmp/a b/wake-lock")


def test_the_build_script_renders_to_its_own_text():
    """No Jinja2 markup in a shell script full of ${...}: rendering changes nothing, so what a
    host runs is what the template shows."""
    template = TEMPLATES / "llamafleet/libexec/llamafleet-build.sh.j2"
    assert BUILD_SCRIPT == template.read_text()
    assert BUILD_SCRIPT.startswith("#!/bin/sh\n# Managed by llamafleet")


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOdpNqtG6dwn8Sr0f1SVjTnVrEdxqvAzpHSqzpOLfg9c"


def test_the_tunnels_known_hosts_is_managed_and_lists_each_worker_once():
    entries = [f"[198.18.0.21]:8022 {KEY}", f"198.18.0.12 {KEY}"]
    text = render("llamafleet/etc/tunnel_known_hosts.j2", entries=entries)
    assert text.startswith("# Managed by llamafleet")
    assert [line for line in text.splitlines() if not line.startswith("#")] == entries
    assert text.endswith(f"198.18.0.12 {KEY}\n")


@pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="needs OpenSSH")
def test_ssh_finds_a_worker_in_the_rendered_known_hosts(tmp_path):
    known_hosts = tmp_path / "tunnel_known_hosts"
    known_hosts.write_text(render("llamafleet/etc/tunnel_known_hosts.j2", entries=[f"[198.18.0.21]:8022 {KEY}"]))
    found = subprocess.run(["ssh-keygen", "-F", "[198.18.0.21]:8022", "-f", str(known_hosts)], capture_output=True, text=True)
    assert found.returncode == 0 and KEY in found.stdout


# Templates written whole to a host (the rest are fragments of these, or scripts run by `sh -c`).
WHOLE_FILES = [
    "etc/sysctl.d/90-llamafleet.conf.j2",
    "etc/iptables/llamafleet.rules.j2",
    "etc/nftables.d/llamafleet.nft.j2",
    "runit/run.j2",
    "runit/log-run.j2",
    "systemd/service.j2",
    "termux/boot.sh.j2",
    "llamafleet/etc/tunnel_known_hosts.j2",
    "llamafleet/etc/rpc-port.j2",
    "llamafleet/libexec/llamafleet-build.sh.j2",
    "llamafleet/marker.j2",
]


@pytest.mark.parametrize("relative", WHOLE_FILES)
def test_each_whole_file_says_it_is_managed_in_its_first_lines(relative):
    text = (TEMPLATES / relative).read_text()
    without_template_comments = re.sub(r"\{#.*?#\}", "", text, flags=re.S).lstrip()
    assert "Managed by llamafleet" in "\n".join(without_template_comments.splitlines()[:2])


def test_every_template_is_used():
    """Named by the code that renders it, or included by another template."""
    code = "\n".join(path.read_text() for folder in ("llamafleet", "tasks") for path in (REPO / folder).rglob("*.py"))
    included = "\n".join(path.read_text() for path in TEMPLATES.rglob("*.j2"))
    unused = [
        str(relative)
        for relative in (path.relative_to(TEMPLATES) for path in TEMPLATES.rglob("*.j2"))
        if f'"{relative}"' not in code and f'include "{relative}"' not in included
    ]
    assert unused == []
