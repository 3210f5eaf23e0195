"""The Lightning-trained models through the whole pipeline: scores, curves, errors, seeds."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn import datasets
from sklearn.linear_model import LinearRegression as ClosedForm
from sklearn.preprocessing import StandardScaler

from pipeline.entry import run
from pipeline.errors import PipelineError
from tests.conftest import all_runs, children, store_uri

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
    fitted = LinearRegression(optimizer="sgd", validation_fraction=0, batch_size=None, lr=0.1,
                              momentum=0.9, max_epochs=1000, early_stopping=False,
                              random_state=0).fit(X, y)
    exact = ClosedForm().fit(X, y)
    assert np.abs(fitted.coef_ - exact.coef_).max() / np.abs(exact.coef_).max() < 1e-3
    assert fitted.intercept_ == pytest.approx(exact.intercept_, rel=1e-4)


@pytest.mark.parametrize("batch_size", ["null", "1", "32"])
def test_batch_sizes_train_and_log_curves(make_cfg, workdir, batch_size):
    result = run(make_cfg("data=iris", "model=softmax", "cv=holdout", "trainer.max_epochs=4",
                          "model.optimizer=adam", f"model.batch_size={batch_size}", *QUICK))
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
                          "model.lr=0.01", "model.batch_size=128", *QUICK))
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
    (["model=mlp", "model.optimizer=nadam"], ["model.optimizer", "nadam", "adam", "lbfgs"]),
    (["model=mlp", "model.optimizer=lbfgs"], ["model.optimizer=lbfgs", "model.batch_size=128",
                                              "model.batch_size=null"]),
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


@pytest.mark.parametrize(("model", "classes"), [
    ("logistic", {"LogisticRegression": "breast_cancer"}),
    ("softmax", {"SoftmaxRegression": "iris"}),
    ("linear", {"LinearRegression": "diabetes"}),
    ("mlp", {"MLPClassifier": "iris", "MLPRegressor": "diabetes"}),
])
def test_config_defaults_are_the_estimators_defaults(make_cfg, model, classes):
    """One set of defaults: `model=<name>` composes every argument of the class (bar the seed
    and the trainer, which come from the job) with the value its ``__init__`` gives."""
    from omegaconf import OmegaConf

    from pipeline.models import neural

    for name, data in classes.items():
        composed = OmegaConf.to_container(make_cfg(f"model={model}", f"data={data}").model,
                                          resolve=True)
        assert composed["_target_"] == f"pipeline.models.neural.{name}"
        from_config = {key: value for key, value in composed.items()
                       if key not in ("_target_", "name", "random_state", "trainer")}
        defaults = getattr(neural, name)().get_params()
        del defaults["random_state"], defaults["trainer"]
        defaults = {key: list(value) if isinstance(value, tuple) else value
                    for key, value in defaults.items()}
        assert from_config == defaults, name


def test_same_command_same_fold_metrics(make_cfg):
    first = run(make_cfg("data=wine", "model=mlp", "trainer.max_epochs=5", *QUICK))
    again = run(make_cfg("data=wine", "model=mlp", "trainer.max_epochs=5", *QUICK))
    np.testing.assert_array_equal(first.folds.filter(like="test_").to_numpy(),
                                  again.folds.filter(like="test_").to_numpy())


@pytest.mark.gpu
@pytest.mark.skipif("not __import__('torch').cuda.is_available()",
                    reason="needs a CUDA GPU: run on a machine with one (CI has none)")
def test_mlp_on_gpu(make_cfg):
    result = run(make_cfg("data=digits", "model=mlp", "trainer=gpu", "trainer.max_epochs=20"))
    assert result.score > 0.9


def test_max_steps_through_a_job_counts_optimizer_steps(make_cfg, workdir):
    # iris holdout: 112 training rows, 101 after validation: 7 batches of 16 an epoch.
    result = run(make_cfg("data=iris", "model=softmax", "cv=holdout", "model.optimizer=adam",
                          "model.batch_size=16",
                          "trainer.max_epochs=50", "+trainer.max_steps=10", "refit=false"))
    [fold_id] = children(all_runs(workdir), result.run_id)["run_id"]
    history = MlflowClient(store_uri(workdir)).get_metric_history(fold_id, "train_loss")
    assert sorted(m.step for m in history) == [1, 2]  # 7 steps, then 3 of the second epoch


def test_a_refused_trainer_argument_stops_the_job_before_any_run(make_cfg, workdir):
    from pipeline.errors import PipelineError

    with pytest.raises(PipelineError, match=r"^trainer.accumulate_grad_batches=2 is not "
                                            r"supported by the torch models: .*; drop trainer"):
        run(make_cfg("data=iris", "model=mlp", "+trainer.accumulate_grad_batches=2"))
    assert all_runs(workdir).empty


RESIDUAL_MODULE = '''
from pipeline.models.neural import COUNT, TORCH_PARAMETER_CONSTRAINTS, TorchClassifier


class ResidualClassifier(TorchClassifier):
    """Blocks of x + relu(linear(x)) at one width, then the softmax head."""

    model_name = "residual"
    _parameter_constraints = {**TORCH_PARAMETER_CONSTRAINTS, "width": [COUNT], "depth": [COUNT]}

    def __init__(self, *, width=16, depth=2, optimizer="adam", lr=0.01, **shared):
        super().__init__(optimizer=optimizer, lr=lr, **shared)
        self.width = width
        self.depth = depth

    def build_network(self, n_features, n_outputs):
        import torch
        from torch import nn

        class Block(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.linear = nn.Linear(width, width)

            def forward(self, x):
                return x + torch.relu(self.linear(x))

        return nn.Sequential(nn.Linear(n_features, self.width),
                             *(Block(self.width) for _ in range(self.depth)),
                             nn.Linear(self.width, n_outputs))
'''

RESIDUAL_YAML = '''
defaults:
  - /torch_model@_here_
  - _self_
_target_: residual_net.ResidualClassifier
name: residual
width: 16
depth: 2
optimizer: adam
lr: 0.01
'''


def test_a_new_architecture_is_one_class_and_one_yaml(make_cfg, workdir, tmp_path_factory,
                                                      monkeypatch):
    code = tmp_path_factory.mktemp("code")
    (code / "residual_net.py").write_text(RESIDUAL_MODULE)
    monkeypatch.syspath_prepend(str(code))
    conf = tmp_path_factory.mktemp("conf")
    (conf / "model").mkdir()
    (conf / "model" / "residual.yaml").write_text(RESIDUAL_YAML)

    result = run(make_cfg(f"hydra.searchpath=[file://{conf}]", "model=residual",
                          "model.depth=3", "model.momentum=0.5", "data=wine",
                          "trainer.max_epochs=15", "cv.n_splits=3", "refit=false"))
    runs = all_runs(workdir)
    parent = runs[runs["run_id"] == result.run_id].iloc[0]
    assert parent["tags.mlflow.runName"] == "residual-kfold"
    assert parent["params.model.depth"] == "3" and parent["params.model.momentum"] == "0.5"
    folds = children(runs, result.run_id)
    assert len(folds) == 3 and set(folds["status"]) == {"FINISHED"}
    np.testing.assert_allclose(folds["metrics.test_accuracy"].to_numpy(),
                               result.folds["test_accuracy"].to_numpy())
    assert result.score > 0.85  # wine is easy for any working network
    assert folds["metrics.val_loss"].notna().all()  # its learning curves were logged

    from pipeline.models import requires

    # The user's module, written above: not a dependency of the project.
    ResidualClassifier = importlib.import_module("residual_net").ResidualClassifier  # noqa: N806
    assert requires(ResidualClassifier()) == {"torch", "device"}
    assert ResidualClassifier(depth=4).get_params()["patience"] == 10

    with pytest.raises(PipelineError, match=r"model.depth must be a positive integer, got 0"):
        run(make_cfg(f"hydra.searchpath=[file://{conf}]", "model=residual", "model.depth=0",
                     "data=wine"))
