"""Scores of a fitted estimator on one part of a fold, all from `sklearn.metrics`."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from pipeline.errors import PipelineError

CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "mcc", "roc_auc")
REGRESSION = ("mse", "mae", "r2")
# Agreement with the true labels (when the data has them) is for scoring only, never fitting.
CLUSTERING = ("silhouette", "inertia", "ari", "rand", "ami", "stability")
LABELLED = ("ari", "rand", "ami")


def lower_is_better(name: str) -> bool:
    """Whether a smaller value of metric `name` (with or without a part prefix) is better."""
    return name.removeprefix("test_").removeprefix("val_") in ("mse", "mae", "inertia")


def check_names(task: str, names: list[str]) -> None:
    known = {"classification": CLASSIFICATION, "regression": REGRESSION,
             "clustering": CLUSTERING}[task]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise PipelineError(
            f"metrics.{task} names unknown metric(s) {', '.join(unknown)}; "
            f"known for {task}: {', '.join(known)}"
        )


# Why a score can come out undefined (NaN) in a fold, for the warning that says so.
_UNDEFINED_WHEN = {
    "roc_auc": "it needs every class in the part, every class in the training part, and class "
               "scores from the model",
    "r2": "it needs two or more rows in the part",
    "silhouette": "it needs two or more clusters, fewer than the rows",
}


def undefined(folds: pd.DataFrame) -> list[str]:
    """A warning for each held-out score that is NaN in some folds (its mean and std then
    cover the others) or in all (it has no value): never a silent `nan`."""
    lines = []
    for column in folds.columns:
        missing = folds[column].isna()
        if not column.startswith(("test_", "val_")) or not missing.any():
            continue
        name = column.split("_", 1)[1]
        why = f": {_UNDEFINED_WHEN[name]}" if name in _UNDEFINED_WHEN else ""
        where = ("in every fold, so it has no value" if missing.all() else
                 f"in {missing.sum()} of {len(folds)} folds; its mean and std cover the other "
                 f"{(~missing).sum()}")
        lines.append(f"warning: {column} is undefined (NaN) {where}{why}")
    return lines


class Predictions:
    """An estimator's outputs on one part of a fold, computed once for every metric."""

    def __init__(self, estimator: Any, X: pd.DataFrame, y: pd.Series, *, task: str,
                 classes: np.ndarray, probabilities: bool):
        self.y_true = np.asarray(y)
        self.y_pred = estimator.predict(X)
        self.task, self.classes = task, classes
        # Scores that rank rows by class, where the model gives any: the positive class's
        # (binary) or one column per class in the order of `classes` (multiclass).
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


class Assignments:
    """A clustering of one resample's rows: cluster labels, the rows in the space that was
    clustered (after preprocessing), their true labels if the data has any, and the labels a
    clustering of all rows gave them (for stability)."""

    def __init__(self, estimator: Any, X: pd.DataFrame, y: pd.Series | None,
                 reference: np.ndarray):
        self.labels = np.asarray(estimator[-1].labels_)
        self.features = estimator[:-1].transform(X)
        self.y_true = None if y is None else np.asarray(y)
        self.reference = reference


# Silhouette is quadratic in rows: beyond this many it is estimated on a seeded sample.
SILHOUETTE_SAMPLE = 5000


def score_clusters(assignments: Assignments, names: list[str]) -> dict[str, float]:
    """Clustering scores of one resample; label agreement only where the data has labels."""
    a = assignments
    n_clusters = len(np.unique(a.labels))
    scores = {}
    for name in names:
        if name == "silhouette":
            valid = 2 <= n_clusters < len(a.labels)
            sample = SILHOUETTE_SAMPLE if len(a.labels) > SILHOUETTE_SAMPLE else None
            scores[name] = float(skm.silhouette_score(
                a.features, a.labels, sample_size=sample, random_state=0)) if valid else np.nan
        elif name == "inertia":  # within-cluster sum of squares: the elbow method's curve
            scores[name] = float(sum(
                ((a.features[a.labels == k] - a.features[a.labels == k].mean(0)) ** 2).sum()
                for k in np.unique(a.labels)))
        elif name == "stability":
            scores[name] = float(skm.adjusted_rand_score(a.reference, a.labels))
        elif a.y_true is not None:
            agreement = {"ari": skm.adjusted_rand_score, "rand": skm.rand_score,
                         "ami": skm.adjusted_mutual_info_score}[name]
            scores[name] = float(agreement(a.y_true, a.labels))
    return scores


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
    # One-vs-rest: each class's column ranks its rows against the rest, AUCs averaged. This is
    # roc_auc_score(multi_class="ovr") for probabilities, and needs no probabilities: it is
    # as well defined on decision values (SVC), which that call refuses for not summing to 1.
    return float(skm.roc_auc_score(label_binarize(y_true, classes=classes), proba,
                                   average=options["average"]))


def _scores(estimator, X, classes) -> np.ndarray | None:
    """Per-class scores, columns in the order of `classes` (which may differ from the
    estimator's sorted `classes_`): probabilities where the model has them, else its decision
    function (one-vs-rest), else None; None too when it was fitted on other classes."""
    fitted = list(getattr(estimator, "classes_", []))
    if len(fitted) != len(classes):
        return None  # a class missing from the training part: no column to rank it by
    model = estimator[-1] if hasattr(estimator, "steps") else estimator
    if hasattr(estimator, "predict_proba"):
        scores = estimator.predict_proba(X)
    elif hasattr(estimator, "decision_function") and (
            len(classes) == 2 or getattr(model, "decision_function_shape", "ovr") == "ovr"):
        scores = estimator.decision_function(X)
    else:
        return None
    if scores.ndim == 1:  # a binary decision function, positive for fitted[1]
        return scores if fitted[1] == classes[1] else -scores
    scores = scores[:, [fitted.index(c) for c in classes]]
    return scores[:, 1] if len(classes) == 2 else scores


def _regression(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if name == "mse":
        return float(skm.mean_squared_error(y_true, y_pred))
    if name == "mae":
        return float(skm.mean_absolute_error(y_true, y_pred))
    if len(y_true) < 2:
        return float("nan")
    return float(skm.r2_score(y_true, y_pred))
