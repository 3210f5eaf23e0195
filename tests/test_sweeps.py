"""Sweeps and the leaderboard that ranks their jobs."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from tests.conftest import all_runs, parents, store_uri

from pipeline import compare


def test_grid_sweep_and_leaderboard(cli, workdir):
    done = cli("-m", "data=wine", "model=knn,decision_tree", "cv.n_splits=3,4")
    assert done.returncode == 0, done.stderr
    top = parents(all_runs(workdir))
    assert len(top) == 4 and set(top["status"]) == {"FINISHED"}
    assert top["tags.sweep"].nunique() == 1
    assert sorted(top["tags.job"].astype(int)) == [0, 1, 2, 3]

    experiment, table = compare.leaderboard(store_uri(workdir), sweep="latest")
    assert experiment == "wine" and len(table) == 4
    means = table["accuracy_mean"].tolist()
    assert means == sorted(means, reverse=True)
    assert set(table["params"]) == {"cv.n_splits=3", "cv.n_splits=4"}
    expected_best = top["metrics.test_accuracy_mean"].max()
    assert table.iloc[0]["accuracy_mean"] == expected_best

    printed = compare.main(["--uri", store_uri(workdir), "--format", "csv"])
    assert printed == 0


def test_leaderboard_command_formats(cli, workdir, capsys):
    assert cli("data=diabetes", "model=ols").returncode == 0
    assert cli("data=diabetes", "model=knn").returncode == 0
    assert compare.main(["--uri", store_uri(workdir), "-e", "diabetes",
                         "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model | cv | params | r2 |")
    assert lines[2].startswith("| ols |")  # OLS beats KNN on diabetes' R²
    assert compare.main(["--uri", store_uri(workdir), "-e", "diabetes", "--metric", "mse",
                         "--format", "csv"]) == 0
    from io import StringIO

    table = pd.read_csv(StringIO(capsys.readouterr().out))
    assert table["mse_mean"].is_monotonic_increasing  # lower error first
    assert compare.main(["--uri", store_uri(workdir), "-e", "nope"]) == 1
    assert "no experiment 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_parallel_jobs_share_the_sqlite_store(cli, workdir):
    done = cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "data=breast_cancer",
               "model=knn,decision_tree,svm,naive_bayes")
    assert done.returncode == 0, done.stderr
    assert "locked" not in done.stderr + done.stdout
    runs = all_runs(workdir)
    top = parents(runs)
    assert len(top) == 4 and set(top["status"]) == {"FINISHED"}
    assert top["tags.sweep"].nunique() == 1
    for run_id in top["run_id"]:
        folds = runs[runs["tags.mlflow.parentRunId"] == run_id]
        assert len(folds) == 5 and set(folds["status"]) == {"FINISHED"}


@pytest.mark.slow
def test_optuna_preset_best_value_is_the_best_parent_run(cli, workdir):
    done = cli("hparams_search=svm_optuna", "hydra.sweeper.n_trials=3", "data=wine")
    assert done.returncode == 0, done.stderr
    best_value = float(re.search(r"Best value: ([0-9.]+)", done.stdout + done.stderr).group(1))
    top = parents(all_runs(workdir))
    assert len(top) == 3 and top["tags.sweep"].nunique() == 1
    assert best_value == pytest.approx(top["metrics.test_accuracy_mean"].max(), abs=1e-12)
    best = top[top["tags.best_in_sweep"] == "true"]
    assert len(best) == 1
    assert best["metrics.test_accuracy_mean"].iloc[0] == top["metrics.test_accuracy_mean"].max()


def test_minimising_objective_flips_the_sweep_direction(make_cfg):
    from hydra import compose, initialize_config_dir

    from pipeline.config import config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        default = compose("config", ["hparams_search=mlp_optuna", "data=csv"],
                          return_hydra_config=True)
        error = compose("config", ["hparams_search=mlp_optuna", "objective=mse"],
                        return_hydra_config=True)
    assert default.hydra.sweeper.direction == "maximize"
    assert error.hydra.sweeper.direction == "minimize"


@pytest.mark.slow
def test_compare_regressors_preset_is_one_command(cli, workdir):
    done = cli("experiment=compare_regressors", "trainer.max_epochs=5", "cv.n_splits=3")
    assert done.returncode == 0, done.stderr
    top = parents(all_runs(workdir))
    assert sorted(top["tags.model"]) == sorted(
        ["ols", "linear", "mlp", "decision_tree", "random_forest", "knn", "svm"])
    assert "best of 7 job(s)" in done.stdout
