"""Mutation score of the pure core: how many small wrong versions of each module tests/unit catches.

A mutant is the module with one small change (`<` made `<=`, a number plus one, a string or an
f-string changed, `and` made `or`, `True` made `False`, an assignment made `None`, a decorator
dropped...). A mutant is killed when at least one test fails on it; one that survives is a wrong
product the tests would let through.

Tool: mutmut 2.5.1 (`pip install -e '.[mutation]'`). mutmut 3 mutates only inside undecorated
functions; this core keeps much of its behaviour in module-level tables (the settings'
declarations: kinds, ranges, choices, patterns; the plan's QUANT_BITS; tunnels.py's key options)
and in pyinfra operations (`@operation()` in firewall.py), which only mutmut 2 mutates.

How a run stays within 2 cores:
- one traced run of tests/unit first records which tests call each function of the modules (and
  which tests name a module-level table); tests that fail without any mutant are left out;
- each mutant then runs only the tests that call the function it is in (a module-level mutant:
  every test that calls into or names the module), fastest first, stopping at the first failure;
- each module is mutated in its own scratch copy of the tree under /tmp (mutmut 2 edits the file
  in place, so the work tree is never touched), `--jobs` modules at once (default 2).
Nothing here needs root or the lab; the tests it runs are tests/unit's, so as root their
network-namespace checks run too. A run takes about 20 minutes on 2 cores (1161 s measured, with
other work on the machine; the 1286 mutants of the five modules).

    python bench/mutation_score.py [--jobs 2] [--modules plan.py,firewall.py] [--without TEST_FILE ...]

Prints per module the mutants in total, killed, survived and timed out, and the killed share
(killed / total; a timeout is not counted as killed), then every survivor, and writes
bench/results/mutation.json (survivors with their line and mutated text, for review).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, REPO, report  # noqa: E402

MODULES = [
    # llamafleet/validate.py until it was split by what its rules look at; the per-key rules
    # (kinds, ranges, choices, patterns) are the settings' declarations since.
    "llamafleet/settings/declare.py",
    "llamafleet/settings/tunables.py",
    "llamafleet/settings/patterns.py",
    "llamafleet/validate/schema.py",
    "llamafleet/validate/host_rules.py",
    "llamafleet/validate/network_rules.py",
    "llamafleet/validate/cluster_rules.py",
    "llamafleet/validate/group_rules.py",
    # llamafleet/plan.py until it became a package: the placing, and one function per decision.
    "llamafleet/plan/make.py",
    "llamafleet/plan/decide.py",
    "llamafleet/plan/firewall.py",
    "llamafleet/cpu/flags.py",
    "llamafleet/serving/firewall.py",
    "llamafleet/serving/tunnels.py",
]
TESTS = "tests/unit"
TOOL = "mutmut 2.5.1"
GOAL = 0.85
SCRATCH = Path("/tmp/llamafleet-mutation")
# Not copied into a scratch tree: environments, caches, results, and mutmut's own state.
IGNORED = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.pyc", "*.egg-info", ".pytest_cache",
                                 ".mutmut-cache", "results", ".llamafleet", "build", "mutants")
STATUSES = ("ok_killed", "ok_suspicious", "bad_timeout", "bad_survived", "skipped", "untested")

# mutmut 2 imports mutmut_config from its working directory and calls pre_mutation before each
# mutant: this one picks the tests of the innermost function around the mutated line.
MUTMUT_CONFIG = '''"""Written by bench/mutation_score.py: each mutant runs the tests that call its function."""
import json

_SELECTION = json.load(open(".mutation/selection.json"))


def pre_mutation(context):
    line = context.mutation_id.line_number + 1
    inner = None
    for start, end, list_file in _SELECTION["scopes"]:
        if start <= line <= end and (inner is None or start >= inner[0]):
            inner = (start, list_file)
    list_file = inner[1] if inner else _SELECTION["module"]
    context.config.test_command = _SELECTION["command"] + " " + list_file
'''


# Processes this script started in their own process groups (the tracing run, mutmut runs): ended
# with their groups if the script is stopped.
_RUNNING: list[subprocess.Popen] = []


# --- inside a scratch tree: the test command mutmut runs per mutant ----------------------------


def run_tests(list_file: str) -> int:
    """pytest on the test ids listed in `list_file`, exit 0 when all pass and 1 otherwise: mutmut 2
    counts only exit code 1 as "killed", and a mutant that breaks an import makes pytest exit 2
    (collection error)."""
    import pytest

    # pyinfra_cli patches threading with gevent when first imported; first imported from inside
    # another import (llamafleet.inventory_data does so lazily) after some tests have run, that
    # breaks the import lock ("cannot release un-acquired lock"). A whole tests/unit run imports
    # it early by chance; a chosen subset may not, so import it first, as the CLI does.
    import pyinfra_cli  # noqa: F401

    tests = Path(list_file).read_text().splitlines()
    code = pytest.main(["-x", "-q", "--no-header", "-p", "no:cacheprovider", *tests])
    return 0 if code == 0 else 1


# --- which tests exercise which function ----------------------------------------------------------


class _CallMap:
    """A pytest plugin that records, per test: which functions of MODULES it calls (by file and
    first line of the code object, during its setup, call or teardown), which modules it names
    (its source uses a table or function the test file imported from the module), how long it
    takes and whether it fails."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.current: str | None = None
        self.calls: dict[str, dict[int, set[str]]] = {}
        self.names: dict[str, set[str]] = {}
        self.seconds: dict[str, float] = {}
        self.failed: set[str] = set()
        self.paths = {str(root / module): module for module in MODULES}

    def _profile(self, frame, event, arg):
        if event == "call" and self.current is not None:
            module = self.paths.get(frame.f_code.co_filename)
            if module:
                by_line = self.calls.setdefault(module, {})
                by_line.setdefault(frame.f_code.co_firstlineno, set()).add(self.current)

    def _named(self, item) -> None:
        import inspect

        try:
            source = inspect.getsource(item.function)
        except (AttributeError, OSError, TypeError):
            return
        namespace = vars(item.module)
        for module in MODULES:
            target = sys.modules.get(module[:-3].replace("/", "."))
            if target is None:
                continue
            imported = [name for name in _top_level_names(self.root / module)
                        if name in namespace and namespace[name] is getattr(target, name, None)]
            if any(re.search(rf"\b{re.escape(name)}\b", source) for name in imported):
                self.names.setdefault(module, set()).add(item.nodeid)

    def pytest_runtest_setup(self, item):
        self.current = item.nodeid
        self._named(item)

    def pytest_runtest_logreport(self, report):
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration
        if report.failed:
            self.failed.add(report.nodeid)

    def pytest_sessionstart(self, session):
        import threading

        sys.setprofile(self._profile)
        threading.setprofile(self._profile)

    def pytest_sessionfinish(self, session, exitstatus):
        sys.setprofile(None)

    def result(self, exitstatus: int) -> dict:
        return {
            "rc": int(exitstatus),
            "calls": {m: {str(line): sorted(t) for line, t in by_line.items()} for m, by_line in self.calls.items()},
            "names": {m: sorted(t) for m, t in self.names.items()},
            "seconds": self.seconds,
            "failed": sorted(self.failed),
        }


def _top_level_names(path: Path) -> set[str]:
    """Names a module defines at its top level (functions, classes, constants)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _functions(path: Path) -> list[tuple[int, int, int]]:
    """(first line of the code object, def line, last line) of every function, nested ones too.
    A decorated function's code starts at its first decorator; its body from the def line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            found.append((first, node.lineno, node.end_lineno))
    return found


def map_tests(tree: Path) -> tuple[dict, list[str]]:
    """Run tests/unit once, traced. Per module: the tests for its module-level lines and, per
    function, the tests that call it; each list fastest first."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import mutation_score as m; "
        "from pathlib import Path; import pytest; plugin = m._CallMap(Path.cwd()); "
        "rc = pytest.main(['-q', '-p', 'no:cacheprovider', sys.argv[2]], plugins=[plugin]); "
        "print('CALLMAP' + json.dumps(plugin.result(rc)))"
    )
    process = subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).resolve().parent), TESTS], cwd=tree,
                               env=_env(tree), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    _RUNNING.append(process)
    stdout, stderr = process.communicate()
    line = next((line for line in stdout.splitlines() if line.startswith("CALLMAP")), None)
    if line is None:
        sys.exit(f"mapping tests failed:\n{stdout[-3000:]}\n{stderr[-2000:]}")
    data = json.loads(line[len("CALLMAP"):])
    failed = set(data["failed"])
    if data["rc"] not in (0, 1) or len(failed) > 10:
        sys.exit(f"tests/unit cannot run on the unmutated tree:\n{stdout[-3000:]}")
    for test in sorted(failed):
        # A mutant is judged by tests that pass without it: a test failing on the work tree as it
        # is (someone's change under way) is left out, and said so.
        print(f"  left out, fails without any mutant: {test}", flush=True)

    def fastest_first(tests) -> list[str]:
        return sorted(set(tests) - failed, key=lambda t: (data["seconds"].get(t, 0.0), t))

    selection = {}
    for module in MODULES:
        calls = {int(line): tests for line, tests in data["calls"].get(module, {}).items()}
        everything = set(data["names"].get(module, [])).union(*calls.values())
        scopes = [(body, last, fastest_first(calls[first]))
                  for first, body, last in _functions(tree / module) if calls.get(first)]
        selection[module] = {"module": fastest_first(everything), "scopes": scopes}
    return selection, sorted(failed)


# --- one module -----------------------------------------------------------------------------------


def _env(tree: Path) -> dict[str, str]:
    # The scratch tree's llamafleet wins over the venv's editable install, and no stale .pyc of a
    # same-size mutant made within the same second can be loaded instead of the mutant.
    return {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}


def scratch_tree(name: str, source: Path = REPO) -> Path:
    tree = SCRATCH / name
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(source, tree, ignore=IGNORED, symlinks=True)
    return tree


def _tree_name(module: str) -> str:
    return re.sub(r"\W", "_", module)


def _mutated_line(tree: Path, mutant_id: int) -> tuple[str, str]:
    """The original and mutated text of one mutant (from `mutmut show`)."""
    shown = subprocess.run([str(BIN / "mutmut"), "show", str(mutant_id)], cwd=tree, env=_env(tree),
                           capture_output=True, text=True).stdout
    minus = [line[1:].strip() for line in shown.splitlines() if line.startswith("-") and not line.startswith("---")]
    plus = [line[1:].strip() for line in shown.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return " / ".join(minus), " / ".join(plus)


def _stop(process: subprocess.Popen) -> None:
    """End a mutmut run and the workers it spawned (its process group), if still running."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()


def _stop_all_and_exit(*_) -> None:
    for process in _RUNNING:
        _stop(process)
    os._exit(130)


def prepare(tree: Path, selection: dict) -> str:
    """Write the test lists and mutmut_config.py into a module's tree; return mutmut's runner."""
    command = f"{sys.executable} {Path(__file__).resolve()} --run-tests"
    folder = tree / ".mutation"
    folder.mkdir()
    (folder / "module.txt").write_text("\n".join(selection["module"]) + "\n")
    scopes = []
    for index, (start, end, tests) in enumerate(selection["scopes"]):
        (folder / f"scope-{index}.txt").write_text("\n".join(tests) + "\n")
        scopes.append((start, end, f".mutation/scope-{index}.txt"))
    (folder / "selection.json").write_text(json.dumps({"command": command, "module": ".mutation/module.txt",
                                                       "scopes": scopes}))
    (tree / "mutmut_config.py").write_text(MUTMUT_CONFIG)
    return f"{command} .mutation/module.txt"


def score_module(module: str, selection: dict) -> dict:
    tree = SCRATCH / _tree_name(module)
    runner = prepare(tree, selection)
    baseline = subprocess.run(runner.split(), cwd=tree, env=_env(tree), capture_output=True, text=True)
    if baseline.returncode != 0:
        raise RuntimeError(f"{module}: its tests fail without any mutant:\n{baseline.stdout[-3000:]}")
    started = time.monotonic()
    # Its own process group: mutmut's worker processes end with it.
    process = subprocess.Popen(
        [str(BIN / "mutmut"), "run", "--paths-to-mutate", module, "--runner", runner, "--tests-dir", TESTS,
         "--simple-output", "--no-progress"],
        cwd=tree, env=_env(tree), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    _RUNNING.append(process)
    try:
        output, _ = process.communicate()
    finally:
        _stop(process)
    seconds = time.monotonic() - started
    cache = tree / ".mutmut-cache"
    if not cache.exists():
        raise RuntimeError(f"mutmut made no results for {module}:\n{output[-3000:]}")
    with sqlite3.connect(cache) as db:
        rows = db.execute(
            "SELECT Mutant.id, Mutant.status, Line.line_number FROM Mutant JOIN Line ON Mutant.line = Line.id "
            'ORDER BY Line.line_number, Mutant."index"'
        ).fetchall()
    counts = {status: 0 for status in STATUSES}
    survivors = []
    for mutant_id, status, line_number in rows:
        counts[status] = counts.get(status, 0) + 1
        if status in ("bad_survived", "bad_timeout"):
            original, mutated = _mutated_line(tree, mutant_id)
            survivors.append({"id": mutant_id, "status": status, "line": line_number + 1,
                              "original": original, "mutated": mutated})
    total = len(rows)
    if counts["untested"] or not total:
        raise RuntimeError(f"mutmut did not finish {module}:\n{output[-3000:]}")
    killed = counts["ok_killed"] + counts["ok_suspicious"]  # suspicious: killed, but slowly
    module_tests = selection["module"]
    return {
        "tests": len(module_tests),
        "test_files": sorted({test.split("::")[0] for test in module_tests}),
        "total": total,
        "killed": killed,
        "survived": counts["bad_survived"],
        "timeout": counts["bad_timeout"],
        "skipped": counts["skipped"],
        "killed_share": killed / total,
        "seconds": round(seconds, 1),
        "survivors": survivors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2, help="modules mutated at once (default 2)")
    parser.add_argument("--modules", default="", help="comma-separated file names, e.g. plan.py,flags.py")
    parser.add_argument("--name", default="mutation", help="results name: bench/results/NAME.json")
    parser.add_argument("--without", nargs="+", default=[], metavar="TEST_FILE",
                        help="leave these test files out (e.g. to measure the score before they were added)")
    parser.add_argument("--run-tests", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_tests:
        sys.exit(run_tests(args.run_tests))
    if not (BIN / "mutmut").exists():
        sys.exit("mutmut is not installed: pip install -e '.[mutation]'")

    chosen = [m for m in MODULES if not args.modules or Path(m).name in args.modules.split(",")]
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _stop_all_and_exit)
    signal.signal(signal.SIGINT, _stop_all_and_exit)
    # One snapshot of the work tree, taken now: the tests and modules of every module's run.
    snapshot = scratch_tree("snapshot")
    for path in args.without:
        (snapshot / path).unlink()
    print("tracing tests/unit to map tests to functions...", flush=True)
    selection, failing = map_tests(snapshot)
    for module in chosen:
        scratch_tree(_tree_name(module), source=snapshot)
        files = sorted({Path(test.split("::")[0]).name for test in selection[module]["module"]})
        print(f"  {module}: {len(selection[module]['module'])} tests in {', '.join(files)}", flush=True)

    results: dict[str, dict] = {}
    errors: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {module: pool.submit(score_module, module, selection[module]) for module in chosen}
        for module, future in futures.items():
            try:
                results[module] = r = future.result()
            except Exception as error:  # one module's failure does not lose the others' figures
                errors[module] = str(error)
                print(f"  FAILED {module}: {error}", flush=True)
                continue
            print(f"  done {module}: {r['killed']}/{r['total']} killed in {r['seconds']:.0f} s", flush=True)
    total_seconds = time.monotonic() - started

    rows = []
    for module, r in results.items():
        rows.append((module, f"{r['total']:4d} mutants  {r['killed']:4d} killed  {r['survived']:3d} survived  "
                             f"{r['timeout']:2d} timeout  -> {r['killed_share']:6.1%} killed "
                             f"({'meets' if r['killed_share'] >= GOAL else 'below'} {GOAL:.0%}; {r['seconds']:.0f} s)"))
    rows.append(("wall time", f"{total_seconds:.0f} s with {args.jobs} jobs"))
    report(args.name, rows, {
        "tool": TOOL,
        "goal_killed_share": GOAL,
        "jobs": args.jobs,
        "seconds": round(total_seconds, 1),
        "left_out_failing_tests": failing,
        "left_out_test_files": args.without,
        "modules": results,
        "errors": errors,
    })
    for module, r in results.items():
        for s in r["survivors"]:
            print(f"  {'timeout' if s['status'] == 'bad_timeout' else 'survived'} {module}:{s['line']}: "
                  f"{s['original']}  ->  {s['mutated']}")
    if errors:
        sys.exit(f"failed: {', '.join(errors)}")


if __name__ == "__main__":
    main()
