"""Every package the code or the tests import is declared in pyproject.toml: the package's own
imports in its dependencies, test-only ones in the `dev` extra. A package installed by hand on
one machine can then never hide a missing requirement from a newcomer's fresh install."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OWN = {"pipeline", "tests", "benchmarks", "__future__"}
# Modules of the project's own folders imported by their file name (docs/ is no package: its
# MkDocs hook and tests import `reference_pages` and `mlflow_names` from beside it).
LOCAL = {path.stem for folder in ("tests", "benchmarks", "docs")
         for path in (ROOT / folder).rglob("*.py")}


def normalized(requirement: str) -> str:
    """`scikit-learn>=1.6` → `scikit-learn`; names compared as PEP 503 says."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement.strip()).group(0)
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {normalized(r) for r in project["dependencies"]}
    dev = {normalized(r) for r in project["optional-dependencies"]["dev"]}
    return runtime, runtime | dev


def imported(folder: str) -> dict[str, str]:
    """Top-level module → first file importing it, for every absolute import under `folder`."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OWN | LOCAL:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def undeclared(modules: dict[str, str], allowed: set[str]) -> list[str]:
    providers = packages_distributions()
    missing = []
    for module, where in sorted(modules.items()):
        distributions = {normalized(d) for d in providers.get(module, [])}
        if not distributions & allowed:
            names = ", ".join(sorted(distributions)) or "not installed here"
            missing.append(f"{module} (imported by {where}; distribution: {names})")
    return missing


def test_the_package_imports_only_its_declared_dependencies():
    runtime, _ = declared()
    assert undeclared(imported("src/pipeline"), runtime) == []


@pytest.mark.parametrize("folder", ["tests", "benchmarks", "docs"])
def test_tests_benchmarks_and_docs_import_only_declared_packages(folder):
    _, everything = declared()
    assert undeclared(imported(folder), everything) == []


def test_the_check_catches_a_package_nobody_declared():
    """The check itself: `hypothesis` (installed, imported by the fuzz tests) counts as missing
    once the dev extra is left out."""
    runtime, _ = declared()
    missing = undeclared({"hypothesis": "tests/test_fuzz.py"}, runtime)
    assert missing == ["hypothesis (imported by tests/test_fuzz.py; distribution: hypothesis)"]
