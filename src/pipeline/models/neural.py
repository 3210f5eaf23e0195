"""The torch models a config names (``conf/model/{logistic,softmax,linear,mlp}.yaml``): linear
models fitted by L-BFGS, and multilayer perceptrons.

A new architecture is a subclass of :class:`TorchClassifier` or :class:`TorchRegressor` (from
:mod:`pipeline.models.estimator`, importable from here) that overrides
:meth:`TorchEstimator.build_network` (and takes its own arguments, if any), plus a
``conf/model/*.yaml`` naming it. Importing this module, or constructing an estimator, does not
import torch or Lightning.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

from pipeline.compat.sklearn import Interval
from pipeline.models.estimator import TorchClassifier, TorchEstimator, TorchRegressor
from pipeline.models.heads import BinaryHead, Head
from pipeline.models.parameters import (
    COUNT,
    FRACTION,
    TORCH_PARAMETER_CONSTRAINTS,
    Choice,
    LayerSizes,
)
from pipeline.spec import is_int

__all__ = [
    "COUNT",
    "TORCH_PARAMETER_CONSTRAINTS",
    "FeedForward",
    "LinearClassifier",
    "LinearModel",
    "LinearRegression",
    "LogisticRegression",
    "MLPClassifier",
    "MLPRegressor",
    "SoftmaxRegression",
    "TorchClassifier",
    "TorchEstimator",
    "TorchRegressor",
]

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu")


class LinearModel(TorchEstimator):
    """One linear layer on a convex loss: fitted by default as scikit-learn fits its linear
    models, by full-batch L-BFGS (``optimizer="lbfgs"``, ``batch_size=None``), which on tables of
    thousands of rows converges in tens of iterations where mini-batch descent takes epochs.
    ``optimizer`` and ``batch_size`` take the other values of :class:`TorchEstimator`."""

    def __init__(self, *, optimizer: str = "lbfgs", batch_size: int | None = None,
                 **shared: Any) -> None:
        super().__init__(optimizer=optimizer, batch_size=batch_size, **shared)


class LinearClassifier(LinearModel, TorchClassifier):
    """Logistic regression (binary or multinomial) by L-BFGS with a light L2 penalty,
    ``weight_decay=1e-3``: about scikit-learn's ``C=1`` on a thousand rows, it keeps the weights
    finite where classes are (nearly) separable, as scikit-learn's default penalty does."""

    def __init__(self, *, weight_decay: float = 1e-3, **shared: Any) -> None:
        super().__init__(weight_decay=weight_decay, **shared)


class LogisticRegression(LinearClassifier):
    """Binary logistic regression: one linear unit, sigmoid, trained on binary cross-entropy.

    ``predict`` says positive when P(positive) > ``threshold``. For more than two classes use
    :class:`SoftmaxRegression`. Other parameters: see :class:`LinearClassifier` and
    :class:`TorchEstimator`.
    """

    model_name = "logistic"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **TORCH_PARAMETER_CONSTRAINTS,
        "threshold": [Interval(numbers.Real, 0, 1, closed="neither")],
    }

    def __init__(self, *, threshold: float = 0.5, **shared: Any) -> None:
        super().__init__(**shared)
        self.threshold = threshold

    def make_head(self) -> Head:
        return BinaryHead(float(self.threshold))

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


class SoftmaxRegression(LinearClassifier):
    """Multinomial logistic regression: a linear layer and softmax, trained on cross-entropy."""

    model_name = "softmax"


class LinearRegression(LinearModel, TorchRegressor):
    """Linear regression: a linear layer fitted on the mean squared error."""

    model_name = "linear"


class FeedForward(TorchEstimator):
    """Hidden layers before the head: ``hidden_sizes`` lists their widths, ``activation`` is
    one of relu, tanh, sigmoid, gelu, ``dropout`` the drop probability after each. Trained as
    the other torch models are, but with a smaller default learning rate, ``lr=3e-3``."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **TORCH_PARAMETER_CONSTRAINTS,
        "hidden_sizes": [LayerSizes()],
        "activation": [Choice(ACTIVATIONS)],
        "dropout": [FRACTION],
    }

    def __init__(
        self,
        *,
        hidden_sizes: Sequence[int] = (64,),
        activation: str = "relu",
        dropout: float = 0.0,
        lr: float = 3e-3,
        **shared: Any,
    ) -> None:
        super().__init__(lr=lr, **shared)
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.dropout = dropout

    def build_network(self, n_features: int, n_outputs: int) -> Any:
        from torch import nn

        activations = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}
        sizes = (self.hidden_sizes,) if is_int(self.hidden_sizes) else self.hidden_sizes
        layers: list[nn.Module] = []
        width = n_features
        for size in sizes:
            layers += [nn.Linear(width, int(size)), activations[self.activation]()]
            if self.dropout > 0:
                layers.append(nn.Dropout(self.dropout))
            width = int(size)
        layers.append(nn.Linear(width, n_outputs))
        return nn.Sequential(*layers)


class MLPClassifier(FeedForward, TorchClassifier):
    """Multilayer perceptron classifier: hidden layers, then a softmax head on cross-entropy."""

    model_name = "mlp"


class MLPRegressor(FeedForward, TorchRegressor):
    """Multilayer perceptron regressor: hidden layers, then a linear head on the squared error."""

    model_name = "mlp"
