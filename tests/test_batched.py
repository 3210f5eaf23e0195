"""Fold-parallel training (cv.batch_folds): the folds of a torch model fitted as one batched
model give, fold by fold, what each fold's own fit gives; the job's table and MLflow runs are
those of the sequential path; a job it cannot serve is refused (true) or runs sequentially
(auto)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris
from sklearn.preprocessing import StandardScaler

from pipeline.entry import run
from pipeline.models import batched
from pipeline.models.neural import (
    LinearRegression,
    LogisticRegression,
    MLPClassifier,
    MLPRegressor,
    SoftmaxRegression,
)
from tests.conftest import all_runs, assert_refused_before_any_work, children, parents

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks (see conftest)


def scaled(loader, rows: int = 240):
    X, y = loader(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(X))[:rows]
    return StandardScaler().fit_transform(X[order]), y[order]


def unequal_folds(n: int, sizes=(0.5, 0.62, 0.75)):
    """Training rows of three folds of different sizes (so different batch counts), and the
    rows every fold is tested on."""
    rng = np.random.default_rng(1)
    return [np.sort(rng.permutation(n)[: int(share * n)]) for share in sizes], np.arange(n)


CASES = {
    "mlp-adam-early-stopping": (
        MLPClassifier(hidden_sizes=[16], lr=0.05, batch_size=32, max_epochs=12,
                      early_stopping=True, patience=2, tol=0.02, random_state=3),
        load_digits),
    "logistic-sgd": (LogisticRegression(optimizer="sgd", lr=0.1, batch_size=32, max_epochs=4,
                                        early_stopping=False, random_state=0),
                     load_breast_cancer),
    "softmax-sgd-full-batch": (
        SoftmaxRegression(optimizer="sgd", lr=0.1, batch_size=None, max_epochs=5,
                          early_stopping=False, validation_fraction=0.2, random_state=5),
        load_iris),
    "linear-sgd-momentum": (
        LinearRegression(optimizer="sgd", lr=0.01, batch_size=32, momentum=0.9,
                         weight_decay=0.01, max_epochs=4, random_state=2,
                         early_stopping=True, patience=1, tol=0.05), load_diabetes),
    "mlp-rmsprop-momentum": (
        MLPRegressor(hidden_sizes=[8, 8], activation="tanh", optimizer="rmsprop", momentum=0.5,
                     batch_size=64, max_epochs=4, early_stopping=False, validation_fraction=0.0,
                     random_state=4), load_diabetes),
    "logistic-lbfgs": (LogisticRegression(max_epochs=50, patience=3, random_state=7),
                       load_breast_cancer),
    "linear-lbfgs-no-validation": (
        LinearRegression(max_epochs=50, validation_fraction=0.0, weight_decay=0.01,
                         random_state=8), load_diabetes),
    "mlp-adagrad": (
        MLPClassifier(hidden_sizes=[8], activation="gelu", optimizer="adagrad", lr=0.05,
                      batch_size=64, max_epochs=4, early_stopping=False, random_state=6),
        load_iris),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_fold_batched_is_that_fold_fitted_alone(name):
    template, loader = CASES[name]
    X, y = scaled(loader)
    train_rows, test_rows = unequal_folds(len(X))
    alone = [clone(template).fit(X[rows], y[rows]) for rows in train_rows]
    together = batched.fit([clone(template) for _ in train_rows],
                           [X[rows] for rows in train_rows], [y[rows] for rows in train_rows])

    for one, other in zip(alone, together, strict=True):
        assert type(other.module_) is torch.nn.Sequential
        assert other.n_epochs_ == one.n_epochs_ and other.n_steps_ == one.n_steps_
        assert other.history_.keys() == one.history_.keys()
        for key, values in one.history_.items():
            np.testing.assert_allclose(other.history_[key], values, atol=1e-5, err_msg=key)
        for mine, theirs in zip(other.module_.state_dict().values(),
                                one.module_.state_dict().values(), strict=True):
            np.testing.assert_allclose(mine.numpy(), theirs.numpy(), atol=1e-5)
        if hasattr(one, "classes_"):
            np.testing.assert_array_equal(other.predict(X[test_rows]), one.predict(X[test_rows]))
        else:  # in the target's own units
            np.testing.assert_allclose(other.predict(X[test_rows]), one.predict(X[test_rows]),
                                       rtol=1e-5)
        assert other.score(X[test_rows], y[test_rows]) == pytest.approx(
            one.score(X[test_rows], y[test_rows]), abs=1e-6)
        assert other.n_features_in_ == one.n_features_in_
        if hasattr(one, "classes_"):
            np.testing.assert_array_equal(other.classes_, one.classes_)
            np.testing.assert_allclose(other.predict_proba(X[test_rows]),
                                       one.predict_proba(X[test_rows]), atol=1e-5)
        if hasattr(one, "coef_"):
            np.testing.assert_allclose(other.coef_, one.coef_, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(other.intercept_, one.intercept_, rtol=1e-5)
    if template.early_stopping:  # the folds stopped at different epochs, each on its own
        assert len({model.n_epochs_ for model in alone}) > 1
        assert min(model.n_epochs_ for model in alone) < template.max_epochs


@pytest.mark.parametrize(("model", "reason"), [
    (MLPClassifier(dropout=0.3), "dropout"),
    (MLPClassifier(trainer={"max_steps": 5}), "trainer.max_steps"),
    (MLPClassifier(trainer={"precision": "bf16-mixed"}), "trainer.precision"),
    (LogisticRegression(), None),
    (LogisticRegression(trainer={"max_steps": 5}), "trainer.max_steps"),
])
def test_unsupported_names_the_reason(model, reason):
    said = batched.unsupported(model, n_folds=5, n_features=4)
    assert said == reason if reason is None else reason in said
    assert "single fold" in batched.unsupported(MLPClassifier(), n_folds=1)
    assert "not a torch model" in batched.unsupported(StandardScaler(), n_folds=5)


JOB = ["model=mlp", "data=iris", "trainer.max_epochs=3", "cv.n_splits=3", "plots=false",
       "refit=false", "model.early_stopping=true", "model.patience=1", "model.tol=0.05"]


def test_job_batched_equals_job_sequential_table_and_mlflow_layout(make_cfg, workdir, caplog):
    caplog.set_level(logging.INFO, logger="pipeline")
    results = {setting: run(make_cfg(*JOB, f"cv.batch_folds={setting}"))
               for setting in ("true", "false")}
    assert "trained as one batched model" in caplog.text
    together, alone = (results[s].folds for s in ("true", "false"))
    assert list(together.columns) == list(alone.columns)
    assert list(together.index) == list(alone.index)
    scores = [c for c in alone.columns if c != "fit_time"]
    np.testing.assert_allclose(together[scores].to_numpy(float), alone[scores].to_numpy(float),
                               atol=1e-6)
    # fit_time: the batched fit's time charged equally to every fold
    assert together["fit_time"].nunique() == 1 and together["fit_time"].iloc[0] > 0

    import mlflow

    runs, client = all_runs(workdir), mlflow.MlflowClient()

    def layout(result):
        """The parent's metric keys, and per fold run: name, status, params, metric keys and
        the per-epoch curves."""
        parent = client.get_run(result.run_id)
        folds = []
        for run_id in children(runs, result.run_id)["run_id"]:
            fold = client.get_run(run_id)
            curves = {key: [m.value for m in client.get_metric_history(run_id, key)]
                      for key in ("train_loss", "val_loss", "val_accuracy")}
            folds.append((fold.info.run_name, fold.info.status, sorted(fold.data.params),
                          sorted(fold.data.metrics), curves))
        return parent.info.run_name, sorted(parent.data.metrics), folds

    mine, theirs = layout(results["true"]), layout(results["false"])
    assert mine[:2] == theirs[:2]
    assert [fold[0] for fold in mine[2]] == ["fold-1", "fold-2", "fold-3"]
    for fold, other in zip(mine[2], theirs[2], strict=True):
        assert fold[:4] == other[:4] and fold[1] == "FINISHED"
        assert fold[4].keys() == other[4].keys()
        for key, values in fold[4].items():
            assert len(values) >= 1
            np.testing.assert_allclose(values, other[4][key], atol=1e-5, err_msg=key)


@pytest.mark.parametrize(("override", "words"), [
    ("model.dropout=0.2", ["cv.batch_folds=true", "dropout"]),
    ("+trainer.max_steps=10", ["cv.batch_folds=true", "trainer.max_steps"]),
])
def test_batch_folds_true_refuses_in_one_line_before_any_run(run_cli, workdir, override, words):
    done = run_cli("model=mlp", "data=iris", "cv.batch_folds=true", override)
    assert_refused_before_any_work(done, workdir, words)


def test_batch_folds_refuses_an_unknown_value(run_cli, workdir):
    done = run_cli("model=mlp", "data=iris", "cv.batch_folds=sometimes")
    assert_refused_before_any_work(done, workdir, ["cv.batch_folds=sometimes", "auto, true, "
                                                                               "false"])


def test_auto_falls_back_to_one_fold_after_another_and_says_why(make_cfg, workdir, caplog):
    caplog.set_level(logging.INFO, logger="pipeline")
    result = run(make_cfg("model=mlp", "data=iris", "model.dropout=0.2", "trainer.max_epochs=1",
                          "cv.n_splits=2", "plots=false", "refit=false"))
    assert "folds trained one after another (cv.batch_folds=auto)" in caplog.text
    assert "dropout" in caplog.text and "trained as one batched model" not in caplog.text
    assert len(result.folds) == 2 and result.folds["fit_time"].nunique() == 2


def test_interrupt_during_a_batched_fit_leaves_no_run_running(make_cfg, workdir, monkeypatch):
    from pipeline.models import folds_module

    def interrupted(self, step, batch_idx):
        raise KeyboardInterrupt

    monkeypatch.setattr(folds_module.FoldsModule, "training_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(make_cfg("model=mlp", "data=iris", "trainer.max_epochs=2", "cv.n_splits=2",
                     "plots=false", "refit=false", "cv.batch_folds=true"))
    runs = all_runs(workdir)
    [parent] = parents(runs).itertuples()
    assert parent.status == "KILLED"
    assert len(runs) == 1  # no fold's run had begun


def test_a_diverging_fold_says_so_as_alone_and_the_job_records_it_per_fold(make_cfg, workdir):
    from pipeline.errors import PipelineError

    X, y = scaled(load_diabetes, rows=120)
    model = LinearRegression(optimizer="sgd", lr=1e6, batch_size=32, max_epochs=3,
                             random_state=0)
    with pytest.raises(PipelineError) as alone:
        clone(model).fit(X[:80], y[:80])
    with pytest.raises(batched.Diverged) as together:
        batched.fit([clone(model), clone(model)], [X[:80], X[40:]], [y[:80], y[40:]])
    assert str(together.value) == str(alone.value)
    # Through a job: the folds then run one after another, so the fold that diverged fails
    # its own run, as without batching.
    with pytest.raises(PipelineError, match="diverged"):
        run(make_cfg("data=diabetes", "model=linear", "model.optimizer=sgd", "model.lr=1e6",
                     "model.batch_size=32", "trainer.max_epochs=2",
                     "cv.n_splits=2", "cv.batch_folds=true", "plots=false", "refit=false"))
    runs = all_runs(workdir)
    assert list(runs["status"]) == ["FAILED", "FAILED"]
