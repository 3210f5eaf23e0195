"""The docs site: it builds strictly, and its generated reference covers every config group,
option and key of conf/, every metric of the registry and every command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.metrics import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
import mlflow_names  # noqa: E402  (docs/, not a package)
import reference_pages  # noqa: E402


def conf_keys() -> dict[str, set[str]]:
    """Option file (relative to conf/) -> its keys, read with PyYAML alone."""
    found = {}
    for path in (ROOT / "conf").rglob("*.yaml"):
        content = yaml.safe_load(path.read_text()) or {}
        content.pop("defaults", None)
        found[path.relative_to(ROOT / "conf").as_posix()] = set(reference_pages.flatten(content))
    return found


def test_the_config_reference_names_every_group_option_and_key():
    page = reference_pages.config_page()
    groups = {p.parent.relative_to(ROOT / "conf").as_posix()
              for p in (ROOT / "conf").rglob("*/*.yaml")}
    assert len(groups) >= 9
    for group in groups:
        assert f"## `{group}`" in page
        for option in (ROOT / "conf" / group).glob("*.yaml"):
            assert f"### `{group}={option.stem}`" in page
    keys = conf_keys()
    assert sum(map(len, keys.values())) > 150
    for file, names in keys.items():
        for name in names:
            # a group's keys are written as the command line sets them: cv.n_splits
            assert f"`{name}`" in page or f".{name}`" in page, (file, name)


def test_a_key_takes_its_meaning_from_the_comment_above_or_beside_it():
    options = {(o.group, o.name): o for o in reference_pages.config_options()}
    keys = {k.name: k for k in options[("preprocess", "default")].keys}
    assert keys["preprocess.scale"].default == "standard"
    assert keys["preprocess.scale"].meaning == "standard | minmax | none"
    top = {k.name: k for k in options[("", "config")].keys}
    assert top["metrics.average"].meaning.startswith("Averaging of precision")
    assert top["seed"].default == 42
    folds = {k.name: k for k in options[("cv", "cv_folds")].keys}
    assert folds["cv.batch_folds"].meaning.endswith("false: one fold after another)")


def test_every_key_has_a_meaning():
    """A new key needs a comment in its YAML file (or a row in docs/arguments/pipeline.md)."""
    unexplained = [(o.group, o.name, k.name) for o in reference_pages.config_options()
                   for k in o.keys if not k.meaning]
    assert unexplained == []


def test_hydra_launcher_keys_are_named_as_hydra_sets_them():
    options = {(o.group, o.name): o for o in reference_pages.config_options()}
    names = [k.name for k in options[("hydra/launcher", "ray")].keys]
    assert "hydra.launcher.ray.init.address" in names


def test_the_metric_reference_lists_the_registry():
    page = reference_pages.metrics_page()
    for metric in REGISTRY.values():
        row = next(line for line in page.splitlines() if line.startswith(f"| `{metric.name}` |"))
        assert metric.task in row
        assert ("higher" if metric.greater_is_better else "lower") in row


def test_every_command_of_the_package_is_found():
    assert reference_pages.commands() == ["pipeline", "pipeline.compare", "pipeline.doctor",
                                          "pipeline.predict"]


def test_the_mlflow_names_page_usesplaceholders():
    rules = mlflow_names.placeholders()
    assert mlflow_names.normalise("knn-kfold", rules["names"]) == "<model>-<cv>"
    assert mlflow_names.normalise("compare-vs-svm", rules["names"]) == "compare-vs-<model>"
    assert mlflow_names.normalise("repeat-2/fold-13", rules["names"]) == "repeat-<n>/fold-<n>"
    assert mlflow_names.normalise("test_roc_auc_std", rules["metrics"]) == "test_<metric>_std"
    # a config key that is also a metric's name stays itself
    assert mlflow_names.normalise("trainer.precision", rules["names"]) == "trainer.precision"


@pytest.mark.slow
def test_the_site_builds_strictly_with_every_command_help(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    commands = (site / "reference" / "commands" / "index.html").read_text()
    for module in reference_pages.commands():
        assert f"python -m {module}" in commands
    assert "usage: python -m pipeline.doctor" in commands
    assert (site / "tutorial" / "index.html").exists()


@pytest.mark.slow
def test_the_committed_mlflow_names_page_is_what_the_jobs_write():
    assert mlflow_names.PAGE.read_text() == mlflow_names.generate()


def test_the_site_is_built_outside_the_sources():
    config = (ROOT / "mkdocs.yml").read_text()
    assert "site_dir: site\n" in config and "site/" in (ROOT / ".gitignore").read_text()
