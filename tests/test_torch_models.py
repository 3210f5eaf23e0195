"""The Lightning-trained models through the whole pipeline: scores, curves, errors, seeds."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn import datasets
from sklearn.linear_model import LinearRegression as ClosedForm
from sklearn.preprocessing import StandardScaler
from tests.conftest import all_runs, children, store_uri

from pipeline.runner import run

# Figures and the refit model (one more fit on all rows) are beside these tests' point.
QUICK = ["plots=false", "refit=false"]


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "floor"), [
    (["data=breast_cancer", "model=logistic"], 0.96),
    (["data=iris", "model=softmax"], 0.93),
    (["data=digits", "model=softmax"], 0.95),
    (["data=digits", "model=mlp"], 0.96),
])
def test_torch_models_reach_their_accuracy(make_cfg, overrides, floor):
    result = run(make_cfg(*overrides, "cv=kfold", *QUICK))
    assert result.score >= floor, result.folds["test_accuracy"]


@pytest.mark.slow
def test_linear_matches_closed_form_ols(make_cfg):
    linear = run(make_cfg("data=diabetes", "model=linear", "model.validation_fraction=0",
                          *QUICK))
    ols = run(make_cfg("data=diabetes", "model=ols", *QUICK))
    assert abs(linear.score - ols.score) <= 0.01
    np.testing.assert_allclose(linear.folds["test_r2"], ols.folds["test_r2"], atol=0.03)

    # In the standardised space, full-batch gradient descent converges to the least-squares
    # coefficients (momentum crosses diabetes' ill-conditioned directions in 1000 epochs).
    from pipeline.models.neural import LinearRegression

    X, y = datasets.load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    fitted = LinearRegression(validation_fraction=0, batch_size=None, lr=0.1, momentum=0.9,
                              max_epochs=1000, random_state=0).fit(X, y)
    exact = ClosedForm().fit(X, y)
    assert np.abs(fitted.coef_ - exact.coef_).max() / np.abs(exact.coef_).max() < 1e-3
    assert fitted.intercept_ == pytest.approx(exact.intercept_, rel=1e-4)


@pytest.mark.parametrize("batch_size", ["null", "1", "32"])
def test_batch_sizes_train_and_log_curves(make_cfg, workdir, batch_size):
    result = run(make_cfg("data=iris", "model=softmax", "cv=holdout", "trainer.max_epochs=4",
                          f"model.batch_size={batch_size}", *QUICK))
    [fold_id] = children(all_runs(workdir), result.run_id)["run_id"]
    client = MlflowClient(store_uri(workdir))
    for key in ("train_loss", "val_loss", "val_accuracy"):
        history = client.get_metric_history(fold_id, key)
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2, 3, 4]
        assert all(np.isfinite(m.value) for m in history)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop", "adagrad"])
def test_every_optimizer_trains(make_cfg, optimizer):
    result = run(make_cfg("data=breast_cancer", "model=logistic", "cv=holdout",
                          "trainer.max_epochs=5", f"model.optimizer={optimizer}",
                          "model.lr=0.01", *QUICK))
    assert result.score > 0.85


def test_regression_mlp_logs_r2_curve(make_cfg, workdir):
    result = run(make_cfg("data=diabetes", "model=mlp", "cv=holdout", "trainer.max_epochs=3",
                          *QUICK))
    [fold_id] = children(all_runs(workdir), result.run_id)["run_id"]
    history = MlflowClient(store_uri(workdir)).get_metric_history(fold_id, "val_r2")
    assert len(history) == 3


@pytest.mark.parametrize(("args", "words"), [
    (["model=logistic", "data=iris"], ["model=logistic", "3 classes", "softmax"]),
    (["model=linear", "data=breast_cancer"], ["model=linear", "classification", "logistic"]),
    (["model=softmax", "data=diabetes"], ["model=softmax", "regression", "linear"]),
    (["model=mlp", "model.lr=-1"], ["model.lr", "-1"]),
    (["model=mlp", "model.optimizer=lbfgs"], ["model.optimizer", "lbfgs", "adam"]),
    (["model=mlp", "model.hidden_sizes=[]"], ["model.hidden_sizes"]),
    (["model=mlp", "model.batch_size=0"], ["model.batch_size"]),
    (["data=diabetes", "model=linear", "model.lr=1e6", "model.optimizer=sgd"],
     ["diverged", "model.lr=1e+06", "model.optimizer=sgd"]),
])
def test_torch_mistakes_are_one_clear_line(run_cli, workdir, args, words):
    done = run_cli(*args, "trainer.max_epochs=5")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in done.stderr
    statuses = set(all_runs(workdir)["status"])
    assert "RUNNING" not in statuses


def test_divergence_fails_the_fold_and_parent(make_cfg, workdir):
    from pipeline.errors import PipelineError

    with pytest.raises(PipelineError, match="diverged"):
        run(make_cfg("data=diabetes", "model=linear", "model.lr=1e6", "model.optimizer=sgd",
                     "trainer.max_epochs=5"))
    runs = all_runs(workdir)
    assert list(runs["status"]) == ["FAILED", "FAILED"]
    assert runs["tags.error"].str.contains("diverged").all()


def test_same_command_same_fold_metrics(make_cfg):
    first = run(make_cfg("data=wine", "model=mlp", "trainer.max_epochs=5", *QUICK))
    again = run(make_cfg("data=wine", "model=mlp", "trainer.max_epochs=5", *QUICK))
    np.testing.assert_array_equal(first.folds.filter(like="test_").to_numpy(),
                                  again.folds.filter(like="test_").to_numpy())


@pytest.mark.gpu
@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
def test_mlp_on_gpu(make_cfg):
    result = run(make_cfg("data=digits", "model=mlp", "trainer=gpu", "trainer.max_epochs=20"))
    assert result.score > 0.9
