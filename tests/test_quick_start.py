"""`python -m pipeline --help`, `--cfg job` and a config mistake answer from a fresh interpreter
without importing torch, Lightning, MLflow, matplotlib, scikit-learn or pandas: each case runs
the real entry point in a subprocess that lists, at exit, which of them it imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("torch", "lightning", "mlflow", "matplotlib", "sklearn", "pandas")
MARK = "heavy modules imported: "

# `python -m pipeline ARGS`, then (atexit: after Hydra's own exit too) the heavy top-level
# packages found in sys.modules.
ENTRY = f"""
import atexit, runpy, sys
def _imported():
    found = sorted({{name.split('.')[0] for name in sys.modules}} & set({HEAVY!r}))
    print({MARK!r} + ','.join(found), file=sys.stderr)
atexit.register(_imported)
sys.argv = ['pipeline', *sys.argv[1:]]
runpy.run_module('pipeline', run_name='__main__', alter_sys=True)
"""


def quick(workdir: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """The command's result (its stderr less the report) and the heavy modules it imported."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", ENTRY, *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=120)
    lines = done.stderr.splitlines()
    assert lines and lines[-1].startswith(MARK), done.stderr
    done.stderr = "\n".join(lines[:-1])
    return done, [name for name in lines[-1].removeprefix(MARK).split(",") if name]


def test_help_imports_nothing_heavy(workdir: Path):
    done, heavy = quick(workdir, "--help")
    assert done.returncode == 0, done.stderr
    assert heavy == []
    assert "pipeline: cross-validate a model" in done.stdout
    # Every group with its options, as Hydra lists them (the part made quick).
    assert "model: decision_tree, hierarchical, kmeans, knn, linear, logistic, mlp" in done.stdout
    assert "cv: group_kfold, holdout, kfold, loocv" in done.stdout
    assert "threads: auto" in done.stdout
    assert "python -m pipeline.compare" in done.stdout


def test_cfg_job_imports_nothing_heavy(workdir: Path):
    done, heavy = quick(workdir, "--cfg", "job", "model=mlp", "threads=2", "seed=0")
    assert done.returncode == 0, done.stderr
    assert heavy == []
    cfg = yaml.safe_load(done.stdout)
    assert cfg["model"]["name"] == "mlp" and cfg["threads"] == 2 and cfg["seed"] == 0
    assert not (workdir / "outputs").exists()  # printed, nothing run


@pytest.mark.parametrize(("args", "says"), [
    (["model=nope"], "Could not find 'model/nope'"),           # Hydra: an unknown option
    (["model.n_estimatorz=3"], "Key 'n_estimatorz' is not in struct"),  # Hydra: a typo'd key
    (["threads=many"], "error: threads=many is not auto or a positive integer"),  # ours
], ids=["unknown_option", "typo_key", "bad_value"])
def test_config_mistake_imports_nothing_heavy(workdir: Path, args: list[str], says: str):
    done, heavy = quick(workdir, *args)
    assert done.returncode == 1, done.stderr
    assert heavy == []
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    if says.startswith("error: "):
        [line] = done.stderr.strip().splitlines()  # ours: one line
        assert line.startswith(says)


def test_help_in_process_leaves_hydra_as_it_was(run_cli):
    """The quick `--help` shares one config repository only while help is printed."""
    from pipeline.compat.hydra import REPOSITORY_BUILDER, config_loader

    build = vars(config_loader())[REPOSITORY_BUILDER]
    done = run_cli("--help")
    assert done.returncode == 0, done.stderr
    assert "model: decision_tree, hierarchical" in done.stdout
    assert vars(config_loader())[REPOSITORY_BUILDER] is build
