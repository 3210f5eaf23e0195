"""Torch models as scikit-learn estimators: ``fit`` hands a LightningModule to a Lightning Trainer.

Importing this module, or constructing an estimator, does not import torch or Lightning.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from pipeline.errors import PipelineError

OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu")
DEFAULT_MAX_EPOCHS = 100
_PREDICT_CHUNK = 65536


class _TargetError(PipelineError, ValueError):
    """A target these estimators cannot learn from; a ValueError too, as scikit-learn expects."""


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


class _NeuralEstimator(BaseEstimator):
    """Shared fit/predict machinery; subclasses declare their parameters and their task.

    Training settings common to every torch estimator (their ``model.<name>`` config keys):

    - ``optimizer``: one of ``sgd``, ``adam``, ``rmsprop``, ``adagrad``; ``lr`` its learning rate,
      ``momentum`` (sgd and rmsprop only), ``weight_decay`` the L2 penalty.
    - ``batch_size``: ``None`` for full-batch gradient descent, 1 for pure SGD, N for mini-batches;
      the training data is reshuffled every epoch.
    - ``max_epochs``: the number of epochs. The rule: the estimator's ``max_epochs`` when it is not
      None, else ``trainer['max_epochs']`` when given and not None, else 100.
    - ``validation_fraction``: share of the data given to ``fit`` held out (stratified for
      classifiers) for the per-epoch ``val_*`` curves and early stopping; 0 holds out nothing.
    - ``early_stopping``: stop once the monitored loss has not improved by more than ``tol``
      (absolute) for ``patience`` epochs. It monitors ``val_loss``, or ``train_loss`` when there
      is no validation part. The weights are those of the last epoch run.
    - ``random_state``: seeds weight initialisation, shuffling, dropout and the validation split;
      the same value gives the same weights on the CPU. Global RNG state is left untouched.
    - ``trainer``: extra Lightning ``Trainer`` arguments (``accelerator``, ``devices``,
      ``strategy``, ``precision``, ``callbacks``, ...). They override this estimator's lean
      defaults (no logger, no checkpointing, no model summary; a progress bar only on a terminal
      outside CI); ``max_epochs`` follows the rule above.

    After ``fit``: ``module_`` (the torch network, on the CPU), ``history_`` (per-epoch lists:
    ``train_loss``, and with a validation part ``val_loss`` plus ``val_accuracy`` or ``val_r2``),
    ``n_epochs_`` (epochs actually run) and ``n_features_in_``; the models without hidden layers
    also have scikit-learn's ``coef_`` and ``intercept_``. Regressors learn a standardised
    target, so their losses are in units of the target's variance.
    """

    _task: str  # "binary", "multiclass" or "regression"
    _model_name: str  # the config group option, for error messages
    _has_hidden_layers = False

    # -- fit ---------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> _NeuralEstimator:
        """Trains the network on ``X``, ``y``; returns ``self``."""
        settings = self._validated_settings()
        X, y = self._validate_training_data(X, y)
        y_encoded, n_outputs = self._encode_target(y)

        seed = self._seed()
        train_rows, val_rows = self._split(y_encoded, seed)

        from pipeline.models import _lightning

        spec = _lightning.TrainSpec(task=self._task, seed=seed, **settings)
        X_t, y_t = self._tensors(X, y_encoded)
        data = (X_t[train_rows], y_t[train_rows])
        val_data = (X_t[val_rows], y_t[val_rows]) if val_rows is not None else None
        self.module_, self.history_ = _lightning.train(
            spec, X.shape[1], n_outputs, self._network_args(), data, val_data
        )
        self.n_epochs_ = len(self.history_["train_loss"])
        if not self._has_hidden_layers:
            layer = self.module_[0]
            self._set_coefficients(
                layer.weight.detach().double().numpy(), layer.bias.detach().double().numpy()
            )
        return self

    def _validate_params(self) -> None:
        """Raises PipelineError for a bad constructor argument, as ``fit`` does before training.

        Lets a runner check a config before any long work.
        """
        self._validated_settings()

    def _network_args(self) -> dict[str, Any]:
        if not self._has_hidden_layers:
            return {"hidden_sizes": (), "activation": "relu", "dropout": 0.0}
        return {
            "hidden_sizes": _hidden_sizes(self),
            "activation": self.activation,
            "dropout": self.dropout,
        }

    def _validated_settings(self) -> dict[str, Any]:
        """Checks the constructor arguments; returns the settings for the Lightning side."""
        if self.optimizer not in OPTIMIZERS:
            raise PipelineError(
                f"model.optimizer={self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}"
            )
        if not _is_number(self.lr) or self.lr <= 0:
            raise PipelineError(f"model.lr must be > 0, got {self.lr}")
        for key in ("momentum", "weight_decay", "tol"):
            value = getattr(self, key)
            if not _is_number(value) or value < 0:
                raise PipelineError(f"model.{key} must be >= 0, got {value}")
        if self.batch_size is not None and not (_is_int(self.batch_size) and self.batch_size > 0):
            raise PipelineError(
                f"model.batch_size must be null or a positive integer, got {self.batch_size}"
            )
        if not isinstance(self.early_stopping, bool | np.bool_):
            raise PipelineError(
                f"model.early_stopping must be true or false, got {self.early_stopping}"
            )
        if not (_is_int(self.patience) and self.patience > 0):
            raise PipelineError(f"model.patience must be a positive integer, got {self.patience}")
        fraction = self.validation_fraction
        if not _is_number(fraction) or not 0 <= fraction < 1:
            raise PipelineError(f"model.validation_fraction must be in [0, 1), got {fraction}")
        if self.trainer is not None and not isinstance(self.trainer, Mapping):
            raise PipelineError(
                f"trainer must be a mapping of Lightning Trainer arguments, got {self.trainer!r}"
            )
        trainer_kwargs = _plain(self.trainer or {})
        max_epochs, key = self.max_epochs, "model.max_epochs"
        if max_epochs is None:
            max_epochs, key = trainer_kwargs.get("max_epochs"), "trainer.max_epochs"
        if max_epochs is None:
            max_epochs = DEFAULT_MAX_EPOCHS
        if not (_is_int(max_epochs) and max_epochs > 0):
            raise PipelineError(f"{key} must be a positive integer, got {max_epochs}")
        if self._has_hidden_layers:
            _hidden_sizes(self)
            if self.activation not in ACTIVATIONS:
                raise PipelineError(
                    f"model.activation={self.activation!r} is not one of {', '.join(ACTIVATIONS)}"
                )
            if not _is_number(self.dropout) or not 0 <= self.dropout < 1:
                raise PipelineError(f"model.dropout must be in [0, 1), got {self.dropout}")
        settings = {
            "optimizer": self.optimizer,
            "lr": float(self.lr),
            "momentum": float(self.momentum),
            "weight_decay": float(self.weight_decay),
            "batch_size": None if self.batch_size is None else int(self.batch_size),
            "max_epochs": int(max_epochs),
            "early_stopping": bool(self.early_stopping),
            "patience": int(self.patience),
            "tol": float(self.tol),
            "trainer_kwargs": trainer_kwargs,
        }
        if self._task == "binary":
            if not _is_number(self.threshold) or not 0 < self.threshold < 1:
                raise PipelineError(f"model.threshold must be in (0, 1), got {self.threshold}")
            settings["threshold"] = float(self.threshold)
        return settings

    def _validate_training_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        return validate_data(self, X, y, dtype=(np.float32, np.float64))

    def _seed(self) -> int:
        if _is_int(self.random_state):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _split(self, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Row indices of the training and the validation part (None when there is none)."""
        n = len(y)
        n_val = math.ceil(self.validation_fraction * n)
        if n_val == 0 or n_val >= n:
            return np.arange(n), None
        splitter = ShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
        if self._task != "regression":
            counts = np.bincount(y)
            n_classes = len(counts)
            if counts.min() >= 2 and n_val >= n_classes and n - n_val >= n_classes:
                splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
        train_rows, val_rows = next(splitter.split(np.zeros((n, 1)), y))
        return np.sort(train_rows), np.sort(val_rows)

    # -- predict -----------------------------------------------------------------------------

    def _forward(self, X: Any) -> np.ndarray:
        """The network's raw outputs for ``X``, as float64."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float32, np.float64))
        import torch

        parameter = next(self.module_.parameters())
        outputs = []
        with torch.no_grad():
            for start in range(0, max(len(X), 1), _PREDICT_CHUNK):
                chunk = torch.tensor(X[start : start + _PREDICT_CHUNK], dtype=parameter.dtype)
                outputs.append(self.module_(chunk).double().numpy())
        return np.concatenate(outputs)


def _plain(value: Any) -> Any:
    """Config containers (e.g. OmegaConf's) as plain dicts and lists, which Lightning expects."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(item) for item in value]
    return value


def _hidden_sizes(estimator: Any) -> tuple[int, ...]:
    """``hidden_sizes`` as a tuple of positive ints; a single int means one hidden layer."""
    sizes = estimator.hidden_sizes
    if _is_int(sizes):
        sizes = (sizes,)
    ok = (
        isinstance(sizes, Sequence)
        and not isinstance(sizes, str)
        and len(sizes) > 0
        and all(_is_int(size) and size > 0 for size in sizes)
    )
    if not ok:
        raise PipelineError(
            "model.hidden_sizes must be a non-empty list of positive integers (e.g. [64, 32]), "
            f"got {sizes}"
        )
    return tuple(int(size) for size in sizes)


class _NeuralClassifier(ClassifierMixin, _NeuralEstimator):
    def _encode_target(self, y: np.ndarray) -> tuple[np.ndarray, int]:
        check_classification_targets(y)
        self.classes_, y_encoded = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise _TargetError(
                f"model={self._model_name} needs at least 2 classes, but the target has only "
                f"one class: {self.classes_[0]!r}"
            )
        if self._task == "binary" and n_classes > 2:
            raise _TargetError(
                f"Only binary classification is supported by model={self._model_name}, but the "
                f"target has {n_classes} classes; use model=softmax or model=mlp"
            )
        return y_encoded, 1 if self._task == "binary" else n_classes

    def _tensors(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        import torch

        target = torch.tensor(y, dtype=torch.float32 if self._task == "binary" else torch.long)
        return torch.tensor(X, dtype=torch.float32), target

    def _set_coefficients(self, weight: np.ndarray, bias: np.ndarray) -> None:
        # scikit-learn's shapes: (1 or n_classes, n_features) and (1 or n_classes,)
        self.coef_, self.intercept_ = weight, bias

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns ordered as ``classes_``."""
        logits = self._forward(X)
        if self._task == "binary":
            positive = 1 / (1 + np.exp(-logits[:, 0]))
            return np.column_stack([1 - positive, positive])
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class (for the binary logistic model: P(positive) > ``threshold``)."""
        logits = self._forward(X)
        if self._task == "binary":
            positive = 1 / (1 + np.exp(-logits[:, 0]))
            return self.classes_[(positive > self.threshold).astype(int)]
        return self.classes_[logits.argmax(axis=1)]


class _NeuralRegressor(RegressorMixin, _NeuralEstimator):
    _task = "regression"

    def _validate_training_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        return validate_data(
            self, X, y, dtype=(np.float32, np.float64), y_numeric=True, multi_output=True
        )

    def _encode_target(self, y: np.ndarray) -> tuple[np.ndarray, int]:
        y = np.asarray(y, dtype=np.float64)
        self._y_2d = y.ndim == 2
        y2 = y.reshape(len(y), -1)
        # Learning a standardised target keeps one learning rate sensible for any target scale.
        self.target_mean_ = y2.mean(axis=0)
        scale = y2.std(axis=0)
        self.target_scale_ = np.where(scale > 0, scale, 1.0)
        return (y2 - self.target_mean_) / self.target_scale_, y2.shape[1]

    def _tensors(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        import torch

        return torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)

    def _set_coefficients(self, weight: np.ndarray, bias: np.ndarray) -> None:
        # Back from the standardised target to its own units, in scikit-learn's shapes.
        coef = weight * self.target_scale_[:, None]
        intercept = bias * self.target_scale_ + self.target_mean_
        self.coef_, self.intercept_ = (coef, intercept) if self._y_2d else (coef[0], intercept[0])

    def predict(self, X: Any) -> np.ndarray:
        """Predicted target values, shaped like the ``y`` given to ``fit``."""
        prediction = self._forward(X) * self.target_scale_ + self.target_mean_
        return prediction if self._y_2d else prediction[:, 0]

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


class LogisticRegression(_NeuralClassifier):
    """Binary logistic regression: one linear unit, sigmoid, trained on binary cross-entropy.

    ``predict`` says positive when P(positive) > ``threshold``. For more than two classes use
    :class:`SoftmaxRegression`. Other parameters: see the shared training settings below.
    """

    _task = "binary"
    _model_name = "logistic"

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        optimizer: str = "sgd",
        lr: float = 0.1,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        batch_size: int | None = 32,
        max_epochs: int | None = None,
        early_stopping: bool = False,
        patience: int = 10,
        tol: float = 1e-4,
        validation_fraction: float = 0.1,
        random_state: int | None = None,
        trainer: Mapping[str, Any] | None = None,
    ) -> None:
        self.threshold = threshold
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.patience = patience
        self.tol = tol
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.trainer = trainer

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


class SoftmaxRegression(_NeuralClassifier):
    """Multinomial logistic regression: a linear layer and softmax, trained on cross-entropy."""

    _task = "multiclass"
    _model_name = "softmax"

    def __init__(
        self,
        *,
        optimizer: str = "sgd",
        lr: float = 0.1,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        batch_size: int | None = 32,
        max_epochs: int | None = None,
        early_stopping: bool = False,
        patience: int = 10,
        tol: float = 1e-4,
        validation_fraction: float = 0.1,
        random_state: int | None = None,
        trainer: Mapping[str, Any] | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.patience = patience
        self.tol = tol
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.trainer = trainer


class LinearRegression(_NeuralRegressor):
    """Linear regression fitted by gradient descent on the mean squared error."""

    _model_name = "linear"

    def __init__(
        self,
        *,
        optimizer: str = "sgd",
        lr: float = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        batch_size: int | None = 32,
        max_epochs: int | None = None,
        early_stopping: bool = False,
        patience: int = 10,
        tol: float = 1e-4,
        validation_fraction: float = 0.1,
        random_state: int | None = None,
        trainer: Mapping[str, Any] | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.patience = patience
        self.tol = tol
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.trainer = trainer


# The two MLPs take the same arguments; scikit-learn reads them from this signature.
def _mlp_init(
    self,
    *,
    hidden_sizes: Sequence[int] = (64,),
    activation: str = "relu",
    dropout: float = 0.0,
    optimizer: str = "adam",
    lr: float = 1e-3,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    batch_size: int | None = 64,
    max_epochs: int | None = None,
    early_stopping: bool = False,
    patience: int = 10,
    tol: float = 1e-4,
    validation_fraction: float = 0.1,
    random_state: int | None = None,
    trainer: Mapping[str, Any] | None = None,
) -> None:
    self.hidden_sizes = hidden_sizes
    self.activation = activation
    self.dropout = dropout
    self.optimizer = optimizer
    self.lr = lr
    self.momentum = momentum
    self.weight_decay = weight_decay
    self.batch_size = batch_size
    self.max_epochs = max_epochs
    self.early_stopping = early_stopping
    self.patience = patience
    self.tol = tol
    self.validation_fraction = validation_fraction
    self.random_state = random_state
    self.trainer = trainer


class MLPClassifier(_NeuralClassifier):
    """Multilayer perceptron classifier: hidden layers, then a softmax head on cross-entropy.

    ``hidden_sizes`` lists the hidden layers' widths; ``activation`` is one of relu, tanh,
    sigmoid, gelu; ``dropout`` the drop probability after each hidden layer.
    """

    _task = "multiclass"
    _model_name = "mlp"
    _has_hidden_layers = True

    __init__ = _mlp_init


class MLPRegressor(_NeuralRegressor):
    """Multilayer perceptron regressor: hidden layers, then a linear head on the squared error.

    ``hidden_sizes``, ``activation`` and ``dropout`` as for :class:`MLPClassifier`.
    """

    _model_name = "mlp"
    _has_hidden_layers = True

    __init__ = _mlp_init
