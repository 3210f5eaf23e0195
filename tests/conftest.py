"""Shared fixtures: the real config composed with Hydra, the real entry point, a private store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from pipeline.config import config_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory: the default MLflow store lands in its outputs/."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture
def make_cfg(workdir: Path) -> Callable[..., DictConfig]:
    """Compose the real config tree with command-line style overrides."""

    def make(*overrides: str) -> DictConfig:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            return compose("config", overrides=list(overrides))

    return make


@pytest.fixture
def cli(workdir: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run `python -m pipeline ARGS` in the working directory, as a user would."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *args], cwd=workdir, env=env,
            capture_output=True, text=True, timeout=timeout,
        )

    return run


def missing_system_package(message: str) -> NoReturn:
    """A program the system must provide (PostgreSQL, Chromium) is absent: in CI (`CI=true`,
    where `.ci/run` installs it) the test fails; on a developer's machine it is skipped with
    the reason, so that the rest of the suite still speaks."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def store_uri(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'outputs' / 'mlflow.db'}"


def all_runs(workdir: Path) -> pd.DataFrame:
    """Every run in the working directory's default store, parents and folds."""
    import mlflow

    if not (workdir / "outputs" / "mlflow.db").exists():
        return pd.DataFrame(columns=["run_id", "status"])
    mlflow.set_tracking_uri(store_uri(workdir))
    return mlflow.search_runs(search_all_experiments=True, output_format="pandas")


def parents(runs: pd.DataFrame) -> pd.DataFrame:
    column = "tags.mlflow.parentRunId"
    return runs[runs[column].isna()] if column in runs else runs


def children(runs: pd.DataFrame, parent_id: str) -> pd.DataFrame:
    return runs[runs["tags.mlflow.parentRunId"] == parent_id].sort_values("params.fold", key=lambda
                                                                          s: s.astype(int))


def assert_refused_before_any_work(done: subprocess.CompletedProcess, workdir: Path,
                                   words: list[str]) -> None:
    """Exit 1, one `error:` line holding every word, and no MLflow run at all."""
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and all(word in line for word in words), line
    assert all_runs(workdir).empty
