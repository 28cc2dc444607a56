"""The product package stands alone: it never imports the lab, and each wheel carries only its own.

The lab (lab/, distribution `llamafleet-lab`, package `llamafleet_lab`) is installed for the demo
and the tests; the product's `llamafleet` command reaches it only through the
`llamafleet.commands` entry points the lab declares.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the checks are the same on 3.10
setuptools = pytest.importorskip("setuptools")

REPO = Path(__file__).resolve().parents[2]
PRODUCT = REPO / "llamafleet"
LAB = REPO / "lab"
# What the lab was called while it lived in the product, and what it is called now.
LAB_MODULES = ("llamafleet_lab", "llamafleet.lab", "llamafleet.assets")


def _names_the_lab(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in LAB_MODULES)


def lab_references(source: str) -> list[str]:
    """Every import of the lab in one file, and every string naming a lab module (a module
    imported by name, as `importlib.import_module("llamafleet.lab.cli")` would)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _names_the_lab(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from llamafleet import assets` names the lab in what it imports, not in its module
            names = [node.module] if _names_the_lab(node.module) else [f"{node.module}.{alias.name}" for alias in node.names]
            found += [name for name in names if _names_the_lab(name)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _names_the_lab(node.value):
            found.append(node.value)
    return found


def test_the_reference_finder_sees_each_way_of_naming_the_lab():
    source = (
        "import llamafleet_lab\n"
        "from llamafleet.lab import up\n"
        "from llamafleet import assets, plan\n"
        "MODULES = ('llamafleet.lab.cli', 'llamafleet.cpu.cli')\n"
        "import llamafleet.layout\n"
    )
    assert lab_references(source) == ["llamafleet_lab", "llamafleet.lab", "llamafleet.assets", "llamafleet.lab.cli"]


def test_the_product_never_imports_the_lab():
    offenders = {
        str(path.relative_to(REPO)): references
        for path in sorted(PRODUCT.rglob("*.py"))
        if (references := lab_references(path.read_text()))
    }
    assert offenders == {}


def _package_settings(project: Path) -> tuple[list[str], dict]:
    tool = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["setuptools"]
    return tool["packages"]["find"]["include"], tool.get("package-data", {})


def test_the_product_wheel_holds_the_product_only():
    include, package_data = _package_settings(REPO)
    packages = setuptools.find_packages(where=str(REPO), include=include)
    assert "llamafleet" in packages and "llamafleet.operations" in packages
    assert all(package == "llamafleet" or package.startswith("llamafleet.") for package in packages)
    assert not any("lab" in pattern for patterns in package_data.values() for pattern in patterns)
    # the CPU table, read at import, is the product's own data file
    assert "cpu/table.yaml" in package_data["llamafleet"]


def test_the_lab_wheel_holds_the_lab_and_its_stand_in_programs():
    include, package_data = _package_settings(LAB)
    assert setuptools.find_packages(where=str(LAB), include=include) == ["llamafleet_lab"]
    assert package_data == {"llamafleet_lab": ["bin/*"]}
    assert (LAB / "llamafleet_lab" / "bin" / "pkg").is_file()
    assert not (PRODUCT / "lab").exists() and not (PRODUCT / "assets.py").exists()


def test_the_lab_depends_on_the_product_not_the_other_way():
    product = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lab = tomllib.loads((LAB / "pyproject.toml").read_text())["project"]
    assert lab["name"] == "llamafleet-lab"
    assert "llamafleet" in lab["dependencies"]
    assert not any("lab" in requirement for requirement in product["dependencies"])
