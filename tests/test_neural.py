"""The torch estimators, through their scikit-learn API only (no Hydra, no MLflow)."""

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    make_friedman1,
)
from sklearn.linear_model import LogisticRegression as SklearnLogisticRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from pipeline.errors import PipelineError
from pipeline.models.neural import (
    LinearRegression,
    LogisticRegression,
    MLPClassifier,
    MLPRegressor,
    SoftmaxRegression,
)

SRC = Path(__file__).resolve().parents[1] / "src"
NEEDS_GPU = "needs a CUDA GPU: run on a machine with one (CI has none)"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks (see conftest)


def scaled_split(X, y, stratify=True):
    """(X_train, X_test, y_train, y_test), standardised on the training part; ``[::2]`` of it
    is the training pair."""
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y if stratify else None
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


@pytest.fixture(scope="module")
def breast_cancer():
    return scaled_split(*load_breast_cancer(return_X_y=True))


@pytest.fixture(scope="module")
def iris():
    return scaled_split(*load_iris(return_X_y=True))


@pytest.fixture(scope="module")
def diabetes():
    return scaled_split(*load_diabetes(return_X_y=True), stratify=False)


# -- learning ------------------------------------------------------------------------------


def test_logistic_learns_breast_cancer(breast_cancer):
    X_train, X_test, y_train, y_test = breast_cancer
    model = LogisticRegression(random_state=0).fit(X_train, y_train)
    reference = SklearnLogisticRegression().fit(X_train, y_train).score(X_test, y_test)
    assert model.score(X_test, y_test) >= reference - 0.02
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    assert list(model.classes_) == [0, 1]


def test_logistic_threshold_moves_predictions(breast_cancer):
    X_train, X_test, y_train, _ = breast_cancer
    model = LogisticRegression(random_state=0, max_epochs=20).fit(X_train, y_train)
    strict = clone(model).set_params(threshold=0.99).fit(X_train, y_train)
    assert strict.predict(X_test).sum() < model.predict(X_test).sum()
    np.testing.assert_array_equal(model.predict(X_test), model.predict_proba(X_test).argmax(axis=1))


def test_softmax_learns_iris(iris):
    X_train, X_test, y_train, y_test = iris
    model = SoftmaxRegression(momentum=0.9, random_state=0).fit(X_train, y_train)
    reference = SklearnLogisticRegression().fit(X_train, y_train).score(X_test, y_test)
    assert model.score(X_test, y_test) >= reference - 0.05
    assert model.predict_proba(X_test).shape == (len(X_test), 3)


def test_softmax_keeps_string_labels(iris):
    X_train, X_test, y_train, _ = iris
    names = np.array(["setosa", "versicolor", "virginica"])
    model = SoftmaxRegression(random_state=0, max_epochs=5).fit(X_train, names[y_train])
    assert list(model.classes_) == list(names)
    assert set(model.predict(X_test)) <= set(names)


def test_mlp_classifier_learns_digits():
    X_train, X_test, y_train, y_test = scaled_split(*load_digits(return_X_y=True))
    model = MLPClassifier(hidden_sizes=[64], random_state=0, max_epochs=30).fit(X_train, y_train)
    assert model.score(X_test, y_test) >= 0.95
    assert model.history_["train_loss"][-1] < model.history_["train_loss"][0] / 5


def test_mlp_regressor_learns_a_nonlinear_function():
    X, y = make_friedman1(n_samples=600, noise=0.1, random_state=0)
    X_train, X_test, y_train, y_test = scaled_split(X, y, stratify=False)
    mlp = MLPRegressor(hidden_sizes=(64, 64), lr=3e-3, random_state=0, max_epochs=60).fit(
        X_train, y_train
    )
    linear = LinearRegression(random_state=0, max_epochs=60).fit(X_train, y_train)
    assert r2_score(y_test, mlp.predict(X_test)) > 0.85
    assert r2_score(y_test, mlp.predict(X_test)) > r2_score(y_test, linear.predict(X_test)) + 0.05


def test_linear_regression_matches_least_squares(diabetes):
    X_train, X_test, y_train, y_test = diabetes
    # Every epoch, no early stop: what gradient descent converges to, not where it stopped.
    model = LinearRegression(random_state=0, max_epochs=100, early_stopping=False)
    model.fit(X_train, y_train)
    design = np.column_stack([X_train, np.ones(len(X_train))])
    coef = np.linalg.lstsq(design, y_train, rcond=None)[0]
    ols = r2_score(y_test, np.column_stack([X_test, np.ones(len(X_test))]) @ coef)
    assert r2_score(y_test, model.predict(X_test)) == pytest.approx(ols, abs=0.03)


def test_linear_models_expose_coefficients_in_target_units(diabetes, iris):
    X_train, X_test, y_train, _ = diabetes
    model = LinearRegression(random_state=0, max_epochs=5).fit(X_train, y_train)
    assert model.coef_.shape == (X_train.shape[1],)
    # The network computes in float32: equal to float32's precision.
    np.testing.assert_allclose(model.predict(X_test), X_test @ model.coef_ + model.intercept_,
                               rtol=1e-5)
    softmax = SoftmaxRegression(random_state=0, max_epochs=2).fit(*iris[::2])
    assert softmax.coef_.shape == (3, 4) and softmax.intercept_.shape == (3,)
    assert not hasattr(MLPRegressor(max_epochs=1).fit(X_train, y_train), "coef_")


def test_regressor_predicts_in_target_units_and_shape(diabetes):
    X_train, X_test, y_train, _ = diabetes
    model = MLPRegressor(random_state=0, max_epochs=5).fit(X_train, y_train)
    prediction = model.predict(X_test)
    assert prediction.shape == (len(X_test),)
    assert 25 < prediction.mean() < 350  # diabetes progression scale, not a standardised one
    two_targets = np.column_stack([y_train, -y_train])
    assert model.fit(X_train, two_targets).predict(X_test).shape == (len(X_test), 2)


@pytest.mark.parametrize("batch_size", [None, 1, 32])
def test_every_batch_size_trains_for_max_epochs(iris, batch_size):
    X_train, X_test, y_train, y_test = iris
    lr = {None: 1.0, 1: 0.01, 32: 0.2}[batch_size]  # one step an epoch needs a bigger step
    model = SoftmaxRegression(optimizer="adam", batch_size=batch_size, lr=lr, max_epochs=8,
                              random_state=0)
    model.fit(X_train, y_train)
    assert model.n_epochs_ == 8
    assert all(len(curve) == 8 for curve in model.history_.values())
    assert model.history_["train_loss"][-1] < model.history_["train_loss"][0]
    assert model.score(X_test, y_test) > 0.7


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop", "adagrad"])
def test_every_optimizer_trains(iris, optimizer):
    X_train, X_test, y_train, y_test = iris
    lr = {"sgd": 0.1, "adam": 0.01, "rmsprop": 0.01, "adagrad": 0.1}[optimizer]
    model = MLPClassifier(optimizer=optimizer, lr=lr, momentum=0.9 if optimizer == "sgd" else 0.0)
    model.set_params(batch_size=16, max_epochs=15, random_state=0).fit(X_train, y_train)
    assert model.history_["train_loss"][-1] < model.history_["train_loss"][0] / 2
    assert model.score(X_test, y_test) >= 0.85


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu"])
def test_every_activation_trains(iris, activation):
    X_train, X_test, y_train, y_test = iris
    model = MLPClassifier(activation=activation, hidden_sizes=[16, 16], dropout=0.1, lr=0.01)
    model.set_params(batch_size=16, max_epochs=15, random_state=0).fit(X_train, y_train)
    assert model.score(X_test, y_test) >= 0.8


# -- history, early stopping, max_epochs ------------------------------------------------------


def test_history_keys_follow_task_and_validation(iris, diabetes):
    classifier = SoftmaxRegression(max_epochs=3, random_state=0).fit(*iris[::2])
    assert set(classifier.history_) == {"train_loss", "val_loss", "val_accuracy"}
    assert all(0 <= value <= 1 for value in classifier.history_["val_accuracy"])
    regressor = LinearRegression(max_epochs=3, random_state=0).fit(*diabetes[::2])
    assert set(regressor.history_) == {"train_loss", "val_loss", "val_r2"}
    without_validation = clone(regressor).set_params(validation_fraction=0).fit(*diabetes[::2])
    assert set(without_validation.history_) == {"train_loss"}
    assert all(isinstance(value, float) for value in without_validation.history_["train_loss"])


def test_early_stopping_stops_on_a_plateau(iris):
    X_train, _, y_train, _ = iris
    # A learning rate this small leaves the loss flat: no epoch improves by more than tol.
    model = MLPClassifier(lr=1e-9, early_stopping=True, patience=3, max_epochs=50, random_state=0)
    model.fit(X_train, y_train)
    assert model.n_epochs_ == 4  # the first epoch, then `patience` epochs without improvement
    assert len(model.history_["val_loss"]) == model.n_epochs_


def test_early_stopping_without_validation_watches_train_loss(iris):
    X_train, _, y_train, _ = iris
    model = MLPClassifier(
        lr=1e-9, early_stopping=True, patience=2, validation_fraction=0, max_epochs=50
    )
    model.set_params(random_state=0).fit(X_train, y_train)
    assert model.n_epochs_ == 3


def test_early_stopping_lets_a_learning_model_train(iris):
    X_train, _, y_train, _ = iris
    model = MLPClassifier(lr=0.01, early_stopping=True, patience=5, max_epochs=10, random_state=0)
    assert model.fit(X_train, y_train).n_epochs_ == 10


@pytest.mark.parametrize(
    ("max_epochs", "trainer", "expected"),
    [(4, None, 4), (None, {"max_epochs": 3}, 3), (2, {"max_epochs": 3}, 2), (None, None, 100)],
)
def test_max_epochs_rule(iris, max_epochs, trainer, expected):
    X_train, _, y_train, _ = iris
    model = SoftmaxRegression(
        optimizer="adam", max_epochs=max_epochs, trainer=trainer, batch_size=None,
        early_stopping=False, random_state=0,
    )
    assert model.fit(X_train, y_train).n_epochs_ == expected


# -- errors ----------------------------------------------------------------------------------


def test_divergence_names_lr_and_optimizer(diabetes):
    X_train, _, y_train, _ = diabetes
    # Plain gradient descent: Adam's steps are bounded by lr, so its loss grows but stays finite.
    model = LinearRegression(optimizer="sgd", lr=1e6, batch_size=None, max_epochs=20,
                             random_state=0)
    with pytest.raises(
        PipelineError,
        match=r"diverged at epoch \d+ .*model\.optimizer=sgd model\.lr=1e\+06: lower model\.lr",
    ):
        model.fit(X_train, y_train)


def test_logistic_refuses_three_classes_and_names_softmax(iris):
    X_train, _, y_train, _ = iris
    with pytest.raises(PipelineError, match=r"model=logistic.* 3 classes; use model=softmax"):
        LogisticRegression(max_epochs=1).fit(X_train, y_train)


def test_one_class_is_a_clear_error(iris):
    X_train, _, y_train, _ = iris
    with pytest.raises(PipelineError, match="only one class"):
        MLPClassifier(max_epochs=1).fit(X_train, np.zeros_like(y_train))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr": -1}, "model.lr must be null or > 0, got -1"),
        ({"lr": "fast"}, "model.lr must be null or > 0, got fast"),
        ({"optimizer": "foo"},
         "model.optimizer='foo' is not one of sgd, adam, rmsprop, adagrad, lbfgs"),
        ({"batch_size": 0}, "model.batch_size must be null or a positive integer, got 0"),
        ({"batch_size": 2.5}, "model.batch_size must be null or a positive integer"),
        ({"momentum": -0.1}, "model.momentum must be >= 0"),
        ({"weight_decay": -1}, "model.weight_decay must be >= 0"),
        ({"max_epochs": 0}, "model.max_epochs must be null or a positive integer, got 0"),
        ({"trainer": {"max_epochs": -2}}, "trainer.max_epochs must be a positive integer, got -2"),
        ({"trainer": {"no_such_argument": 1}}, "trainer.no_such_argument is not an argument"),
        ({"patience": 0}, "model.patience must be a positive integer"),
        ({"validation_fraction": 1.0}, r"model.validation_fraction must be in \[0, 1\)"),
        (
            {"hidden_sizes": [64, 0]},
            r"model.hidden_sizes must be a non-empty list of positive integers",
        ),
        ({"hidden_sizes": []}, r"model.hidden_sizes must be a non-empty list"),
        (
            {"activation": "swish"},
            "model.activation='swish' is not one of relu, tanh, sigmoid, gelu",
        ),
        ({"dropout": 1.5}, r"model.dropout must be in \[0, 1\)"),
        ({"optimizer": "lbfgs"}, r"^model.optimizer=lbfgs takes the whole training part at "
                                 r"every step, but model.batch_size=128; set "
                                 r"model.batch_size=null"),
    ],
)
def test_bad_parameters_are_named_before_training(iris, params, message):
    X_train, _, y_train, _ = iris
    model = MLPClassifier(**params)  # the constructor stores, never validates
    with pytest.raises(PipelineError, match=message):
        model.fit(X_train, y_train)


def test_parameters_can_be_checked_before_fit():
    from pipeline.compat.sklearn import parameter_error

    with pytest.raises(PipelineError, match="model.lr must be null or > 0, got 0"):
        parameter_error(LinearRegression(lr=0))
    assert parameter_error(MLPRegressor()) is None


def test_capabilities_are_declared_not_guessed_from_modules():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler as Scaler
    from sklearn.tree import DecisionTreeClassifier

    from pipeline.models import requires

    for model in (LogisticRegression(), SoftmaxRegression(), LinearRegression(), MLPRegressor()):
        assert requires(model) == {"torch", "device"}
    assert requires(make_pipeline(Scaler(), MLPClassifier())) == {"torch", "device"}
    assert requires(make_pipeline(Scaler(), DecisionTreeClassifier())) == frozenset()


@pytest.mark.parametrize(
    ("trainer", "message"),
    [
        ({"no_such_argument": 1}, r"^trainer.no_such_argument is not an argument"),
        ({"accumulate_grad_batches": 4}, r"^trainer.accumulate_grad_batches=4 is not supported"),
        ({"val_check_interval": 0.5}, r"^trainer.val_check_interval=0.5 is not supported.*"
                                      r"once per epoch"),
        ({"devices": 0}, r"^trainer.devices=0 is refused by Lightning's Trainer"),
    ],
)
def test_check_trainer_refuses_in_one_line_as_fit_would(iris, trainer, message):
    model = MLPClassifier(max_epochs=1, trainer=trainer)
    for attempt in (model.check_trainer, lambda: model.fit(*iris[::2])):
        with pytest.raises(PipelineError, match=message) as refused:
            attempt()
        assert "\n" not in str(refused.value)


def test_check_trainer_accepts_what_fit_accepts():
    MLPClassifier(trainer={"accelerator": "cpu", "max_steps": 3}).check_trainer()


# -- step-based Trainer arguments: every Lightning step is one mini-batch -----------------------


def test_max_steps_stops_after_that_many_optimizer_steps(iris):
    X_train, _, y_train, _ = iris  # 112 rows: 101 to train on, 7 batches of 16 an epoch
    model = SoftmaxRegression(optimizer="adam", batch_size=16, max_epochs=50, random_state=0)
    model.set_params(trainer={"max_steps": 10}).fit(X_train, y_train)
    assert model.n_steps_ == 10
    assert model.n_epochs_ == 2 and len(model.history_["val_loss"]) == 2
    unlimited = clone(model).set_params(trainer=None, max_epochs=3).fit(X_train, y_train)
    assert unlimited.n_steps_ == 3 * 7


def test_limit_train_batches_limits_each_epoch(iris):
    model = SoftmaxRegression(optimizer="adam", batch_size=16, max_epochs=3, random_state=0)
    model.set_params(trainer={"limit_train_batches": 2}).fit(*iris[::2])
    assert model.n_steps_ == 3 * 2 and model.n_epochs_ == 3
    half = clone(model).set_params(trainer={"limit_train_batches": 0.5}).fit(*iris[::2])
    assert half.n_steps_ == 3 * 3  # int(7 * 0.5) batches an epoch


def test_a_lightning_step_per_batch_learns_the_same_weights(iris):
    X_train, X_test, y_train, _ = iris
    model = MLPClassifier(batch_size=16, max_epochs=4, dropout=0.1, random_state=0)
    fused = clone(model).fit(X_train, y_train)
    per_batch = clone(model).set_params(trainer={"max_steps": 10**6}).fit(X_train, y_train)
    assert per_batch.n_steps_ == fused.n_steps_ == 4 * 7
    np.testing.assert_allclose(per_batch.predict_proba(X_test), fused.predict_proba(X_test),
                               rtol=1e-6)
    assert per_batch.history_.keys() == fused.history_.keys()
    for curve, values in fused.history_.items():
        assert per_batch.history_[curve] == pytest.approx(values), curve


# -- L-BFGS, the linear models' default ------------------------------------------------------


def test_lbfgs_reaches_least_squares_and_stops_once_converged(diabetes):
    X_train, X_test, y_train, _ = diabetes
    model = LinearRegression(validation_fraction=0, early_stopping=False, random_state=0)
    model.fit(X_train, y_train)
    design = np.column_stack([X_train, np.ones(len(X_train))])
    coef = np.linalg.lstsq(design, y_train, rcond=None)[0]
    ols = np.column_stack([X_test, np.ones(len(X_test))]) @ coef
    np.testing.assert_allclose(model.predict(X_test), ols, rtol=1e-3)
    # Converged long before max_epochs (100): in float32 this ill-conditioned problem stops on
    # a loss that no longer falls, not on the gradient.
    assert model.n_steps_ <= model.n_epochs_ < 50


def test_lbfgs_a_lightning_epoch_per_iteration_learns_the_same_weights(iris):
    X_train, X_test, y_train, _ = iris
    model = SoftmaxRegression(max_epochs=40, patience=3, random_state=0)
    fused = clone(model).fit(X_train, y_train)
    per_epoch = clone(model).set_params(trainer={"max_steps": 10**6}).fit(X_train, y_train)
    assert per_epoch.n_steps_ == fused.n_steps_ and per_epoch.n_epochs_ == fused.n_epochs_
    np.testing.assert_allclose(per_epoch.predict_proba(X_test), fused.predict_proba(X_test),
                               rtol=1e-6)
    for curve, values in fused.history_.items():
        assert per_epoch.history_[curve] == pytest.approx(values), curve


def test_per_batch_callbacks_see_every_optimizer_step(iris):
    import lightning.pytorch as pl

    seen = []

    class CountBatches(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(trainer.global_step)

    model = SoftmaxRegression(optimizer="adam", batch_size=16, max_epochs=2, random_state=0,
                              trainer={"callbacks": [CountBatches()]})
    model.fit(*iris[::2])
    assert seen == list(range(1, model.n_steps_ + 1)) and model.n_steps_ == 2 * 7


# -- a new architecture: one small class ------------------------------------------------------


def test_a_subclass_lists_its_own_and_the_shared_arguments():
    from pipeline.models.neural import TorchRegressor

    class Wide(TorchRegressor):
        def __init__(self, *, width=8, lr=0.05, **shared):
            super().__init__(lr=lr, **shared)
            self.width = width

    params = Wide(width=3, patience=2).get_params()
    assert params["width"] == 3 and params["lr"] == 0.05 and params["patience"] == 2
    assert set(params) == set(LinearRegression().get_params()) | {"width"}
    model = Wide(width=5, momentum=0.5)
    assert clone(model).get_params() == model.get_params()


def test_logistic_threshold_is_validated(breast_cancer):
    with pytest.raises(PipelineError, match=r"model.threshold must be in \(0, 1\)"):
        LogisticRegression(threshold=1.5).fit(*breast_cancer[::2])


def test_nan_input_is_a_value_error(iris):
    X_train, _, y_train, _ = iris
    X_bad = X_train.copy()
    X_bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier(max_epochs=1).fit(X_bad, y_train)


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason="needs a machine without a CUDA GPU: the test asks for one")
def test_asking_for_a_missing_gpu_is_a_clear_error(iris):
    with pytest.raises(
        PipelineError, match="trainer=gpu was asked for but no CUDA GPU is available"
    ):
        MLPClassifier(max_epochs=1, trainer={"accelerator": "gpu"}).fit(*iris[::2])


def test_keyboard_interrupt_reaches_the_caller_with_sigint_restored(iris):
    import lightning.pytorch as pl

    class PressCtrlC(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            raise KeyboardInterrupt

    handler = signal.getsignal(signal.SIGINT)
    model = MLPClassifier(max_epochs=5, trainer={"callbacks": [PressCtrlC()]}, random_state=0)
    with pytest.raises(KeyboardInterrupt):
        model.fit(*iris[::2])
    assert signal.getsignal(signal.SIGINT) is handler


# -- determinism and estimator plumbing ------------------------------------------------------


def test_same_seed_same_model_other_seed_other_model(iris):
    X_train, X_test, y_train, _ = iris

    def fit(seed):
        model = MLPClassifier(random_state=seed, max_epochs=3, dropout=0.2, hidden_sizes=[8])
        return model.fit(X_train, y_train).predict_proba(X_test)

    np.testing.assert_array_equal(fit(0), fit(0))
    assert not np.allclose(fit(0), fit(1))


def test_fit_leaves_global_random_state_alone(iris):
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    MLPClassifier(random_state=0, max_epochs=2, dropout=0.5).fit(*iris[::2])
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == numpy_state[1].tolist()


def test_clone_and_params_round_trip():
    model = MLPClassifier(
        hidden_sizes=(32, 16), lr=0.01, batch_size=None, trainer={"accelerator": "cpu"}
    )
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert copy.set_params(lr=0.5).lr == 0.5
    assert model.lr == 0.01


def test_pickled_model_predicts_the_same(iris):
    X_train, X_test, y_train, _ = iris
    model = MLPClassifier(random_state=0, max_epochs=3).fit(X_train, y_train)
    assert next(model.module_.parameters()).device.type == "cpu"
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X_test), model.predict_proba(X_test))


def test_accepts_dataframes(iris):
    X_train, X_test, y_train, _ = iris
    columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    frame = pd.DataFrame(X_train, columns=columns)
    model = SoftmaxRegression(random_state=0, max_epochs=3).fit(frame, pd.Series(y_train))
    assert list(model.feature_names_in_) == columns
    assert model.predict(pd.DataFrame(X_test, columns=columns)).shape == (len(X_test),)


def test_fit_prints_no_lightning_banners(iris, capfd):
    MLPClassifier(random_state=0, max_epochs=2).fit(*iris[::2])
    out, err = capfd.readouterr()
    assert out == ""
    for banner in ("GPU available", "TPU available", "LOCAL_RANK", "Tip", "max_epochs", "LeafSpec"):
        assert banner not in err


def test_importing_and_constructing_do_not_import_torch():
    code = (
        "import sys; import pipeline.models.neural as m; m.MLPClassifier(); m.LogisticRegression();"
        "assert 'torch' not in sys.modules and 'lightning' not in sys.modules, 'torch imported'"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@parametrize_with_checks(
    [
        LogisticRegression(max_epochs=20),
        SoftmaxRegression(max_epochs=20),
        LinearRegression(max_epochs=20),
        MLPClassifier(max_epochs=20),
        MLPRegressor(max_epochs=20),
    ],
)
def test_scikit_learn_estimator_checks(estimator, check, monkeypatch):
    # scikit-learn's array-API check (NumPy inputs with array-API dispatch on: the same
    # results) runs only where SciPy's array-API flag is set; set for this check alone, as its
    # NumPy inputs take SciPy's NumPy path whatever the flag was at SciPy's import.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


# -- other devices and strategies ------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason=NEEDS_GPU)
@pytest.mark.parametrize("precision", ["32-true", "16-mixed"])
def test_fits_on_a_gpu(iris, precision):
    X_train, X_test, y_train, y_test = iris
    trainer = {"accelerator": "gpu", "devices": 1, "precision": precision}
    model = MLPClassifier(random_state=0, lr=0.01, max_epochs=20, trainer=trainer).fit(
        X_train, y_train
    )
    assert next(model.module_.parameters()).device.type == "cpu"
    assert model.score(X_test, y_test) >= 0.85
    assert len(model.history_["val_loss"]) == 20


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason=NEEDS_GPU)
def test_auto_accelerator_uses_the_gpu(iris):
    import lightning.pytorch as pl

    seen = []

    class RecordDevice(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen.append(pl_module.device.type)

    MLPClassifier(max_epochs=1, trainer={"callbacks": [RecordDevice()]}).fit(*iris[::2])
    assert seen == ["cuda"]


@pytest.mark.slow
def test_ddp_spawn_on_two_cpu_processes_brings_back_weights_and_history(iris):
    X_train, X_test, y_train, y_test = iris
    trainer = {"accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn"}
    # sgd with momentum on mini-batches, every epoch run: what this test has always trained
    # (the defaults, adam on batches of 128, take one step an epoch on each rank's 56 rows).
    model = SoftmaxRegression(optimizer="sgd", lr=0.1, momentum=0.9, batch_size=32,
                              early_stopping=False, random_state=0, max_epochs=30,
                              trainer=trainer).fit(X_train, y_train)
    assert len(model.history_["train_loss"]) == 30
    assert model.history_["train_loss"][-1] < model.history_["train_loss"][0]
    assert model.score(X_test, y_test) >= 0.8
