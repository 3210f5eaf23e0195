"""What a newcomer met first: the leaderboard's default experiment, roc_auc of a multiclass SVM,
class names of the bundled data sets, and what `--help` points to."""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn import datasets
from sklearn.metrics import confusion_matrix, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from pipeline import compare, data
from pipeline.entry import run
from tests.conftest import all_runs, children, store_uri

QUICK = ("model=knn", "cv.n_splits=2", "plots=false", "refit=false")


def test_leaderboard_defaults_to_the_experiment_of_the_newest_job(make_cfg, workdir, capsys):
    first = run(make_cfg("data=iris", "tracking.experiment=older", *QUICK))
    swept = run(make_cfg("data=iris", "tracking.experiment=newer", *QUICK))
    newest = run(make_cfg("data=iris", "tracking.experiment=older", *QUICK))
    client = MlflowClient(store_uri(workdir))
    # Made by hand as a sweep would: the newest sweep job is in 'newer', the newest job
    # (no sweep) in 'older', and 'older' also holds an earlier sweep.
    client.set_tag(first.run_id, "sweep", "multirun/a")
    client.set_tag(swept.run_id, "sweep", "multirun/b")
    # MLflow's last_update_time, which the leaderboard went by, says 'newer'.
    experiments = client.search_experiments(order_by=["last_update_time DESC"])
    assert experiments[0].name == "newer"

    experiment, table = compare.leaderboard(store_uri(workdir))
    assert experiment == "older"
    assert set(table["run_id"]) == {first.run_id, newest.run_id}

    experiment, table = compare.leaderboard(store_uri(workdir), sweep="latest")
    assert (experiment, list(table["run_id"])) == ("newer", [swept.run_id])
    experiment, table = compare.leaderboard(store_uri(workdir), sweep="multirun/a")
    assert (experiment, list(table["run_id"])) == ("older", [first.run_id])

    assert compare.main(["--uri", store_uri(workdir)]) == 0
    assert capsys.readouterr().out.startswith("experiment 'older'")


def iris_folds(n_splits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    _, y = datasets.load_iris(return_X_y=True)
    return list(StratifiedKFold(n_splits, shuffle=True, random_state=42).split(y, y))


def test_multiclass_svm_roc_auc_is_the_one_vs_rest_auc_of_its_decision_values(make_cfg):
    # SVC has no predict_proba (probability=False), so scikit-learn's own roc_auc_ovr scorer
    # fails on it; a class's decision value still ranks that class against the rest.
    result = run(make_cfg("data=iris", "model=svm", "cv.n_splits=3", "plots=false",
                          "refit=false"))
    X, y = datasets.load_iris(return_X_y=True)
    expected = []
    for train, test in iris_folds(3):
        model = Pipeline([("scale", StandardScaler()), ("model", SVC())]).fit(X[train], y[train])
        decision = model.decision_function(X[test])
        expected.append(np.mean([roc_auc_score(y[test] == k, decision[:, k]) for k in range(3)]))
    assert not result.folds["test_roc_auc"].isna().any()
    np.testing.assert_allclose(result.folds["test_roc_auc"], expected, rtol=1e-12)


def test_multiclass_roc_auc_of_a_probability_model_is_sklearns_ovr(make_cfg):
    result = run(make_cfg("data=iris", *QUICK))
    X, y = datasets.load_iris(return_X_y=True)
    expected = cross_validate(Pipeline([("scale", StandardScaler()),
                                        ("model", KNeighborsClassifier())]), X, y,
                              cv=StratifiedKFold(2, shuffle=True, random_state=42),
                              scoring="roc_auc_ovr")["test_score"]
    np.testing.assert_array_equal(result.folds["test_roc_auc"].to_numpy(), expected)


def test_bundled_classes_are_named():
    for name, loader in [("iris", datasets.load_iris), ("wine", datasets.load_wine),
                         ("breast_cancer", datasets.load_breast_cancer),
                         ("digits", datasets.load_digits)]:
        bunch = loader()
        dataset = data.bundled(name)
        assert dataset.y.tolist() == bunch.target_names[bunch.target].tolist(), name
        assert list(dataset.classes) == list(bunch.target_names), name  # in code order
    assert data.bundled("iris").y.iloc[0] == "setosa"
    assert pd.api.types.is_integer_dtype(data.bundled("digits").y)  # digits are named 0..9
    assert pd.api.types.is_float_dtype(data.bundled("diabetes").y)  # regression: unchanged


def test_binary_scores_keep_sklearns_positive_class_with_named_classes(make_cfg, workdir):
    # 'benign' sorts before 'malignant', but the positive class stays benign, the class coded
    # 1 (scikit-learn's pos_label=1): every score equals cross_validate on the 0/1 target.
    result = run(make_cfg("data=breast_cancer", "model=svm", "plots=false", "refit=false"))
    X, y = datasets.load_breast_cancer(return_X_y=True)
    splitter = StratifiedKFold(5, shuffle=True, random_state=42)
    expected = cross_validate(Pipeline([("scale", StandardScaler()), ("model", SVC())]), X, y,
                              cv=splitter, scoring=["accuracy", "precision", "recall", "f1",
                                                    "roc_auc", "matthews_corrcoef"])
    for name, scorer in [("accuracy", "accuracy"), ("precision", "precision"),
                         ("recall", "recall"), ("f1", "f1"), ("roc_auc", "roc_auc"),
                         ("mcc", "matthews_corrcoef")]:
        np.testing.assert_array_equal(result.folds[f"test_{name}"].to_numpy(),
                                      expected[f"test_{scorer}"], err_msg=name)

    # The fold's confusion matrix names the classes, in the data set's order.
    first = children(all_runs(workdir), result.run_id).iloc[0]
    client = MlflowClient(store_uri(workdir))
    matrix = pd.read_csv(client.download_artifacts(first["run_id"], "confusion_matrix.csv",
                                                   str(workdir)), index_col=0)
    assert list(matrix.index) == list(matrix.columns) == ["malignant", "benign"]
    train, test = next(splitter.split(X, y))
    model = Pipeline([("scale", StandardScaler()), ("model", SVC())]).fit(X[train], y[train])
    np.testing.assert_array_equal(matrix.to_numpy(),
                                  confusion_matrix(y[test], model.predict(X[test])))


def test_help_names_the_other_commands(run_cli):
    done = run_cli("--help")
    assert done.returncode == 0, done.stderr
    for command in ("python -m pipeline.compare", "python -m pipeline.predict",
                    "python -m pipeline.doctor"):
        assert command in done.stdout, command
