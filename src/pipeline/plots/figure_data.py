"""What the figures show, gathered from a fold's predictions and fitted pipeline or from the
clustered rows: confusion counts, ROC and precision-recall curves, learning histories, feature
importances, principal components, merge trees. Numbers only; `pipeline.plots.draw` draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.metrics import confusion

if TYPE_CHECKING:
    from sklearn.decomposition import PCA

    from pipeline.metrics import Predictions

# Permutation importance: repeats per feature, and at most this many test rows (seeded sample).
PERMUTATION_REPEATS = 3
PERMUTATION_ROWS = 1000
# Folds with fewer test rows give no permutation importance (too noisy to mean anything).
PERMUTATION_MIN_ROWS = 20
# Shuffled copies of the test part are predicted together, up to this many cells per call;
# beyond this many copies (columns × repeats) permutation importance is skipped.
PERMUTATION_CELLS = 2_000_000
PERMUTATION_MAX_COPIES = 1000
# Common false-positive-rate grid for averaging ROC curves across folds.
ROC_GRID = np.linspace(0, 1, 101)

# One curve of one part: (label, x, y, area); x and y are (fpr, tpr) for a ROC curve and
# (recall, precision) for a precision-recall one, whose "area" is the average precision.
Curve = tuple[str, np.ndarray, np.ndarray, float]


def sample_rows(n_rows: int, most: int, seed: int | None) -> np.ndarray | None:
    """A seeded sample of `most` of `n_rows` row positions, in order; None when all fit."""
    if n_rows <= most:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_rows, most, replace=False))


def confusion_counts(p: Predictions) -> np.ndarray:
    """One part's confusion matrix as counts, rows the true and columns the predicted class."""
    return confusion(p).to_numpy()


def curves(p: Predictions) -> tuple[list[Curve], list[Curve]] | None:
    """ROC and precision-recall curves of one part: the positive class for a binary target,
    one-vs-rest per class for a multiclass one. None without scores or with a single class
    present."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    if p.scores is None or len(np.unique(p.y_true)) < 2:
        return None
    scores = np.asarray(p.scores, dtype=float)
    if scores.ndim == 1:
        pairs = [(f"class {p.classes[1]}", p.y_true == p.classes[1], scores)]
    elif scores.shape[1] == len(p.classes):
        pairs = [(str(c), p.y_true == c, scores[:, k]) for k, c in enumerate(p.classes)
                 if (p.y_true == c).any()]
    else:
        return None  # a class missing from the training part
    roc, pr = [], []
    for label, positive, score in pairs:
        fpr, tpr, _ = roc_curve(positive, score)
        roc.append((label, fpr, tpr, auc(fpr, tpr)))
        precision, recall, _ = precision_recall_curve(positive, score)
        pr.append((label, recall, precision, average_precision_score(positive, score)))
    return roc, pr


def mean_roc(roc: list[Curve]) -> tuple[np.ndarray, np.ndarray, float]:
    """One fold's ROC on the common grid (macro average over classes for a multiclass
    target), with its area."""
    tpr = np.mean([np.interp(ROC_GRID, fpr, tpr_) for _, fpr, tpr_, _ in roc], axis=0)
    tpr[0] = 0.0
    return ROC_GRID, tpr, float(np.mean([area for *_, area in roc]))


def learning_history(estimator: Any) -> dict[str, list[float]] | None:
    """The per-epoch losses a torch model kept while it trained (`history_`); None for others."""
    return getattr(estimator[-1], "history_", None) or None


def importance(estimator: Any, X: pd.DataFrame, y: pd.Series,
               seed: int | None = None) -> tuple[str, pd.Series] | None:
    """Feature importance of a fitted `Pipeline(preprocess, model)` by original column:
    impurity importance for tree models (one-hot columns summed back to their column),
    permutation importance on (a sample of) the test part for the others."""
    model = estimator[-1]
    if hasattr(model, "feature_importances_"):
        names = estimator[:-1].get_feature_names_out()
        values = pd.Series(model.feature_importances_, index=names)
        return "impurity", values.groupby(original_columns(names, X.columns), sort=False).sum()
    if len(X) < PERMUTATION_MIN_ROWS or X.shape[1] * PERMUTATION_REPEATS > PERMUTATION_MAX_COPIES:
        return None
    return "permutation", permutation_importance(estimator, X, y, seed)


def permutation_importance(estimator: Any, X: pd.DataFrame, y: pd.Series,
                           seed: int | None = None) -> pd.Series:
    """The mean drop in accuracy (classifier) or R² (regressor) when one column's values are
    shuffled, over PERMUTATION_REPEATS shuffles, on at most PERMUTATION_ROWS rows.

    What `sklearn.inspection.permutation_importance` computes, but with the shuffled copies
    stacked and predicted in a few large calls: one call per copy would pay the pipeline's
    per-call overhead hundreds of times per fold (seconds for KNN or SVM).
    """
    from sklearn.base import is_classifier
    from sklearn.metrics import accuracy_score, r2_score

    rng = np.random.default_rng(seed)
    if len(X) > PERMUTATION_ROWS:
        rows = np.sort(rng.choice(len(X), PERMUTATION_ROWS, replace=False))
        X, y = X.iloc[rows], y.iloc[rows]
    X = X.reset_index(drop=True)
    truth = np.asarray(y)
    metric = accuracy_score if is_classifier(estimator) else r2_score
    baseline = metric(truth, estimator.predict(X))

    def shuffled(column: Any) -> pd.DataFrame:
        copy = X.copy()
        copy[column] = X[column].to_numpy()[rng.permutation(len(X))]
        return copy

    copies = [(column, shuffled(column)) for column in X.columns
              for _ in range(PERMUTATION_REPEATS)]
    per_call = max(1, PERMUTATION_CELLS // X.size)
    drops: dict[str, list[float]] = {column: [] for column in X.columns}
    for start in range(0, len(copies), per_call):
        chunk = copies[start:start + per_call]
        predicted = estimator.predict(pd.concat([copy for _, copy in chunk], ignore_index=True))
        for k, (column, _) in enumerate(chunk):
            drops[column].append(baseline - metric(truth, predicted[k * len(X):(k + 1) * len(X)]))
    return pd.Series({column: float(np.mean(values)) for column, values in drops.items()})


def original_columns(names: Sequence[str], columns: Sequence[str]) -> list[str]:
    """The input column behind each output of the preprocessing: itself, or for a one-hot
    column `<col>_<category>` the longest input column name it starts with."""
    columns = [str(c) for c in columns]
    by_length = sorted(columns, key=len, reverse=True)
    exact = set(columns)
    found = []
    for name in map(str, names):
        if name in exact:
            found.append(name)
            continue
        found.append(next((c for c in by_length if name.startswith(f"{c}_")), name))
    return found


def importance_table(importances: list[pd.Series]) -> pd.DataFrame:
    """Every fold's importances, one row per fold (`fold-1`, …), one column per feature."""
    return pd.DataFrame(importances,
                        index=[f"fold-{i}" for i in range(1, len(importances) + 1)])


def reducer(model: Any) -> Any:
    """The PCA or LDA step of a fitted pipeline's preprocessing, if it has one."""
    steps = getattr(model[0], "named_steps", {})
    return steps.get("reduce")


def preprocessed_rows(fitted: Any, X: pd.DataFrame) -> np.ndarray:
    """`X` through the preprocessing of `fitted` (a pipeline fitted on all rows): the points a
    clustering model grouped."""
    return np.asarray(fitted[:-1].transform(X), dtype=float)


def principal_components(points: np.ndarray) -> PCA:
    """A PCA fitted on `points`: their projection and each component's share of variance."""
    from sklearn.decomposition import PCA

    return PCA(random_state=0).fit(points)


def merge_tree(points: np.ndarray, method: str) -> np.ndarray:
    """The merges of agglomerative clustering of `points` with `method` linkage (scipy's)."""
    from scipy.cluster.hierarchy import linkage

    return linkage(points, method=method)
