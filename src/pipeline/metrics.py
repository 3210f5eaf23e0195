"""Scores of a fitted estimator on one part of a fold, all from `sklearn.metrics`."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from pipeline.errors import PipelineError

CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "mcc", "roc_auc")
REGRESSION = ("mse", "mae", "r2")


def lower_is_better(name: str) -> bool:
    """Whether a smaller value of metric `name` (with or without a part prefix) is better."""
    return name.removeprefix("test_").removeprefix("val_") in ("mse", "mae")


def check_names(task: str, names: list[str]) -> None:
    known = CLASSIFICATION if task == "classification" else REGRESSION
    unknown = [n for n in names if n not in known]
    if unknown:
        raise PipelineError(
            f"metrics.{task} names unknown metric(s) {', '.join(unknown)}; "
            f"known for {task}: {', '.join(known)}"
        )


class Predictions:
    """An estimator's outputs on one part of a fold, computed once for every metric."""

    def __init__(self, estimator: Any, X: pd.DataFrame, y: pd.Series, *, task: str,
                 classes: np.ndarray, probabilities: bool):
        self.y_true = np.asarray(y)
        self.y_pred = estimator.predict(X)
        self.task, self.classes = task, classes
        # Positive-class scores (binary) or class probabilities (multiclass), where they exist.
        self.scores = None
        if probabilities and task == "classification":
            self.scores = _scores(estimator, X, classes)


def score(predictions: Predictions, names: list[str], average: str = "macro") -> dict[str, float]:
    """`names` scored on one part; a metric undefined there (one class present) is NaN."""
    p = predictions
    if p.task == "regression":
        return {name: _regression(name, p.y_true, p.y_pred) for name in names}
    binary = len(p.classes) == 2
    options = {"average": "binary", "pos_label": p.classes[1]} if binary else {"average": average}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # e.g. one class in a tiny fold
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return {name: _classification(name, p.y_true, p.y_pred, p.scores, p.classes, options)
                for name in names}


def confusion(predictions: Predictions) -> pd.DataFrame:
    """Counts with true labels as rows and predicted labels as columns."""
    classes = predictions.classes
    matrix = skm.confusion_matrix(predictions.y_true, predictions.y_pred, labels=classes)
    labels = [str(c) for c in classes]
    return pd.DataFrame(matrix, index=pd.Index(labels, name="true"),
                        columns=pd.Index(labels, name="predicted"))


def _classification(name, y_true, y_pred, proba, classes, options) -> float:
    if name == "accuracy":
        return float(skm.accuracy_score(y_true, y_pred))
    if name == "mcc":
        return float(skm.matthews_corrcoef(y_true, y_pred))
    if name == "roc_auc":
        return _roc_auc(y_true, proba, classes, options)
    metric = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}
    return float(metric[name](y_true, y_pred, zero_division=0, **options))


def _roc_auc(y_true, proba, classes, options) -> float:
    if proba is None or len(np.unique(y_true)) < 2:
        return float("nan")
    if len(classes) == 2:
        return float(skm.roc_auc_score(y_true == classes[1], proba))
    if len(np.unique(y_true)) < len(classes) or proba.shape[1] != len(classes):
        return float("nan")  # a class missing from this part, or from the training part
    return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes,
                                   average=options["average"]))


def _scores(estimator, X, classes) -> np.ndarray | None:
    if hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X)
        return proba[:, 1] if len(classes) == 2 else proba
    if len(classes) == 2 and hasattr(estimator, "decision_function"):
        return estimator.decision_function(X)
    return None


def _regression(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if name == "mse":
        return float(skm.mean_squared_error(y_true, y_pred))
    if name == "mae":
        return float(skm.mean_absolute_error(y_true, y_pred))
    if len(y_true) < 2:
        return float("nan")
    return float(skm.r2_score(y_true, y_pred))
