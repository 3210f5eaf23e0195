"""`cv.n_jobs`: folds fit in joblib worker processes score exactly as one after another (and as
scikit-learn's `cross_validate`), and the job's process records the same runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn import datasets
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from tests.conftest import all_runs, assert_refused_before_any_work, children, parents, store_uri

from pipeline.runner import run

QUICK = ["plots=false", "refit=false"]


@pytest.mark.parametrize(("data", "model", "reference", "metric"), [
    ("wine", "random_forest", RandomForestClassifier(random_state=42), "accuracy"),
    ("wine", "knn", KNeighborsClassifier(), "accuracy"),
    ("diabetes", "ols", LinearRegression(), "r2"),
], ids=["random_forest", "knn", "ols"])
def test_folds_in_two_workers_score_as_in_turn_and_as_cross_validate(make_cfg, data, model,
                                                                     reference, metric):
    in_turn = run(make_cfg(f"data={data}", f"model={model}", *QUICK))
    parallel = run(make_cfg(f"data={data}", f"model={model}", *QUICK, "cv.n_jobs=2"))
    scores = [c for c in in_turn.folds.columns if c != "fit_time"]
    pd.testing.assert_frame_equal(parallel.folds[scores], in_turn.folds[scores], check_exact=True)
    pd.testing.assert_frame_equal(parallel.summary[scores], in_turn.summary[scores],
                                  check_exact=True)

    X, y = getattr(datasets, f"load_{data}")(return_X_y=True)
    splitter = (StratifiedKFold if metric == "accuracy" else KFold)(5, shuffle=True,
                                                                    random_state=42)
    expected = cross_validate(Pipeline([("scale", StandardScaler()), ("model", reference)]),
                              X, y, cv=splitter, scoring=metric, n_jobs=2)["test_score"]
    # The pipeline's preprocessing (imputer, then scaler, by column) rounds as scaling alone
    # does up to the last bits of a regression's scores.
    np.testing.assert_allclose(parallel.folds[f"test_{metric}"].to_numpy(), expected,
                               rtol=0 if metric == "accuracy" else 1e-12)


def test_parallel_folds_record_the_same_runs(make_cfg, workdir):
    """One parent, five FINISHED fold runs in order, the same metrics, params and artifacts
    (figures drawn in the job's process included) as the folds run in turn."""
    common = ["data=iris", "model=decision_tree", "refit=false",
              "plots=[confusion_matrix,importance,tree]"]
    ids = {n_jobs: run(make_cfg(*common, f"cv.n_jobs={n_jobs}")).run_id for n_jobs in (1, 2)}
    runs = all_runs(workdir)
    assert "RUNNING" not in set(runs["status"])
    assert set(parents(runs)["run_id"]) == set(ids.values())
    client = MlflowClient(store_uri(workdir))

    def layout(run_id: str) -> tuple:
        parent = client.get_run(run_id)
        folds = children(runs, run_id)
        fold_runs = [client.get_run(fold) for fold in folds["run_id"]]
        return (parent.info.status, parent.info.run_name, sorted(parent.data.metrics),
                sorted(parent.data.params), _artifacts(client, run_id),
                [(r.info.run_name, r.info.status, sorted(r.data.metrics), r.data.params,
                  _artifacts(client, r.info.run_id)) for r in fold_runs])

    in_turn, parallel = layout(ids[1]), layout(ids[2])
    assert parallel == in_turn
    assert [name for name, *_ in parallel[-1]] == [f"fold-{i}" for i in range(1, 6)]
    assert "plots/confusion_matrix.png" in parallel[-1][0][-1]
    assert {"plots/feature_importance.png", "feature_importance.csv", "plots/tree.png",
            "folds.csv"} <= set(parallel[4])
    in_turn_table, parallel_table = (
        pd.read_csv(client.download_artifacts(ids[n], "folds.csv", str(workdir / str(n))),
                    index_col=0).drop(columns="fit_time") for n in (1, 2))
    pd.testing.assert_frame_equal(parallel_table, in_turn_table, check_exact=True)


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    found = []
    for item in client.list_artifacts(run_id, path):
        found += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return sorted(found)


@pytest.mark.parametrize("value", ["0", "two", "1.5", "-9", "true"])
def test_a_bad_n_jobs_is_refused_in_one_line_before_any_run(run_cli, workdir, value):
    done = run_cli("data=iris", "model=knn", f"cv.n_jobs={value}")
    assert_refused_before_any_work(done, workdir, ["cv.n_jobs=", "positive integer", "-1"])


def test_more_jobs_than_folds_or_one_per_core_run_every_fold(make_cfg, workdir):
    few = run(make_cfg("data=iris", "model=knn", "cv=holdout", *QUICK, "cv.n_jobs=8"))
    every_core = run(make_cfg("data=iris", "model=knn", *QUICK, "cv.n_jobs=-1"))
    runs = all_runs(workdir)
    assert len(children(runs, few.run_id)) == len(few.folds) == 1
    assert len(children(runs, every_core.run_id)) == len(every_core.folds) == 5
    assert set(runs["status"]) == {"FINISHED"}
