"""The torch family's base estimator (:class:`TorchEstimator`, and its classifier and regressor
halves): the shared training arguments, their checks, and fit/predict through Lightning.

Importing this module, or constructing an estimator, does not import torch or Lightning.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from pipeline.errors import PipelineError
from pipeline.models.heads import Head, MulticlassHead, RegressionHead
from pipeline.models.parameters import COUNT, TORCH_PARAMETER_CONSTRAINTS, check
from pipeline.models.spec import Prepared, TrainSpec
from pipeline.spec import is_int

# `lr=None`: the optimizer's usual rate (for lbfgs, the first step its line search tries).
DEFAULT_LR = {"sgd": 0.03, "adam": 0.03, "rmsprop": 0.03, "adagrad": 0.03, "lbfgs": 1.0}
DEFAULT_MAX_EPOCHS = 100
_PREDICT_CHUNK = 65536


class _TargetError(PipelineError, ValueError):
    """A target these estimators cannot learn from; a ValueError too, as scikit-learn expects."""



class TorchEstimator(BaseEstimator):
    """The torch family's shared arguments, their validation, and fit/predict through Lightning.

    Training settings common to every torch estimator (their ``model.<name>`` config keys, whose
    values ``conf/torch_model.yaml`` reads from these signatures: the defaults' one home):

    - ``optimizer``: one of ``sgd``, ``adam`` (default), ``rmsprop``, ``adagrad``, ``lbfgs``
      (the default of the linear models); ``lr`` its learning rate (None: 0.03, for lbfgs 1; 3e-3
      for the MLPs), ``momentum`` (sgd and rmsprop only; 0), ``weight_decay`` the L2 penalty
      (0; for lbfgs ``weight_decay / 2`` times the parameters' squared norm joins the loss, which
      gives the gradient the other optimizers' decay).
    - ``batch_size``: ``None`` for full-batch gradient descent, 1 for pure SGD, N for mini-batches
      (128); the training data is reshuffled every epoch. lbfgs takes the whole training part
      at every step: it needs ``batch_size=None``.
    - lbfgs is torch's L-BFGS with a strong-Wolfe line search, full batch, the one optimizer
      step of an epoch: ``max_epochs`` bounds its iterations (as scikit-learn's ``max_iter``),
      and it stops early once it has converged: when no entry of the gradient exceeds ``tol``
      (as scikit-learn's L-BFGS ``tol``), or an iteration lowers the loss by less than 64
      machine epsilons (relative; scikit-learn's ``ftol``). Under DDP every rank steps on the
      mean loss and gradient of all shards; it refuses ``precision=16-mixed`` (gradient
      scaling).
    - ``max_epochs``: the number of epochs, an upper bound under early stopping. The rule: the
      estimator's ``max_epochs`` when it is not None, else ``trainer['max_epochs']`` when given
      and not None, else 100.
    - ``validation_fraction``: share of the data given to ``fit`` held out (stratified for
      classifiers) for the per-epoch ``val_*`` curves and early stopping (0.1); 0 holds out
      nothing.
    - ``early_stopping`` (on by default): stop once the monitored loss has not improved by more
      than ``tol`` (absolute, 1e-4) for ``patience`` epochs (10). It monitors ``val_loss``, or
      ``train_loss`` when there is no validation part. The weights are those of the last epoch
      run (``patience`` epochs past the best one, when it stopped early); with
      ``early_stopping=False`` all ``max_epochs`` epochs run.
    - ``random_state``: seeds weight initialisation, shuffling, dropout and the validation split;
      the same value gives the same weights on the CPU. Global RNG state is left untouched.
    - ``trainer``: extra Lightning ``Trainer`` arguments (``accelerator``, ``devices``,
      ``strategy``, ``precision``, ``callbacks``, ``max_steps``, ``limit_train_batches``, ...).
      They override this estimator's lean defaults (no logger, no checkpointing, no model
      summary; a progress bar only on a terminal outside CI); ``max_epochs`` follows the rule
      above. Every Lightning step is one mini-batch's optimizer step.

    After ``fit``: ``module_`` (the torch network, on the CPU), ``history_`` (per-epoch lists:
    ``train_loss``, and with a validation part ``val_loss`` plus ``val_accuracy`` or ``val_r2``),
    ``n_epochs_`` (epochs run), ``n_steps_`` (optimizer steps taken), ``head_`` (the fitted
    :mod:`~pipeline.models.heads` head) and ``n_features_in_``; a network that is one linear
    layer also gives scikit-learn's ``coef_`` and ``intercept_``.

    A subclass's ``__init__`` takes its own arguments (and any default it changes) and passes
    the rest on as ``**shared``; its signature, as scikit-learn reads it, is completed with the
    shared ones, so ``get_params``, ``set_params`` and ``clone`` see every argument.
    """

    # What this family needs beyond scikit-learn (see `pipeline.models.requires`).
    pipeline_requires: ClassVar[frozenset[str]] = frozenset({"torch", "device"})
    # The config group option, for error messages; None: the class's name.
    model_name: ClassVar[str | None] = None

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = TORCH_PARAMETER_CONSTRAINTS

    def __init__(
        self,
        *,
        optimizer: str = "adam",
        lr: float | None = None,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        batch_size: int | None = 128,
        max_epochs: int | None = None,
        early_stopping: bool = True,
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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Completes a subclass's ``__init__(self, *, own..., **shared)`` signature with the
        shared arguments it passes on, so that scikit-learn's ``get_params`` lists them all."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        own = inspect.signature(init)
        parameters = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
        if len(parameters) < len(own.parameters):
            names = {p.name for p in parameters}
            inherited = inspect.signature(super(cls, cls).__init__).parameters.values()
            parameters += [p for p in inherited if p.name not in names and p.name != "self"]
        init.__signature__ = own.replace(parameters=parameters)

    # -- what a subclass provides ------------------------------------------------------------

    def build_network(self, n_features: int, n_outputs: int) -> Any:
        """The network to train: a ``torch.nn.Module`` from ``n_features`` inputs to
        ``n_outputs`` raw outputs (logits, or the standardised target). Called inside ``fit``,
        under the estimator's seed; this default is one linear layer."""
        from torch import nn

        return nn.Sequential(nn.Linear(n_features, n_outputs))

    def make_head(self) -> Head:
        """The task's head, unfitted: loss, validation score, target encoding, predictions."""
        raise NotImplementedError

    # -- checks ------------------------------------------------------------------------------

    def _validate_params(self) -> None:
        """Checks every argument against ``_parameter_constraints``; a refusal is a
        PipelineError of one line that names the key, as ``fit`` raises before training."""
        params = self.get_params(deep=False)
        for name, constraints in self._parameter_constraints.items():
            check(f"model.{name}", params[name], constraints)

    def check_trainer(self) -> None:
        """Validates the arguments and builds the Lightning Trainer as ``fit`` will (the same
        code), so that a setting Lightning refuses is a PipelineError before any training.
        Imports torch and Lightning."""
        from pipeline.models import trainer

        spec = self.training_spec(seed=0)
        monitor = "val_loss" if self.validation_fraction > 0 else "train_loss"
        trainer.make_trainer(spec, monitor)

    def training_spec(self, seed: int) -> TrainSpec:
        """The validated settings for the Lightning side."""
        self._validate_params()
        if self.optimizer == "lbfgs" and self.batch_size is not None:
            raise PipelineError(
                f"model.optimizer=lbfgs takes the whole training part at every step, but "
                f"model.batch_size={self.batch_size}; set model.batch_size=null or choose "
                f"another model.optimizer")
        trainer_kwargs = _plain(self.trainer or {})
        max_epochs = self.max_epochs
        if max_epochs is None:
            max_epochs = trainer_kwargs.get("max_epochs")
            if max_epochs is not None:
                check("trainer.max_epochs", max_epochs, [COUNT])
        return TrainSpec(
            head=self.make_head(),
            optimizer=self.optimizer,
            lr=float(DEFAULT_LR[self.optimizer] if self.lr is None else self.lr),
            momentum=float(self.momentum),
            weight_decay=float(self.weight_decay),
            batch_size=None if self.batch_size is None else int(self.batch_size),
            max_epochs=int(DEFAULT_MAX_EPOCHS if max_epochs is None else max_epochs),
            early_stopping=bool(self.early_stopping),
            patience=int(self.patience),
            tol=float(self.tol),
            seed=seed,
            trainer_kwargs=trainer_kwargs,
        )

    # -- fit ---------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> TorchEstimator:
        """Trains the network on ``X``, ``y``; returns ``self``."""
        from pipeline.models import fitting

        prepared = self.prepare_fit(X, y)
        fitted = fitting.train(prepared.spec, prepared.build, prepared.data, prepared.val_data)
        return self.finish_fit(prepared.spec.head, *fitted)

    def prepare_fit(self, X: Any, y: Any) -> Prepared:
        """What ``fit`` trains: the checked spec, the network's builder and the training and
        validation tensors (a :class:`~pipeline.models.spec.Prepared`). The fold-parallel
        path (:mod:`pipeline.models.batched`) prepares each fold with it too."""
        self._validate_params()
        spec = self.training_spec(seed=self._seed())
        X, y = self._validate_training_data(X, y)
        head = spec.head
        y_encoded, n_outputs = head.encode(y)
        self._check_target(head)
        train_rows, val_rows = self._split(y_encoded, spec.seed, head.stratify)

        import torch

        from pipeline.models.tensors import as_tensor, take_rows

        # Shares X's memory where it is float32 and C-ordered (the preprocessing's output for
        # float32 data); the rows of each part are then taken once.
        X_t, y_t = as_tensor(X, torch.float32), head.target_tensor(y_encoded)
        if val_rows is None:
            data, val_data = (X_t, y_t), None
        else:
            take, train_rows, val_rows = (take_rows, torch.from_numpy(train_rows),
                                          torch.from_numpy(val_rows))
            data = (take(X_t, train_rows), take(y_t, train_rows))
            val_data = (take(X_t, val_rows), take(y_t, val_rows))
        del X_t
        n_features = X.shape[1]
        return Prepared(
            spec, lambda: self.build_network(n_features, n_outputs), data, val_data,
            n_features, n_outputs,
        )

    def finish_fit(
        self, head: Head, module: Any, history: dict[str, list[float]], n_steps: int
    ) -> TorchEstimator:
        """Sets the fitted attributes from the trained network (on the CPU); returns ``self``."""
        from pipeline.models.tensors import single_linear_layer

        self.head_ = head
        self.module_, self.history_, self.n_steps_ = module, history, n_steps
        self.n_epochs_ = len(self.history_["train_loss"])
        layer = single_linear_layer(self.module_)
        if layer is not None:
            self.coef_, self.intercept_ = head.coefficients(
                layer.weight.detach().double().numpy(), layer.bias.detach().double().numpy()
            )
        return self

    def _validate_training_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        return validate_data(self, X, y, dtype=(np.float32, np.float64))

    def _check_target(self, head: Head) -> None:
        """A target the head has encoded that the model still cannot learn from."""

    def _seed(self) -> int:
        if is_int(self.random_state):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _split(
        self, y: np.ndarray, seed: int, stratify: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Row indices of the training and the validation part (None when there is none)."""
        n = len(y)
        n_val = math.ceil(self.validation_fraction * n)
        if n_val == 0 or n_val >= n:
            return np.arange(n), None
        splitter = ShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
        if stratify:
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

        from pipeline.models.tensors import as_tensor

        parameter = next(self.module_.parameters())
        outputs = []
        with torch.no_grad():
            for start in range(0, max(len(X), 1), _PREDICT_CHUNK):
                chunk = as_tensor(X[start : start + _PREDICT_CHUNK], parameter.dtype)
                outputs.append(self.module_(chunk).double().numpy())
        return np.concatenate(outputs)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted classes or target values (shaped like the ``y`` given to ``fit``)."""
        output = self._forward(X)  # first: it checks that the estimator is fitted
        return self.head_.predict(output)


class TorchClassifier(ClassifierMixin, TorchEstimator):
    """A torch classifier: a logit per class, softmax and cross-entropy. With the default
    network (one linear layer) it is multinomial logistic regression."""

    def make_head(self) -> Head:
        return MulticlassHead()

    def _check_target(self, head: Head) -> None:
        self.classes_ = head.classes_
        n_classes, name = len(self.classes_), self.model_name or type(self).__name__
        if n_classes < 2:
            raise _TargetError(
                f"model={name} needs at least 2 classes, but the target has only one class: "
                f"{self.classes_[0]!r}"
            )
        if head.max_classes is not None and n_classes > head.max_classes:
            raise _TargetError(
                f"Only binary classification is supported by model={name}, but the target has "
                f"{n_classes} classes; use model=softmax or model=mlp"
            )

    def _validate_training_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        X, y = super()._validate_training_data(X, y)
        check_classification_targets(y)
        return X, y

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns ordered as ``classes_``."""
        output = self._forward(X)
        return self.head_.predict_proba(output)


class TorchRegressor(RegressorMixin, TorchEstimator):
    """A torch regressor: an output per target column on the squared error. It learns a
    standardised target, so its losses are in units of the target's variance."""

    def make_head(self) -> Head:
        return RegressionHead()

    def _validate_training_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        return validate_data(
            self, X, y, dtype=(np.float32, np.float64), y_numeric=True, multi_output=True
        )

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


def _plain(value: Any) -> Any:
    """Config containers (e.g. OmegaConf's) as plain dicts and lists, which Lightning expects."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(item) for item in value]
    return value
