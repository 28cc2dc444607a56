"""The master's tunnel key line in a worker's authorized_keys: found by the key (as the deploy finds
it), removed with pyinfra's files.line, every other line kept, and a "/" in the key harmless.

pyinfra's files.line deletes with sed's `/PATTERN/d` without escaping the pattern: with the key's
base64 pasted in, a "/" in it ended the pattern and the rest became sed commands (`a` appended a
line of garbage instead of deleting). The files.line commands run here on a real file.
"""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest
from pyinfra.context import ctx_host, ctx_state
from pyinfra.facts.files import FindInFile
from pyinfra.operations import files

from llamafleet.serving.tunnels import authorized_key_line, authorized_key_pattern

# ed25519 public keys whose base64 field holds "/" (and "+"), as about two in three do.
TUNNEL_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE/x+eQwT3b0q/9LmZkR2vYc7sJd1NfUoH4pXa8gWl3e llamafleet-tunnel"
USER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKp/7dWq2bZ+Lm0vTQx9sYc4HfJ1uN8aRz3gE6oPq5Vw alice@laptop"


class LineHost:
    """A host whose FindInFile fact is answered by running the fact's own command here."""

    name = "phone1"
    data: dict = {}

    def __init__(self):
        self.noops: list[str] = []

    def get_fact(self, cls, **kwargs):
        assert cls is FindInFile
        fact = FindInFile()
        command = fact.command(**kwargs)
        output = run(command.get_raw_value()).stdout.splitlines()
        return fact.process(output) if output else None

    def noop(self, text):
        self.noops.append(text)


def run(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True)


def remove_line(path, public_key: str) -> tuple[list[str], list[str]]:
    """Run what tasks/remove/keys.py asks files.line for; the commands and noops."""
    fake = LineHost()
    state = SimpleNamespace(config=SimpleNamespace(DIFF=False))
    with ctx_state.use(state), ctx_host.use(fake):
        commands = [c.get_raw_value() for c in files.line._inner(
            path=str(path), line=authorized_key_pattern(public_key), present=False)]
    for command in commands:
        assert run(command).returncode == 0, command
    return commands, fake.noops


def test_only_llamafleets_line_goes_and_a_second_run_changes_nothing(tmp_path):
    keys = tmp_path / "authorized_keys"
    ours = authorized_key_line(TUNNEL_KEY, 50052)
    keys.write_text(f"{USER_KEY}\n{ours}\nssh-rsa AAAAB3Nza/other bob\n")
    commands, _ = remove_line(keys, TUNNEL_KEY)
    assert len(commands) == 1
    assert keys.read_text() == f"{USER_KEY}\nssh-rsa AAAAB3Nza/other bob\n"

    assert remove_line(keys, TUNNEL_KEY)[0] == []  # nothing matches now: no command


def test_no_authorized_keys_file_is_no_command(tmp_path):
    assert remove_line(tmp_path / "authorized_keys", TUNNEL_KEY)[0] == []


def test_the_pattern_holds_no_slash_and_finds_the_key_only():
    pattern = authorized_key_pattern(TUNNEL_KEY)
    assert "/" not in pattern
    assert run(f"printf '%s\\n' '{authorized_key_line(TUNNEL_KEY, 50052)}' | grep -c -e '{pattern}'").stdout.strip() == "1"
    assert run(f"printf '%s\\n' '{USER_KEY}' | grep -c -e '{pattern}'").stdout.strip() == "0"


@pytest.mark.parametrize("key", [TUNNEL_KEY, USER_KEY])
def test_a_slash_in_the_key_would_break_the_unescaped_pattern(tmp_path, key):
    """Why the pattern swaps "/" for ".": the key pasted as it is does not delete its line."""
    keys = tmp_path / "authorized_keys"
    keys.write_text(f"{key}\n")
    blob = key.split()[1]
    run(f"sed -i '/^.*{blob}.*$/d' {keys}")
    assert key in keys.read_text()
