"""The spine end to end: scikit-learn models cross-validated and tracked in MLflow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn import datasets
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold, LeaveOneOut, StratifiedKFold, cross_validate
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from pipeline.entry import describe, run
from tests.conftest import all_runs, children, parents, store_uri


def reference_scores(loader, model, scoring: str, stratified: bool) -> np.ndarray:
    X, y = loader(return_X_y=True)
    splitter = (StratifiedKFold if stratified else KFold)(5, shuffle=True, random_state=42)
    result = cross_validate(Pipeline([("scale", StandardScaler()), ("model", model)]), X, y,
                            cv=splitter, scoring=scoring)
    return result["test_score"]


def test_cli_parity_with_cross_validate_read_back_from_mlflow(run_cli, workdir):
    done = run_cli("data=wine", "model=random_forest", "cv=kfold", "seed=42")
    assert done.returncode == 0, done.stderr
    assert "mean±std" in done.stdout and "fold-5" in done.stdout

    runs = all_runs(workdir)
    top = parents(runs)
    assert len(top) == 1
    parent = top.iloc[0]
    folds = children(runs, parent["run_id"])
    expected = reference_scores(datasets.load_wine, RandomForestClassifier(random_state=42),
                                "accuracy", stratified=True)
    np.testing.assert_array_equal(folds["metrics.test_accuracy"].to_numpy(), expected)

    # The parent carries mean and std of every metric; each fold is a FINISHED child run.
    assert parent["status"] == "FINISHED"
    assert parent["tags.mlflow.runName"] == "random_forest-kfold"
    for metric in ("accuracy", "precision", "recall", "f1", "mcc", "roc_auc"):
        assert parent[f"metrics.test_{metric}_mean"] == pytest.approx(
            folds[f"metrics.test_{metric}"].mean())
        assert f"metrics.test_{metric}_std" in runs.columns
    assert parent["metrics.test_accuracy_std"] == pytest.approx(expected.std())
    assert len(folds) == 5 and set(folds["status"]) == {"FINISHED"}
    assert list(folds["tags.mlflow.runName"]) == [f"fold-{i}" for i in range(1, 6)]
    for column in ("metrics.train_accuracy", "metrics.test_f1", "metrics.train_mcc"):
        assert folds[column].notna().all()
    client = MlflowClient(store_uri(workdir))
    for run_id in folds["run_id"]:
        artifact = "confusion_matrix.csv"
        assert artifact in {a.path for a in client.list_artifacts(run_id)}  # beside plots/
        matrix = pd.read_csv(client.download_artifacts(run_id, artifact, str(workdir)),
                             index_col=0)
        assert matrix.to_numpy().sum() in (35, 36)  # wine's 178 rows in five test folds
    parent_artifacts = {a.path for a in client.list_artifacts(parent["run_id"])}
    assert {"config.yaml", "folds.csv"} <= parent_artifacts
    assert parent["params.model.n_estimators"] == "100"
    assert parent["params.cv.n_splits"] == "5"
    assert parent["tags.task"] == "classification"


@pytest.mark.parametrize(("model", "reference"), [
    ("decision_tree", DecisionTreeClassifier(random_state=42)),
    ("knn", KNeighborsClassifier()),
    ("svm", SVC()),
    ("naive_bayes", GaussianNB()),
])
def test_classifier_parity_on_breast_cancer(make_cfg, model, reference):
    result = run(make_cfg("data=breast_cancer", f"model={model}"))
    expected = reference_scores(datasets.load_breast_cancer, reference, "accuracy", True)
    np.testing.assert_array_equal(result.folds["test_accuracy"].to_numpy(), expected)


@pytest.mark.parametrize(("model", "reference"), [
    ("random_forest", RandomForestRegressor(random_state=42)),
    ("ols", LinearRegression()),
])
def test_regressor_parity_on_diabetes(make_cfg, workdir, model, reference):
    result = run(make_cfg("data=diabetes", f"model={model}"))
    expected = reference_scores(datasets.load_diabetes, reference, "r2", stratified=False)
    runs = all_runs(workdir)
    folds = children(runs, result.run_id)
    np.testing.assert_allclose(folds["metrics.test_r2"].to_numpy(), expected, rtol=1e-12)
    assert result.objective == "test_r2"
    assert result.score == pytest.approx(expected.mean())


@pytest.mark.parametrize(("data", "cv", "n_folds"), [
    ("iris", "kfold", 5),
    ("iris", "holdout", 1),
    ("iris", "train_val_test", 1),
    ("iris", "repeated_holdout", 10),
    ("diabetes", "timeseries", 5),
])
def test_every_cv_scheme_makes_its_folds(make_cfg, workdir, data, cv, n_folds):
    result = run(make_cfg(f"data={data}", "model=decision_tree", f"cv={cv}"))
    folds = children(all_runs(workdir), result.run_id)
    assert len(result.folds) == len(folds) == n_folds
    assert set(folds["status"]) == {"FINISHED"}
    if cv == "train_val_test":
        assert {"val_accuracy", "test_accuracy"} <= set(result.folds.columns)
        sizes = folds.iloc[0]
        assert (int(sizes["params.train_size"]), int(sizes["params.val_size"]),
                int(sizes["params.test_size"])) == (90, 30, 30)


def test_timeseries_tests_after_training(make_cfg):
    from pipeline import cv

    cfg = make_cfg("data=diabetes", "cv=timeseries")
    job, dataset, _ = describe(cfg)
    for fold in cv.split(job.scheme, dataset):
        assert fold.train.max() < fold.test.min()


@pytest.mark.slow
def test_loocv_on_iris_makes_150_fold_runs(make_cfg, workdir):
    result = run(make_cfg("data=iris", "model=knn", "cv=loocv", "refit=false"))
    folds = children(all_runs(workdir), result.run_id)
    assert len(folds) == 150 and set(folds["status"]) == {"FINISHED"}
    X, y = datasets.load_iris(return_X_y=True)
    reference = cross_validate(Pipeline([("scale", StandardScaler()),
                                         ("model", KNeighborsClassifier())]),
                               X, y, cv=LeaveOneOut(), scoring="accuracy")
    assert result.score == reference["test_score"].mean()


def test_group_kfold_keeps_groups_apart(make_cfg, workdir):
    frame = datasets.load_iris(as_frame=True).frame
    frame["plot"] = np.arange(len(frame)) % 10
    frame.to_csv(workdir / "iris_groups.csv", index=False)
    cfg = make_cfg("data=csv", "data.path=iris_groups.csv", "data.target=target",
                   "data.groups=plot", "cv=group_kfold", "model=knn")
    from pipeline import cv

    job, dataset, _ = describe(cfg)
    assert "plot" not in dataset.X.columns
    for fold in cv.split(job.scheme, dataset):
        train_groups = set(dataset.groups.iloc[fold.train])
        assert train_groups.isdisjoint(dataset.groups.iloc[fold.test])
    assert len(run(cfg).folds) == 5


def test_csv_with_missing_values_rare_category_and_string_target(make_cfg, workdir):
    rng = np.random.default_rng(0)
    n = 120
    label = rng.choice(["yes", "no"], n)
    frame = pd.DataFrame({
        "age": np.where(rng.random(n) < 0.15, np.nan, rng.normal(40, 5, n) + (label == "yes") * 20),
        "income": rng.normal(50, 5, n),
        "city": rng.choice(["paris", "lyon", "nice"], n).astype(object),
        "label": label,
    })
    frame.loc[3, "city"] = "brest"  # one rare category
    frame.loc[7, "city"] = np.nan
    frame.to_csv(workdir / "people.csv", index=False)

    result = run(make_cfg("data=csv", "data.path=people.csv", "data.target=label",
                          "model=random_forest"))
    assert result.folds["test_accuracy"].notna().all() and len(result.folds) == 5
    assert result.score > 0.8
    runs = all_runs(workdir)
    parent = runs[runs["run_id"] == result.run_id].iloc[0]
    assert parent["tags.data"] == "people" and parent["tags.task"] == "classification"


def test_csv_task_inference(workdir):
    from pipeline.data import table

    frame = pd.DataFrame({"x": np.arange(40) % 7, "grade": [1, 2, 3, 4] * 10,
                          "price": np.linspace(0, 1, 40), "ok": [True, False] * 20})
    frame.to_csv(workdir / "t.csv", index=False)
    assert table("t.csv", "grade").task == "classification"
    assert table("t.csv", "price").task == "regression"
    assert table("t.csv", "ok").task == "classification"
    assert table("t.csv", "grade", task="regression").task == "regression"
    frame.to_parquet(workdir / "t.parquet")
    assert table("t.parquet", "price").X.shape == (40, 3)


def test_seed_drives_the_folds(make_cfg):
    quick = ["data=breast_cancer", "model=decision_tree", "plots=false", "refit=false"]
    first = run(make_cfg(*quick, "seed=0"))
    again = run(make_cfg(*quick, "seed=0"))
    other = run(make_cfg(*quick, "seed=1"))
    pd.testing.assert_series_equal(first.folds["test_accuracy"], again.folds["test_accuracy"])
    assert not first.folds["test_accuracy"].equals(other.folds["test_accuracy"])


def test_multirun_makes_a_parent_run_per_model_in_one_experiment(run_cli, workdir):
    done = run_cli("-m", "model=decision_tree,knn,svm", "data=breast_cancer", "plots=false")
    assert done.returncode == 0, done.stderr
    top = parents(all_runs(workdir))
    assert sorted(top["tags.model"]) == ["decision_tree", "knn", "svm"]
    assert top["experiment_id"].nunique() == 1 and set(top["status"]) == {"FINISHED"}
    assert top["tags.sweep"].nunique() == 1
    assert sorted(top["tags.job"]) == ["0", "1", "2"]


def test_failed_job_does_not_stop_the_sweep(run_cli, workdir):
    done = run_cli("-m", "model=naive_bayes,ols", "data=diabetes", "plots=false")
    assert done.returncode == 1
    assert "1 of 2 jobs failed" in done.stderr and "#0 model=naive_bayes" in done.stderr
    assert "Traceback" not in done.stderr
    top = parents(all_runs(workdir))
    assert list(top["tags.model"]) == ["ols"] and list(top["status"]) == ["FINISHED"]
