"""What differs by task for the torch estimators: the target's encoding, the loss, the validation
score, and how the network's output becomes a prediction or a probability.

Importing this module does not import torch; the methods that take tensors do.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class Head:
    """One task's end of a network. ``encode`` learns the target's encoding on the training
    target (the head is then fitted and travels with the estimator); the others apply it."""

    score_name: str  # the validation score's name in ``history_``: ``val_<score_name>``
    stratify = False  # whether the validation part is drawn stratified by the target

    def encode(self, y: np.ndarray) -> tuple[np.ndarray, int]:
        """Learns the encoding of ``y``; returns the target to train on and the network's
        number of outputs."""
        raise NotImplementedError

    def target_tensor(self, y: np.ndarray) -> Any:
        """The encoded target as a torch tensor of the dtype ``loss`` expects."""
        raise NotImplementedError

    def loss(self, output: Any, target: Any) -> Any:
        """The training loss of a batch: a scalar tensor."""
        raise NotImplementedError

    def score(self, output: Any, target: Any) -> Any:
        """The validation score (higher is better): a scalar tensor, left on the device."""
        raise NotImplementedError

    def predict(self, output: np.ndarray) -> np.ndarray:
        """Predictions in the target's own labels or units, from the network's raw outputs."""
        raise NotImplementedError

    def coefficients(self, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A single linear layer's weight and bias as scikit-learn's ``coef_``, ``intercept_``."""
        return weight, bias


class _ClassifierHead(Head):
    score_name = "accuracy"
    stratify = True
    max_classes: int | None = None  # None: any number of classes

    def encode(self, y: np.ndarray) -> tuple[np.ndarray, int]:
        self.classes_, y_encoded = np.unique(y, return_inverse=True)
        return y_encoded, self.n_outputs(len(self.classes_))

    def n_outputs(self, n_classes: int) -> int:
        raise NotImplementedError

    def predict_proba(self, output: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns ordered as ``classes_``."""
        raise NotImplementedError


class BinaryHead(_ClassifierHead):
    """One logit, sigmoid and binary cross-entropy; positive when P(positive) > ``threshold``."""

    max_classes = 2

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def n_outputs(self, n_classes: int) -> int:
        return 1

    def target_tensor(self, y: np.ndarray) -> Any:
        import torch

        return torch.tensor(y, dtype=torch.float32)

    def loss(self, output: Any, target: Any) -> Any:
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(output.squeeze(1), target)

    def score(self, output: Any, target: Any) -> Any:
        logit_threshold = math.log(self.threshold / (1 - self.threshold))
        return ((output.squeeze(1) > logit_threshold) == (target > 0.5)).float().mean()

    def predict_proba(self, output: np.ndarray) -> np.ndarray:
        positive = 1 / (1 + np.exp(-output[:, 0]))
        return np.column_stack([1 - positive, positive])

    def predict(self, output: np.ndarray) -> np.ndarray:
        positive = self.predict_proba(output)[:, 1]
        return self.classes_[(positive > self.threshold).astype(int)]


class MulticlassHead(_ClassifierHead):
    """A logit per class, softmax and cross-entropy; the most probable class."""

    def n_outputs(self, n_classes: int) -> int:
        return n_classes

    def target_tensor(self, y: np.ndarray) -> Any:
        import torch

        return torch.tensor(y, dtype=torch.long)

    def loss(self, output: Any, target: Any) -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(output, target)

    def score(self, output: Any, target: Any) -> Any:
        return (output.argmax(1) == target).float().mean()

    def predict_proba(self, output: np.ndarray) -> np.ndarray:
        output = output - output.max(axis=1, keepdims=True)
        probabilities = np.exp(output)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict(self, output: np.ndarray) -> np.ndarray:
        return self.classes_[output.argmax(axis=1)]


class RegressionHead(Head):
    """An output per target column and the squared error, on a standardised target: one
    learning rate then suits any target scale, and the losses are in units of its variance."""

    score_name = "r2"

    def encode(self, y: np.ndarray) -> tuple[np.ndarray, int]:
        y = np.asarray(y, dtype=np.float64)
        self.two_dimensional_ = y.ndim == 2
        y2 = y.reshape(len(y), -1)
        self.mean_ = y2.mean(axis=0)
        scale = y2.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        return (y2 - self.mean_) / self.scale_, y2.shape[1]

    def target_tensor(self, y: np.ndarray) -> Any:
        import torch

        return torch.tensor(y, dtype=torch.float32)

    def loss(self, output: Any, target: Any) -> Any:
        import torch.nn.functional as F

        return F.mse_loss(output, target)

    def score(self, output: Any, target: Any) -> Any:
        """R², averaged over the outputs."""
        import torch

        residual = ((target - output) ** 2).sum(0)
        total = ((target - target.mean(0)) ** 2).sum(0)
        # scikit-learn's convention for a constant target: 1 for a perfect fit, else 0.
        r2 = torch.where(
            total > 0, 1 - residual / total.clamp_min(1e-30), (residual == 0).to(residual.dtype)
        )
        return r2.mean()

    def predict(self, output: np.ndarray) -> np.ndarray:
        """Shaped like the ``y`` given to ``encode``."""
        prediction = output * self.scale_ + self.mean_
        return prediction if self.two_dimensional_ else prediction[:, 0]

    def coefficients(self, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Back from the standardised target to its own units.
        coef = weight * self.scale_[:, None]
        intercept = bias * self.scale_ + self.mean_
        return (coef, intercept) if self.two_dimensional_ else (coef[0], intercept[0])
