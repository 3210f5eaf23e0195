"""The code keeps the design's picture: the config read once at the entry, layers without
circles, modules of one job each that say what they own, other libraries' internals only in
`compat/`."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "pipeline"
# The entry reads the composed Hydra config; Hydra's own callbacks (sweeps, guards) and the
# resolvers its YAML files call (config) are Hydra's side of it too.
READS_THE_CONFIG = {"__main__.py", "entry.py", "config.py", "sweeps.py", "guards.py"}
MAX_LINES = 400


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


def test_no_module_below_the_entry_sees_a_dictconfig():
    seen = []
    for path in modules():
        if relative(path) in READS_THE_CONFIG:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            named = (node.id if isinstance(node, ast.Name) else
                     node.attr if isinstance(node, ast.Attribute) else
                     next((a.name for a in node.names if a.name == "DictConfig"), None)
                     if isinstance(node, ast.ImportFrom) else None)
            if named == "DictConfig":
                seen.append(f"{relative(path)}:{node.lineno}")
    assert seen == []


def test_every_module_has_one_job_said_in_its_docstring_and_fits_in_400_lines():
    too_long, undocumented = [], []
    for path in modules():
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            too_long.append(f"{relative(path)} ({lines})")
        if not ast.get_docstring(ast.parse(path.read_text())):
            undocumented.append(relative(path))
    assert too_long == [] and undocumented == []


def test_the_import_layers_hold_and_no_module_imports_in_a_circle():
    """import-linter's contracts in pyproject.toml: the layers of the picture (type-only
    imports included) and the siblings that must not know each other."""
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert command, "import-linter is not installed: pip install -e '.[dev]'"
    done = subprocess.run([command, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_layer_broken_on_purpose_is_caught(tmp_path):
    """The contract is live: a copy of the package in which the engine imports the runner
    (a lower layer importing a higher one) fails it."""
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src", copy)
    engine = copy / "pipeline" / "engine.py"
    engine.write_text(engine.read_text() + "\nfrom pipeline import runner  # noqa: E402\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    done = subprocess.run([command, "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
                          check=False, env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "pipeline.engine -> pipeline.runner" in done.stdout


@pytest.mark.parametrize("folder", ["src", "tests", "benchmarks"])
def test_private_members_of_other_objects_are_touched_only_in_compat(folder):
    """ruff's SLF001 (private member access) holds everywhere, `compat/` excepted (pyproject's
    per-file ignores say so)."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    assert ruff, "ruff is not installed: pip install -e '.[dev]'"
    done = subprocess.run([ruff, "check", "--select", "SLF001", "--output-format", "concise",
                           folder], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_contributing_layout_names_every_module():
    """CONTRIBUTING.md's Layout section is the picture a newcomer reads: every module is in it."""
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    layout = contributing[contributing.index("## Layout"):contributing.index("## Tests")]
    missing = []
    for path in modules():
        parts = path.relative_to(PACKAGE).parts
        named = parts[-1] in layout and (len(parts) == 1 or f"{parts[0]}/" in layout)
        if not named:
            missing.append(relative(path))
    assert missing == []
