"""llamafleet's base directory: the deploy marks the one it makes, `llamafleet remove` deletes a
marked one whole and refuses an unmarked one, naming host and path (llamafleet/serving/basedir.py).

The last tests run the two task files for real with pyinfra on this machine (@local), on a base
directory under pytest's tmp_path, as test_build_source.py runs tasks/source.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pyinfra.api import StringCommand
from pyinfra.context import ctx_host, ctx_state
from scratch import FakeHost

from llamafleet.layout import BASE_MARKER, paths_for
from llamafleet.serving import basedir

REPO = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).parent / "pyinfra")
BASE = "/opt/llamafleet"


def run_op(operation, found: dict, **kwargs) -> tuple[list[str], list[str]]:
    fake = FakeHost("board", {"BaseDirectory": found})
    with ctx_state.use(object()), ctx_host.use(fake):
        commands = [c.get_raw_value() if isinstance(c, StringCommand) else c for c in operation._inner(**kwargs)]
    return commands, fake.noops


def fact_on(path: Path) -> dict:
    fact = basedir.BaseDirectory()
    output = subprocess.run(["sh", "-c", fact.command(str(path))], capture_output=True, text=True, check=True)
    return fact.process(output.stdout.splitlines())


def test_the_marker_is_in_the_layout_and_says_what_it_is():
    assert paths_for(BASE).marker == f"{BASE}/{BASE_MARKER}" == "/opt/llamafleet/.llamafleet"
    text = basedir.marker_text(BASE)
    assert text.startswith(basedir.MARKER_HEADER) and BASE in text and "llamafleet remove" in text


def test_the_fact_tells_absent_marked_unmarked_link_and_file(tmp_path):
    base = tmp_path / "lf"
    assert fact_on(base) == {"kind": "absent", "marked": False}
    base.mkdir()
    assert fact_on(base) == {"kind": "directory", "marked": False}
    (base / BASE_MARKER).write_text("someone's notes\n")  # the name alone is not the marker
    assert fact_on(base)["marked"] is False
    (base / BASE_MARKER).write_text(basedir.marker_text(str(base)))
    assert fact_on(base) == {"kind": "directory", "marked": True}
    (tmp_path / "link").symlink_to(base)
    assert fact_on(tmp_path / "link") == {"kind": "link", "marked": False}
    (tmp_path / "file").write_text("")
    assert fact_on(tmp_path / "file") == {"kind": "other", "marked": False}


# --- the deploy: base_marked ------------------------------------------------------------------


def test_the_deploy_makes_a_missing_base_with_its_marker():
    commands, _ = run_op(basedir.base_marked, {"kind": "absent", "marked": False}, base=BASE)
    assert commands[0] == f"mkdir -p {BASE}"
    assert commands[1].startswith("printf %s '# Managed by llamafleet") and commands[1].endswith(f"> {BASE}/.llamafleet")


def test_the_deploy_leaves_an_existing_base_as_it_is_marked_or_not():
    assert run_op(basedir.base_marked, {"kind": "directory", "marked": True}, base=BASE) == (
        [], [f"{BASE} is llamafleet's (marked)"])
    commands, noops = run_op(basedir.base_marked, {"kind": "directory", "marked": False}, base=BASE)
    assert commands == [] and "no .llamafleet marker" in noops[0]


# --- remove: base_removed ---------------------------------------------------------------------


def test_a_marked_base_is_deleted_whole():
    assert run_op(basedir.base_removed, {"kind": "directory", "marked": True}, base=BASE) == ([f"rm -rf {BASE}"], [])


def test_no_base_is_a_noop():
    assert run_op(basedir.base_removed, {"kind": "absent", "marked": False}, base=BASE) == (
        [], [f"{BASE} is not there"])


@pytest.mark.parametrize("kind", ["directory", "link", "other"])
def test_an_unmarked_base_is_refused_naming_host_and_path(kind):
    commands, _ = run_op(basedir.base_removed, {"kind": kind, "marked": False}, base=BASE)
    assert len(commands) == 1 and "rm " not in commands[0]
    result = subprocess.run(["sh", "-c", commands[0]], capture_output=True, text=True)
    assert result.returncode != 0  # the host fails: the run ends in an error
    assert result.stderr.startswith(f"board: llamafleet_dir: {BASE} ") and "not deleted" in result.stderr


def test_root_is_never_deleted_even_marked():
    commands, _ = run_op(basedir.base_removed, {"kind": "directory", "marked": True}, base="/")
    assert not any(command.startswith("rm ") for command in commands)
    assert "board: llamafleet_dir: / is the root directory" in commands[0]


# --- real runs on this machine ----------------------------------------------------------------


def pyinfra_local(task: str, base: Path) -> subprocess.CompletedProcess:
    args = [PYINFRA, "-y", "@local", "--data", f"llamafleet_dir={base}", task]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_deploy_marks_remove_deletes_and_each_second_run_changes_nothing(tmp_path):
    base = tmp_path / "lf"
    first = pyinfra_local("tasks/base.py", base)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (base / BASE_MARKER).read_text() == basedir.marker_text(str(base))
    again = pyinfra_local("tasks/base.py", base)
    assert "[@local] No changes" in again.stdout + again.stderr

    (base / "models").mkdir()
    (base / "models" / "m.gguf").write_text("weights")
    removed = pyinfra_local("tasks/remove/base.py", base)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not base.exists() and tmp_path.is_dir()
    second = pyinfra_local("tasks/remove/base.py", base)
    assert second.returncode == 0 and "[@local] No changes" in second.stdout + second.stderr


def test_a_directory_that_was_there_is_never_marked_nor_deleted(tmp_path):
    base = tmp_path / "mine"
    base.mkdir()
    (base / "notes.txt").write_text("mine")
    assert pyinfra_local("tasks/base.py", base).returncode == 0
    assert not (base / BASE_MARKER).exists()

    refused = pyinfra_local("tasks/remove/base.py", base)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert f"@local: llamafleet_dir: {base} has no .llamafleet marker" in output
    assert (base / "notes.txt").read_text() == "mine"
