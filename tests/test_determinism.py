"""Same command, same seed, same CPU: bit-identical fold metrics in the store, for a
scikit-learn model and a Lightning-trained one; another seed gives other folds and scores.
Read back from MLflow (SQLite keeps float64 exactly), through the real command line."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import all_runs, children, parents

# `++`: set whether or not the key exists; figures and the refit model are beside the point.
QUICK = ["++plots=false", "++refit=false"]
COMMANDS = {
    "random_forest": ["data=wine", "model=random_forest", "model.n_estimators=50", *QUICK],
    "mlp": ["data=wine", "model=mlp", "trainer.max_epochs=5", "trainer=cpu", *QUICK],
}


def fold_scores(runs: pd.DataFrame, parent_id: str) -> pd.DataFrame:
    folds = children(runs, parent_id)
    columns = sorted(c for c in folds.columns
                     if c.startswith(("metrics.test_", "metrics.train_", "metrics.val_")))
    return folds[columns].dropna(axis=1, how="all").reset_index(drop=True)


@pytest.mark.slow
@pytest.mark.parametrize("model", COMMANDS)
def test_same_command_same_fold_metrics_other_seed_other_folds(workdir, model):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    seeds = ["seed=7", "seed=7", "seed=8"]
    jobs = [subprocess.Popen([sys.executable, "-m", "pipeline", *COMMANDS[model], seed],
                             cwd=workdir, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for seed in seeds]
    for job in jobs:
        _, stderr = job.communicate(timeout=300)
        assert job.returncode == 0, stderr

    runs = all_runs(workdir)
    top = parents(runs).sort_values("start_time")
    assert len(top) == 3
    by_seed = {seed: top[top["params.seed"] == seed]["run_id"].tolist() for seed in ("7", "8")}
    first, again = (fold_scores(runs, run_id) for run_id in by_seed["7"])
    [other] = (fold_scores(runs, run_id) for run_id in by_seed["8"])
    assert len(first) == 5 and first.shape[1] >= 12 and first.notna().all().all()
    assert list(first.columns) == list(again.columns) == list(other.columns)
    np.testing.assert_array_equal(first.to_numpy(), again.to_numpy())  # bit for bit
    assert not np.array_equal(first.to_numpy(), other.to_numpy())
    # Other folds: the per-fold test accuracies differ, not just their order.
    assert sorted(first["metrics.test_accuracy"]) != sorted(other["metrics.test_accuracy"])
