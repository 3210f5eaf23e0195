"""Scores of a fitted estimator on one part of a fold: a registry of metrics, one entry each,
computed by `sklearn.metrics` functions (or any scikit-learn scorer named by its name)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from pipeline.compat.sklearn import scorer_parts
from pipeline.errors import PipelineError

# What a metric reads of the fitted estimator on a part.
LABELS = "labels"      # predict: the predicted label (or value) of every row
SCORES = "scores"      # predict_proba, else decision_function: how much each row is each class
CLUSTERS = "clusters"  # the cluster each row was assigned to
ESTIMATOR = "estimator"  # a scikit-learn scorer: called on (estimator, X, y) itself
# What a metric compares the response with.
TARGET = "target"        # the true labels or values (absent for unlabelled data: not scored)
FEATURES = "features"    # the rows as clustered (after preprocessing)
REFERENCE = "reference"  # the clusters a clustering of all rows gave the same rows


@dataclass(frozen=True)
class Metric:
    """One metric: `function(truth, response, **kwargs)` scores a part, where `response` is
    what the estimator gives (`LABELS`, `SCORES`, `CLUSTERS`) and `truth` what it is compared
    with (`against`). An `averaged` classification metric also gets the binary target's
    positive class (labels: `average="binary", pos_label=…`) or the multiclass averaging
    (`average=metrics.average`); an averaged `SCORES` metric gets `classes=` and `average=`.
    An `ESTIMATOR` metric is a scikit-learn scorer, `function(estimator, X, y)`."""

    name: str
    task: str
    response: str
    greater_is_better: bool
    function: Callable[..., float]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    averaged: bool = False
    against: str = TARGET
    # Why its value can be undefined (NaN) on a part, for the warning that says so.
    undefined: str = ""

    def __call__(self, part: Any, average: str = "macro") -> float | None:
        """The score of `part` (Predictions or Assignments); None where it has nothing to
        compare with (label agreement of unlabelled data)."""
        if self.response == ESTIMATOR:
            return _scorer_value(self, part)
        truth = part.truth(self.against)
        if truth is None:
            return None
        response = part.response(self.response)
        if response is None:
            return float("nan")
        options = dict(self.kwargs)
        if self.averaged:
            options.update(_averaging(self.response, part.classes, average))
        return float(self.function(truth, response, **options))


# How a multiclass precision, recall, f1 or roc_auc averages its classes (`metrics.average`).
AVERAGES = ("macro", "micro", "weighted")


def check_average(average: Any) -> str:
    """`metrics.average` as the averaged metrics take it, else one line naming the choices."""
    if average not in AVERAGES:
        raise PipelineError(f"metrics.average={average} is not one of {', '.join(AVERAGES)} "
                            "(how a multiclass precision, recall, f1 or roc_auc averages its "
                            "classes); use e.g. metrics.average=macro")
    return str(average)


def _averaging(response: str, classes: np.ndarray, average: str) -> dict[str, Any]:
    if response == SCORES:
        return {"classes": classes, "average": average}
    if len(classes) == 2:
        return {"average": "binary", "pos_label": classes[1]}
    return {"average": average}


# -- the functions that are not scikit-learn's as they are ---------------------------------

def roc_auc(y_true: np.ndarray, scores: np.ndarray, *, classes: np.ndarray,
            average: str = "macro") -> float:
    """ROC AUC from class scores (probabilities or decision values): of the positive class
    (binary) or one-vs-rest per class, averaged; NaN where a class is missing."""
    if len(np.unique(y_true)) < 2:
        return float("nan")
    if len(classes) == 2:
        return float(skm.roc_auc_score(y_true == classes[1], scores))
    if len(np.unique(y_true)) < len(classes) or scores.shape[1] != len(classes):
        return float("nan")  # a class missing from this part, or from the training part
    # One-vs-rest: each class's column ranks its rows against the rest, AUCs averaged. This is
    # roc_auc_score(multi_class="ovr") for probabilities, and needs no probabilities: it is
    # as well defined on decision values (SVC), which that call refuses for not summing to 1.
    return float(skm.roc_auc_score(label_binarize(y_true, classes=classes), scores,
                                   average=average))


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """R², undefined (NaN) on fewer than two rows rather than scikit-learn's warning."""
    return float("nan") if len(y_true) < 2 else float(skm.r2_score(y_true, y_pred))


# Silhouette is quadratic in rows: beyond this many it is estimated on a seeded sample.
SILHOUETTE_SAMPLE = 5000


def silhouette(features: np.ndarray, clusters: np.ndarray) -> float:
    n_clusters = len(np.unique(clusters))
    if not 2 <= n_clusters < len(clusters):
        return float("nan")
    sample = SILHOUETTE_SAMPLE if len(clusters) > SILHOUETTE_SAMPLE else None
    return float(skm.silhouette_score(features, clusters, sample_size=sample, random_state=0))


def inertia(features: np.ndarray, clusters: np.ndarray) -> float:
    """The within-cluster sum of squares: the elbow method's curve."""
    return float(sum(((features[clusters == k] - features[clusters == k].mean(0)) ** 2).sum()
                     for k in np.unique(clusters)))


# -- the registry -----------------------------------------------------------------------------

REGISTRY: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", "classification", LABELS, True, skm.accuracy_score),
    Metric("precision", "classification", LABELS, True, skm.precision_score,
           {"zero_division": 0}, averaged=True),
    Metric("recall", "classification", LABELS, True, skm.recall_score,
           {"zero_division": 0}, averaged=True),
    Metric("f1", "classification", LABELS, True, skm.f1_score, {"zero_division": 0},
           averaged=True),
    Metric("mcc", "classification", LABELS, True, skm.matthews_corrcoef),
    Metric("roc_auc", "classification", SCORES, True, roc_auc, averaged=True,
           undefined="it needs every class in the part, every class in the training part, "
                     "and class scores from the model"),
    Metric("mse", "regression", LABELS, False, skm.mean_squared_error),
    Metric("mae", "regression", LABELS, False, skm.mean_absolute_error),
    Metric("r2", "regression", LABELS, True, r2, undefined="it needs two or more rows in the part"),
    Metric("silhouette", "clustering", CLUSTERS, True, silhouette, against=FEATURES,
           undefined="it needs two or more clusters, fewer than the rows"),
    Metric("inertia", "clustering", CLUSTERS, False, inertia, against=FEATURES),
    # Agreement with the true labels (where the data has them) scores the clusters, never fits.
    Metric("ari", "clustering", CLUSTERS, True, skm.adjusted_rand_score),
    Metric("rand", "clustering", CLUSTERS, True, skm.rand_score),
    Metric("ami", "clustering", CLUSTERS, True, skm.adjusted_mutual_info_score),
    # The agreement of a resample's clusters with those a clustering of all rows gave them.
    Metric("stability", "clustering", CLUSTERS, True, skm.adjusted_rand_score,
           against=REFERENCE),
)}
# Tasks whose parts a scikit-learn scorer can score (a scorer calls the estimator's predict).
SCORER_TASKS = ("classification", "regression")


def get(name: str, task: str | None = None) -> Metric:
    """The registry's entry for `name` (for `task`, if given), else a scikit-learn scorer of
    that name (`sklearn.metrics.get_scorer_names()`, greater is better) for a supervised
    task; a KeyError for anything else."""
    if name in REGISTRY:
        metric = REGISTRY[name]
        if task is not None and metric.task != task:
            raise KeyError(name)
        return metric
    if (task is None or task in SCORER_TASKS) and name in skm.get_scorer_names():
        return Metric(name, task or "", ESTIMATOR, True, skm.get_scorer(name))
    raise KeyError(name)


def known(task: str) -> list[str]:
    return [name for name, metric in REGISTRY.items() if metric.task == task]


def check_names(task: str, names: list[str]) -> None:
    """Every name in `metrics.<task>` is a metric of that task: one line naming the others."""
    unknown = []
    for name in names:
        try:
            get(name, task)
        except KeyError:
            unknown.append(str(name))
    if unknown:
        scorers = (", or a scikit-learn scorer name (sklearn.metrics.get_scorer_names())"
                   if task in SCORER_TASKS else "")
        raise PipelineError(
            f"metrics.{task} names unknown metric(s) {', '.join(unknown)}; "
            f"known for {task}: {', '.join(known(task))}{scorers}"
        )


def _bare(name: str) -> str:
    return name.removeprefix("test_").removeprefix("val_").removeprefix("train_")


def lower_is_better(name: str) -> bool:
    """Whether a smaller value of metric `name` (with or without a part prefix) is better;
    a name the registry does not know is taken as greater-is-better (scikit-learn's
    convention for every scorer)."""
    try:
        return not get(_bare(name)).greater_is_better
    except KeyError:
        return False


def needs_scores(names: list[str], task: str | None = None) -> bool:
    """Whether any of `names` reads class scores (probabilities or a decision function)."""
    return any(get(name, task).response == SCORES for name in names)


def undefined(folds: pd.DataFrame) -> list[str]:
    """A warning for each held-out score that is NaN in some folds (its mean and std then
    cover the others) or in all (it has no value): never a silent `nan`."""
    lines = []
    for column in folds.columns:
        missing = folds[column].isna()
        if not column.startswith(("test_", "val_")) or not missing.any():
            continue
        name = column.split("_", 1)[1]
        metric = REGISTRY.get(name)
        why = f": {metric.undefined}" if metric is not None and metric.undefined else ""
        where = ("in every fold, so it has no value" if missing.all() else
                 f"in {missing.sum()} of {len(folds)} folds; its mean and std cover the other "
                 f"{(~missing).sum()}")
        lines.append(f"warning: {column} is undefined (NaN) {where}{why}")
    return lines


def score(part: Any, names: list[str], average: str = "macro") -> dict[str, float]:
    """`names` scored on one part (Predictions or Assignments); a metric undefined there (one
    class present) is NaN, one with nothing to compare with (no labels) is left out."""
    task = getattr(part, "task", None)
    scores = {}
    from sklearn.exceptions import UndefinedMetricWarning

    with warnings.catch_warnings():
        # scikit-learn's word that a metric is undefined on this part (one class in a tiny
        # fold, no predicted positives): the value is NaN or its zero_division, and the job
        # says so once, across folds (`undefined`). Any other warning stays visible.
        warnings.simplefilter("ignore", category=UndefinedMetricWarning)
        # A part of one class (which the fold plan has already warned of): mcc's confusion
        # matrix then asks for the labels it cannot see.
        warnings.filterwarnings("ignore", message="A single label was found in 'y_true'",
                                category=UserWarning)
        for name in names:
            value = get(name, task)(part, average)
            if value is not None:
                scores[name] = value
    return scores


def check_responses(names: list[str], task: str, estimator: Any, model: str) -> None:
    """Every scikit-learn scorer among `names` can call the response it reads (predict_proba,
    decision_function, ...) on `estimator` as configured: one line before any run if not."""
    for name in names:
        metric = get(name, task)
        if metric.response != ESTIMATOR:
            continue
        wanted = scorer_parts(metric.function).response_methods
        if not any(hasattr(estimator, method) for method in wanted):
            raise PipelineError(
                f"metric {name} reads the model's {' or '.join(wanted)}, which model={model} "
                f"does not give with these settings; remove {name} from metrics.{task} or "
                "choose a model that gives it")


def _scorer_value(metric: Metric, part: Any) -> float:
    scorer = metric.function
    if len(part.classes) == 2:
        scorer = _with_positive_class(scorer, part.classes[1])
    try:
        return float(scorer(part.estimator, part.X, part.y_true))
    except (ValueError, TypeError) as error:
        message = " ".join(str(error).split())
        raise PipelineError(f"metric {metric.name} (scikit-learn's scorer) cannot score this "
                            f"job's predictions: {message}; remove it from metrics") from error


def _with_positive_class(scorer: Any, positive: Any) -> Any:
    """A binary scorer whose function takes `pos_label`, scoring the data's positive class
    (the second of `classes`, as the registry's metrics do) rather than scikit-learn's
    default of 1, which named labels ('benign', 'malignant') do not hold."""
    import inspect

    parts = scorer_parts(scorer)
    if "pos_label" in parts.kwargs or "pos_label" not in inspect.signature(
            parts.function).parameters:
        return scorer
    return skm.make_scorer(parts.function, response_method=parts.response_methods,
                           greater_is_better=parts.greater_is_better, pos_label=positive,
                           **parts.kwargs)


class Predictions:
    """An estimator's outputs on one part of a fold, computed once for every metric."""

    def __init__(self, estimator: Any, X: pd.DataFrame, y: pd.Series, *, task: str,
                 classes: np.ndarray, probabilities: bool):
        self.estimator, self.X = estimator, X
        self.y_true = np.asarray(y)
        self.y_pred = estimator.predict(X)
        self.task, self.classes = task, classes
        # Scores that rank rows by class, where the model gives any: the positive class's
        # (binary) or one column per class in the order of `classes` (multiclass).
        self.scores = None
        if probabilities and len(classes):
            self.scores = _scores(estimator, X, classes)

    def truth(self, against: str) -> np.ndarray | None:
        return self.y_true if against == TARGET else None

    def response(self, kind: str) -> np.ndarray | None:
        return self.scores if kind == SCORES else self.y_pred


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

    task = "clustering"
    classes = np.array([])

    def __init__(self, estimator: Any, X: pd.DataFrame, y: pd.Series | None,
                 reference: np.ndarray):
        self.labels = np.asarray(estimator[-1].labels_)
        self.features = estimator[:-1].transform(X)
        self.y_true = None if y is None else np.asarray(y)
        self.reference = reference

    def truth(self, against: str) -> np.ndarray | None:
        return {TARGET: self.y_true, FEATURES: self.features,
                REFERENCE: self.reference}[against]

    def response(self, kind: str) -> np.ndarray | None:
        return self.labels


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
