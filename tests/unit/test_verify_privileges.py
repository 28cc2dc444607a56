"""The verify suite's least-privilege checks (llamafleet/verify_suite/test_privileges.py) run on
canned host output: they pass on a master as deployed and fail, naming the host, on one whose
llama-server still runs as root or whose API key others can read."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from llamafleet.layout import paths_for
from llamafleet.plan import HostInput, make_plan
from llamafleet.settings import settings_for
from llamafleet.verify_suite import test_privileges as checks
from llamafleet.verify_suite.privileges import PS_COMMAND, stat_chain_command

from test_privilege_oracles import GROUP, MASTER_PS, PASSWD

BASE = "/opt/llamafleet"
LINUX = {"platform": "linux", "home": "/root", "service_manager": "runit"}
TERMUX = {"platform": "termux", "home": "/data/data/com.termux/files/home", "prefix": "/data/data/com.termux/files/usr",
          "service_manager": "termux-services"}
DATA = {
    "linux1": {"ssh_hostname": "198.18.0.11", "llama_role": "master", "model_url": "https://example.invalid/m.gguf"},
    "phone1": {"ssh_hostname": "198.18.0.101", "ssh_port": 8022, "model_url": "https://example.invalid/m.gguf"},
    "linux2": {"ssh_hostname": "198.18.0.12", "model_url": "https://example.invalid/m.gguf"},
}


def plan():
    devices = {"linux1": LINUX, "phone1": TERMUX, "linux2": LINUX}
    return make_plan([HostInput(name, data, {"MemInfo": {"total_mb": 8000}, "DevicePlatform": devices[name]},
                                ("termux",) if name == "phone1" else ()) for name, data in DATA.items()], 300)


def chain_output(path: str, file_mode: str = "640", etc_mode: str = "750") -> str:
    return "\n".join([f"{file_mode} root llamafleet {path}", f"{etc_mode} root llamafleet {BASE}/etc",
                      f"755 root root {BASE}", "755 root root /opt", "755 root root /"]) + "\n"


class FakeHost:
    """testinfra's host: each command answers what it was given, anything else fails."""

    def __init__(self, answers: dict[str, str], files: dict[str, tuple] | None = None):
        self.answers, self.files = answers, files or {}

    def run(self, command: str):
        if command in self.answers:
            return SimpleNamespace(rc=0, stdout=self.answers[command], stderr="")
        return SimpleNamespace(rc=1, stdout="", stderr=f"unexpected: {command}")

    def check_output(self, command: str) -> str:
        result = self.run(command)
        assert result.rc == 0, result.stderr
        return result.stdout.rstrip("\n")

    def file(self, path: str):
        user, group, mode = self.files[path]
        return SimpleNamespace(user=user, group=group, mode=mode)


def master_node(answers, files=None):
    cluster_plan = plan()
    planned = cluster_plan.host("linux1")
    node = SimpleNamespace(name="linux1", planned=planned, settings=settings_for("linux1", DATA["linux1"]),
                           paths=paths_for(planned.base), service_manager="runit", platform=LINUX, is_termux=False,
                           host=FakeHost(answers, files))
    return node, SimpleNamespace(plan=cluster_plan, data=DATA)


def test_the_process_check_passes_on_the_master_as_deployed_and_fails_with_root_left():
    node, cluster = master_node({PS_COMMAND: MASTER_PS})
    checks.test_every_llamafleet_process_runs_as_the_service_user_not_root(node, cluster)
    as_root = MASTER_PS.replace("llamafleet                          60", "root                                60")
    node, cluster = master_node({PS_COMMAND: as_root})
    with pytest.raises(AssertionError, match="linux1: llama-server \\(pid 60\\) runs as root, not llamafleet"):
        checks.test_every_llamafleet_process_runs_as_the_service_user_not_root(node, cluster)


def secrets_answers(**modes) -> dict[str, str]:
    answers = {"getent passwd": PASSWD, "getent group": GROUP}
    for name in ("api-key", "tunnel_ed25519"):
        path = f"{BASE}/etc/{name}"
        answers[stat_chain_command(path)] = chain_output(path, **modes)
    return answers


def test_the_secrets_check_passes_as_deployed_and_fails_when_all_may_read_the_key():
    files = {f"{BASE}/etc/api-key": ("root", "llamafleet", 0o640)}
    node, cluster = master_node(secrets_answers(), files)
    checks.test_only_root_and_the_service_user_read_the_secrets(node, cluster)
    node, cluster = master_node(secrets_answers(file_mode="644", etc_mode="755"), files)
    with pytest.raises(AssertionError, match=r"linux1: /opt/llamafleet/etc/api-key can be read by \*, alice, daemon, "
                                             r"llamafleet, root; wanted root and llamafleet alone"):
        checks.test_only_root_and_the_service_user_read_the_secrets(node, cluster)
    # The mode as planned, but the directory closed to the service: it could not read its key.
    node, cluster = master_node(secrets_answers(etc_mode="700"), files)
    with pytest.raises(AssertionError, match="api-key can be read by root; wanted root and llamafleet alone"):
        checks.test_only_root_and_the_service_user_read_the_secrets(node, cluster)
