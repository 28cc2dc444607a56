"""The CPU table as data: the packaged table.yaml, a user's rows merged over it (group data
`llama_cpu_table`, `cpu-profile --cpu-table`) and the shape checks that name file and row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamafleet.cpu import cli
from llamafleet.cpu.compilers import TUNE_SUPPORT
from llamafleet.cpu.flags import build_flags
from llamafleet.cpu.midr import MIDR_TABLE
from llamafleet.cpu.profile import parse_cpuinfo
from llamafleet.cpu.table import BUILTIN_PATH, CpuTableError, builtin_table, read_table, table_for
from llamafleet.facts import CpuProfile
from llamafleet.facts.cpu import SEPARATOR

GCC12 = {"family": "gcc", "version": "12.2.0"}
CLANG19 = {"family": "clang", "version": "19.1.7"}
V82 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"

# Cavium ThunderX-81XX: util-linux knows 0x43/0x0a2, the built-in table does not. GCC 12 and
# clang 14 both accept -mtune=thunderxt81 (checked with Debian 12's aarch64 gcc and clang).
THUNDERX81 = """\
cores:
  - {implementer: 0x43, part: 0x0a2, name: thunderxt81, tune: thunderxt81}
tune:
  - {name: thunderxt81, gcc: 12, clang: 14}
"""


def arm_dump(parts: list[tuple[int, int]], features: str = V82) -> str:
    """An arm64 /proc/cpuinfo with one block per (implementer, part)."""
    return "\n".join(
        f"processor\t: {index}\nFeatures\t: {features}\nCPU implementer\t: {implementer:#04x}\n"
        f"CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {part:#05x}\nCPU revision\t: 0\n"
        for index, (implementer, part) in enumerate(parts)
    )


def write(tmp_path: Path, text: str, name: str = "cpu.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- the packaged file -----------------------------------------------------------------------


def test_the_table_ships_inside_the_package_and_the_modules_read_it():
    assert BUILTIN_PATH.endswith("llamafleet/cpu/table.yaml") and Path(BUILTIN_PATH).is_file()
    table = read_table(BUILTIN_PATH)
    assert dict(table.cores) == dict(MIDR_TABLE)
    assert {name: (row.gcc, row.clang) for name, row in table.tune.items()} == TUNE_SUPPORT
    assert table.cores[(0x48, 0xD40)].name == "hisilicon-cortex-a76"
    assert table.tune["cortex-x4"].substitutes == ("cortex-x3", "cortex-x2")


def test_pyproject_declares_the_table_as_package_data():
    """A wheel holds only the data files pyproject names; without the table nothing imports."""
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert "cpu/table.yaml" in pyproject["tool"]["setuptools"]["package-data"]["llamafleet"]


def test_no_extra_file_is_the_builtin_table():
    assert table_for(None) is builtin_table() and table_for("") is builtin_table()


# --- a user's rows ---------------------------------------------------------------------------


def test_a_new_core_row_changes_the_flags_without_python(tmp_path):
    dump = arm_dump([(0x43, 0x0A2)] * 4)
    before = parse_cpuinfo(dump, "aarch64")
    assert before.cores == {"unknown-0x43-0x0a2": 4} and before.mcpu is None
    assert not any("-mtune" in arg for arg in build_flags(before, GCC12).cmake_args)

    table = table_for(write(tmp_path, THUNDERX81))
    after = parse_cpuinfo(dump, "aarch64", table)
    flags = build_flags(after, GCC12, table=table)
    assert after.cores == {"thunderxt81": 4} and after.mcpu == "thunderxt81"
    assert "-DCMAKE_C_FLAGS=-mtune=thunderxt81" in flags.cmake_args
    assert flags.march == build_flags(before, GCC12).march  # the ISA still comes from Features
    # The built-in rows are all still there.
    assert parse_cpuinfo(arm_dump([(0x41, 0xD0B)]), "aarch64", table).cores == {"cortex-a76": 1}


def test_a_row_with_a_known_key_replaces_the_builtin_row(tmp_path):
    """C1-Pro has no compiler name in the built-in table; a user says: tune as Cortex-A725
    (and the A725's substitutes when the compiler is older)."""
    dump = arm_dump([(0x41, 0xD8B)] * 2)
    table = table_for(write(tmp_path, "cores:\n  - {implementer: 0x41, part: 0xd8b, name: c1-pro, tune: cortex-a725}\n"))
    assert parse_cpuinfo(dump, "aarch64").mcpu is None
    profile = parse_cpuinfo(dump, "aarch64", table)
    assert build_flags(profile, CLANG19, table=table).mcpu == "cortex-a725"
    assert build_flags(profile, GCC12, table=table).mcpu == "cortex-a710"


def test_little_in_a_user_row_changes_the_thread_count(tmp_path):
    dump = arm_dump([(0x41, 0xD05)] * 4 + [(0x43, 0x0A2)] * 4)
    assert parse_cpuinfo(dump, "aarch64").threads == 4  # the unknown part counts as big
    table = table_for(write(tmp_path, "cores:\n  - {implementer: 0x43, part: 0x0a2, name: t81, little: false}\n"
                                      "  - {implementer: 0x41, part: 0xd05, name: cortex-a55, little: false}\n"))
    assert parse_cpuinfo(dump, "aarch64", table).threads == 8


def test_cpu_profile_fact_uses_the_table_it_was_asked_for(tmp_path):
    path = write(tmp_path, THUNDERX81)
    assert CpuProfile.arguments_from_data({"llama_cpu_table": path}) == {"cpu_table": path}
    assert CpuProfile.arguments_from_data({"llama_cpu_table": None}) == {}
    fact = CpuProfile()
    fact.command(**CpuProfile.arguments_from_data({"llama_cpu_table": path}))
    lines = arm_dump([(0x43, 0x0A2)] * 2).splitlines()
    assert fact.process([*lines, SEPARATOR, "aarch64"])["cores"] == {"thunderxt81": 2}
    assert CpuProfile().process([*lines, SEPARATOR, "aarch64"])["cores"] == {"unknown-0x43-0x0a2": 2}


def test_cpu_profile_command_reads_the_same_rows(tmp_path, capsys):
    dump = write(tmp_path, arm_dump([(0x43, 0x0A2)] * 4), "cpuinfo.txt")
    parser = cli.argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["cpu-profile", "--cpuinfo", dump, "--compiler", "clang-14", "--json",
                              "--cpu-table", write(tmp_path, THUNDERX81)])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cores"] == {"thunderxt81": 4} and out["mcpu"] == "thunderxt81"

    args = parser.parse_args(["cpu-profile", "--cpuinfo", dump, "--cpu-table", str(tmp_path / "none.yaml")])
    assert args.func(args) == 2
    assert "none.yaml: no such file" in capsys.readouterr().err


# --- refused files and rows ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, where, says",
    [
        ("cores:\n  - {implementer: 0x41, part: 0xd0b, name: a}\n  - {implementer: 0x41, part: 3339, name: b}\n",
         "line 3 (cores row 2)", "part must be hex"),
        ("cores:\n  - {implementer: 0x41, part: 0xd86, name: x, litle: true}\n", "line 2 (cores row 1)", "unknown key litle"),
        ("cores:\n  - {implementer: 0x41, name: x}\n", "line 2 (cores row 1)", "missing part"),
        ("cores:\n  - {implementer: 0x41, part: 0xd86, name: Cortex A9000}\n", "line 2 (cores row 1)", "lower-case name"),
        ("cores:\n  - {implementer: 0x41, part: 0xd86, name: x, little: yes please}\n", "line 2 (cores row 1)",
         "little must be true or false"),
        ("cores:\n  - {implementer: 0x41, part: 0xd86, name: x}\n\n  - {implementer: 0x41, part: 0xd86, name: y}\n",
         "line 4 (cores row 2)", "already in row 1 (line 2)"),
        ("cores:\n  - just-a-name\n", "line 2 (cores row 1)", "expected a mapping"),
        ("tune:\n  - {name: x, gcc: 12}\n", "line 2 (tune row 1)", "missing clang"),
        ("tune:\n  - {name: x, gcc: twelve, clang: 14}\n", "line 2 (tune row 1)", "gcc must be a major version"),
        ("tune:\n  - {name: x, gcc: 12, clang: 14, substitutes: cortex-a76}\n", "line 2 (tune row 1)",
         "substitutes must be a list"),
    ],
)
def test_a_malformed_row_is_refused_with_file_and_row(tmp_path, text, where, says):
    path = write(tmp_path, text)
    with pytest.raises(CpuTableError) as error:
        table_for(path)
    assert str(error.value).startswith(f"{path}: {where}: ")
    assert says in str(error.value)


@pytest.mark.parametrize(
    "text, says",
    [
        ("", "expected a mapping of sections"),
        ("cores: [\n", "not valid YAML"),
        ("{}\n", "no rows"),
        ("cores:\n  implementer: 0x41\n", "'cores' must be a list of rows"),
        ("x86:\n  levels: []\n", "unknown section x86; this file may have cores, tune (the arm64/x86 ladders"),
        ("core:\n  - {}\n", "unknown section core"),
    ],
)
def test_a_malformed_file_is_refused_with_its_name(tmp_path, text, says):
    path = write(tmp_path, text)
    with pytest.raises(CpuTableError, match=f"^{path}: .*") as error:
        table_for(path)
    assert says in str(error.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(CpuTableError, match="nope.yaml: no such file"):
        table_for(tmp_path / "nope.yaml")


def test_a_broken_copy_of_the_full_table_is_refused(tmp_path):
    """The packaged file goes through the same checks: a ladder row naming an unknown option."""
    text = Path(BUILTIN_PATH).read_text().replace("options: [SSE42]", "options: [SSE4]")
    with pytest.raises(CpuTableError, match=r"line \d+ \(x86.levels row 2\): SSE4 not in x86.options"):
        read_table(write(tmp_path, text))
