"""Figures a person looks at, logged as PNG artifacts: per fold on the fold's run, and across
folds (summed confusion matrix, ROC of every fold, learning curves, feature importance, the
tree, the score table) on the job's parent run. `plots: true | false | [kind, ...]` picks them.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from pipeline import tasks
from pipeline.errors import PipelineError
from pipeline.metrics import confusion

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pipeline.data import Dataset
    from pipeline.metrics import Predictions
    from pipeline.tasks import Task
    from pipeline.tracking import BaseTracker as Tracker

log = logging.getLogger("pipeline")

# What `plots: [...]` may name.
KINDS = ("confusion_matrix", "roc", "pr", "regression", "learning_curves", "importance", "tree",
         "scores", "clusters", "dendrogram", "scree")
DPI = 100
# Per-fold figures for up to this many folds (leave-one-out: summaries on the parent only).
MAX_FOLD_FIGURES = 20
# Permutation importance: repeats per feature, and at most this many test rows (seeded sample).
PERMUTATION_REPEATS = 3
PERMUTATION_ROWS = 1000
# Folds with fewer test rows give no permutation importance (too noisy to mean anything).
PERMUTATION_MIN_ROWS = 20
# Shuffled copies of the test part are predicted together, up to this many cells per call;
# beyond this many copies (columns × repeats) permutation importance is skipped.
PERMUTATION_CELLS = 2_000_000
PERMUTATION_MAX_COPIES = 1000
# The tree is drawn down to this depth; deeper levels show as "(...)".
TREE_DEPTH = 4
# Feature-importance bars: the most important features only.
TOP_FEATURES = 20
# A dendrogram is drawn for hierarchical clustering of at most this many rows.
DENDROGRAM_ROWS = 1000
# Scatter figures (predicted vs actual, residuals, clusters) draw at most this many points, a
# seeded sample of the rows: beyond, the points merge into a blot and drawing takes seconds.
FIGURE_POINTS = 5000
# ROC and precision-recall curves are computed from every test row (their areas are exact)
# and drawn through at most this many of their points (a 200,000-row part has as many).
CURVE_POINTS = 2000
# Common false-positive-rate grid for averaging ROC curves across folds.
_GRID = np.linspace(0, 1, 101)


def selected(setting: Any) -> frozenset[str]:
    """`plots` as the set of figure kinds to draw: `true` all, `false`/`null` none, or a list."""
    if setting is None or setting is False:
        return frozenset()
    if setting is True:
        return frozenset(KINDS)
    names = [setting] if isinstance(setting, str) else list(setting)
    unknown = [str(n) for n in names if n not in KINDS]
    if unknown:
        raise PipelineError(f"plots names unknown figure(s) {', '.join(unknown)}; choose from "
                            f"{', '.join(KINDS)}, or plots=true / plots=false")
    return frozenset(names)


class Figures:
    """Draws a job's figures and logs them: `fold` after each fold, `parent` once at the end.

    `fold` also keeps what the parent's figures summarise (confusion matrices, ROC curves,
    learning curves, importances), so nothing is recomputed.
    """

    def __init__(self, kinds: Iterable[str], dataset: Dataset, n_folds: int,
                 seed: int | None = None, task: Task | None = None):
        self.task = task or tasks.of(dataset.task)
        # Only the figures that exist for the task.
        self.kinds = frozenset(kinds) & self.task.figures
        # Leave-one-out's folds are too many and too small for a figure each.
        self.per_fold = n_folds <= MAX_FOLD_FIGURES
        self.dataset = dataset
        self.seed = seed
        self.confusions: list[np.ndarray] = []
        self.rocs: list[tuple[np.ndarray, np.ndarray, float]] = []
        self.histories: list[dict[str, list[float]]] = []
        self.importances: list[pd.Series] = []
        self.importance_kind = ""
        self.importance_rows: int | None = None  # the sample's size where one was used
        self.first_model: Any = None
        # What was drawn from a sample, once per kind: logged, and on the parent run.
        self.sampled: dict[str, str] = {}

    @classmethod
    def for_job(cls, plots: Any, seed: int | None, dataset: Dataset, n_folds: int,
                task: Task | None = None) -> Figures:
        """The figures the job's `plots` setting asks for; none on a rank other than 0 (it
        logs nothing)."""
        from pipeline.tracking import global_rank

        kinds = selected(plots)
        return cls(kinds if global_rank() == 0 else (), dataset, n_folds, seed, task)

    def __bool__(self) -> bool:
        return bool(self.kinds)

    def fold(self, tracker: Tracker, run_id: str, estimator: Any, predictions: Predictions,
             X_test: pd.DataFrame, y_test: pd.Series) -> None:
        """Figures of one fold on its run, and what the parent's figures need from it."""
        of_predictions = self._FOLD_FIGURES.get(self.task.name)
        if not self.kinds or of_predictions is None:
            return
        figures = of_predictions(self, predictions)
        history = getattr(estimator[-1], "history_", None)
        if history:
            self.histories.append(history)
        if "importance" in self.kinds:
            found = importance(estimator, X_test, y_test, self.seed)
            if found is not None:
                self.importance_kind, values = found
                self.importances.append(values)
                if self.importance_kind == "permutation" and len(X_test) > PERMUTATION_ROWS:
                    self.importance_rows = PERMUTATION_ROWS
                    self._note("importance", f"permutation importance on a seeded sample of "
                                             f"{PERMUTATION_ROWS} of each fold's {len(X_test)} "
                                             "test rows")
        if self.first_model is None:
            self.first_model = estimator
        for name, figure in figures.items():
            tracker.log_figure(run_id, figure, f"plots/{name}.png")

    def _classification(self, p: Predictions) -> dict[str, Figure]:
        """A fold's confusion matrix, ROC and precision-recall curves; the matrix and the ROC
        are kept for the parent's figures."""
        want, draw = self.kinds, self.per_fold
        figures: dict[str, Figure] = {}
        classes = [str(c) for c in p.classes]
        matrix = confusion(p).to_numpy()
        self.confusions.append(matrix)
        if "confusion_matrix" in want and draw:
            figures["confusion_matrix"] = confusion_figure(matrix, classes)
        curves = _curves(p)
        if curves is not None:
            roc, pr = curves
            longest = max(len(x) for _, x, *_ in (*roc, *pr))
            if longest > CURVE_POINTS and draw and want & {"roc", "pr"}:
                self._note("curves", f"ROC and precision-recall curves drawn through "
                                     f"{CURVE_POINTS} of their up to {longest} points (areas "
                                     "from every test row)")
            self.rocs.append(_mean_roc(roc))
            if "roc" in want and draw:
                figures["roc"] = roc_figure(roc, "ROC (test part)")
            if "pr" in want and draw:
                figures["pr"] = pr_figure(pr, "precision-recall (test part)")
        return figures

    def _regression(self, p: Predictions) -> dict[str, Figure]:
        """A fold's predicted against actual values, and its residuals."""
        if "regression" not in self.kinds or not self.per_fold:
            return {}
        y_true, y_pred = np.asarray(p.y_true), np.asarray(p.y_pred)
        rows = sample_rows(len(y_true), FIGURE_POINTS, self.seed)
        shown = ""
        if rows is not None:
            y_true, y_pred = y_true[rows], y_pred[rows]
            shown = f", {len(rows)} of {len(p.y_true)} rows"
            self._note("regression", f"regression scatter plots drawn from a seeded sample of "
                                     f"{len(rows)} of each fold's {len(p.y_true)} test rows")
        return {"predicted_vs_actual": predicted_vs_actual_figure(y_true, y_pred, shown),
                "residuals": residuals_figure(y_true, y_pred, shown)}

    def _note(self, kind: str, line: str) -> None:
        """Say once per job that a figure was drawn from a sample (the user reads the log; the
        parent run keeps the lines as plots/sampled.txt)."""
        if kind not in self.sampled:
            self.sampled[kind] = line
            log.info("figures: %s", line)

    # The figures of a fold's test predictions, by task; a task without any (clustering)
    # draws its pictures once, on the parent run (`clusters`).
    _FOLD_FIGURES: ClassVar[dict[str, Callable[[Figures, Predictions], dict[str, Figure]]]] = {
        "classification": _classification, "regression": _regression}

    def parent(self, tracker: Tracker, run_id: str, folds: pd.DataFrame,
               final: Any = None) -> None:
        """Figures across folds on the parent run; the tree of `final` (the refit model) if
        given, else of the first fold's model."""
        if not self.kinds:
            return
        figures: dict[str, Figure] = {}
        want = self.kinds
        classes = [str(c) for c in self.dataset.classes]
        if "confusion_matrix" in want and self.confusions:
            figures["confusion_matrix"] = summed_confusion_figure(sum(self.confusions), classes)
        if "roc" in want and self.rocs:
            figures["roc"] = roc_folds_figure(self.rocs)
        if "learning_curves" in want and self.histories:
            figures["learning_curves"] = learning_curves_figure(self.histories)
        if "importance" in want and self.importances:
            table = pd.DataFrame(self.importances,
                                 index=[f"fold-{i}" for i in range(1, len(self.importances) + 1)])
            tracker.log_table(run_id, table.T.rename_axis("feature"), "feature_importance.csv")
            figures["feature_importance"] = importance_figure(table, self.importance_kind,
                                                              self.importance_rows)
        if "tree" in want:
            model = final if final is not None else self.first_model
            which = "refit on all rows" if final is not None else "fold 1"
            figure = tree_figure(model, which) if model is not None else None
            if figure is not None:
                figures["tree"] = figure
        if "scores" in want and len(folds):
            figures["scores"] = scores_figure(folds)
        if "scree" in want and self.first_model is not None:
            reducer = _reducer(self.first_model)
            if reducer is not None and hasattr(reducer, "explained_variance_ratio_"):
                figures["scree"] = scree_figure(reducer.explained_variance_ratio_,
                                                "PCA of the preprocessed columns (fold 1)")
        for name, figure in figures.items():
            tracker.log_figure(run_id, figure, f"plots/{name}.png")
        if self.sampled:
            tracker.log_text(run_id, "\n".join(self.sampled.values()) + "\n", "plots/sampled.txt")

    def clusters(self, tracker: Tracker, run_id: str, fitted: Any) -> None:
        """A clustering job's pictures on its parent run, from `fitted` (the pipeline fitted on
        all rows): the rows on their first two principal components coloured by cluster (and
        by true label where the data has one), the scree plot, and the dendrogram of a
        hierarchical clustering of modest size."""
        from sklearn.decomposition import PCA

        if not self.kinds:
            return
        points = np.asarray(fitted[:-1].transform(self.dataset.X), dtype=float)
        pca = PCA(random_state=0).fit(points)
        figures: dict[str, Figure] = {}
        if "clusters" in self.kinds and points.shape[1] >= 2:
            labels = None if self.dataset.y is None else np.asarray(self.dataset.y)
            clusters = np.asarray(fitted[-1].labels_)
            projected = pca.transform(points)[:, :2]
            rows = sample_rows(len(points), FIGURE_POINTS, self.seed)
            if rows is not None:
                projected, clusters = projected[rows], clusters[rows]
                labels = None if labels is None else labels[rows]
                self._note("clusters", f"cluster scatter plot drawn from a seeded sample of "
                                       f"{len(rows)} of the {len(points)} rows")
            figures["clusters_pca"] = clusters_figure(projected, clusters, labels)
        if "scree" in self.kinds:
            figures["scree"] = scree_figure(pca.explained_variance_ratio_,
                                            "PCA of the preprocessed columns")
        if ("dendrogram" in self.kinds and hasattr(fitted[-1], "linkage")
                and len(points) <= DENDROGRAM_ROWS):
            figures["dendrogram"] = dendrogram_figure(points, fitted[-1].linkage)
        for name, figure in figures.items():
            tracker.log_figure(run_id, figure, f"plots/{name}.png")
        if self.sampled:
            tracker.log_text(run_id, "\n".join(self.sampled.values()) + "\n", "plots/sampled.txt")


def sample_rows(n_rows: int, most: int, seed: int | None) -> np.ndarray | None:
    """A seeded sample of `most` of `n_rows` row positions, in order; None when all fit."""
    if n_rows <= most:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_rows, most, replace=False))


def _thinned(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A curve's points for drawing: at most CURVE_POINTS of them, evenly spaced along the
    curve's points, the first and last kept."""
    if len(x) <= CURVE_POINTS:
        return x, y
    kept = np.unique(np.linspace(0, len(x) - 1, CURVE_POINTS).round().astype(int))
    return x[kept], y[kept]


def _reducer(model: Any) -> Any:
    """The PCA or LDA step of a fitted pipeline's preprocessing, if it has one."""
    steps = getattr(model[0], "named_steps", {})
    return steps.get("reduce")


# -- what the figures show -------------------------------------------------------------------

def _curves(p: Predictions) -> tuple[list, list] | None:
    """ROC and precision-recall curves of one part, `[(label, x, y, area)]` each: the positive
    class for a binary target, one-vs-rest per class for a multiclass one. None without
    scores or with a single class present."""
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


def _mean_roc(roc: list) -> tuple[np.ndarray, np.ndarray, float]:
    """One fold's ROC on the common grid (macro average over classes for a multiclass
    target), with its area."""
    tpr = np.mean([np.interp(_GRID, fpr, tpr_) for _, fpr, tpr_, _ in roc], axis=0)
    tpr[0] = 0.0
    return _GRID, tpr, float(np.mean([area for *_, area in roc]))


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


# -- the figures -----------------------------------------------------------------------------

def _figure(width: float = 4.0, height: float = 3.6) -> Figure:
    """A figure outside pyplot (nothing to close, no GUI), drawn by Agg."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # headless, also for the pyplot that plot_tree imports
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _matrix_axes(ax: Any, matrix: np.ndarray, labels: list[str], fmt: str, title: str) -> None:
    ax.imshow(matrix, cmap="Blues", vmin=0)
    n = len(labels)
    ticks = range(n)
    ax.set_xticks(ticks, labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    if n <= 12:
        high = matrix.max() / 2 if matrix.size else 0
        size = 9 if n <= 5 else 7
        for (row, column), value in np.ndenumerate(matrix):
            ax.text(column, row, format(value, fmt), ha="center", va="center", fontsize=size,
                    color="white" if value > high else "black")


def confusion_figure(matrix: np.ndarray, labels: list[str]) -> Figure:
    figure = _figure()
    ax = figure.add_subplot()
    _matrix_axes(ax, matrix, labels, "d", f"confusion matrix (test, n={int(matrix.sum())})")
    figure.subplots_adjust(left=0.22, bottom=0.2, right=0.97, top=0.9)
    return figure


def summed_confusion_figure(matrix: np.ndarray, labels: list[str]) -> Figure:
    """Counts summed over the folds' test parts, and the same normalised per true class."""
    figure = _figure(8.0, 3.8)
    counts, share = figure.subplots(1, 2)
    _matrix_axes(counts, matrix, labels, "d", f"summed over folds (n={int(matrix.sum())})")
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    _matrix_axes(share, normalised, labels, ".2f", "normalised by true class (recall)")
    figure.subplots_adjust(left=0.1, bottom=0.2, right=0.98, top=0.9, wspace=0.35)
    return figure


def roc_figure(curves: list, title: str) -> Figure:
    figure = _figure()
    ax = figure.add_subplot()
    for label, fpr, tpr, area in curves:
        ax.plot(*_thinned(fpr, tpr), lw=1.2, label=f"{label} (AUC {area:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    _finish(ax, "false positive rate", "true positive rate", title, len(curves))
    return figure


def pr_figure(curves: list, title: str) -> Figure:
    figure = _figure()
    ax = figure.add_subplot()
    for label, recall, precision, average in curves:
        ax.plot(*_thinned(recall, precision), lw=1.2, drawstyle="steps-post",
                label=f"{label} (AP {average:.3f})")
    _finish(ax, "recall", "precision", title, len(curves))
    return figure


def roc_folds_figure(rocs: list[tuple[np.ndarray, np.ndarray, float]]) -> Figure:
    """Every fold's ROC curve (macro average over classes when multiclass) and their mean."""
    figure = _figure(4.4, 4.0)
    ax = figure.add_subplot()
    for i, (fpr, tpr, area) in enumerate(rocs[:MAX_FOLD_FIGURES], 1):
        ax.plot(fpr, tpr, lw=0.8, alpha=0.5, label=f"fold {i} (AUC {area:.3f})")
    areas = [area for *_, area in rocs]
    mean = np.mean([tpr for _, tpr, _ in rocs], axis=0)
    ax.plot(_GRID, mean, c="black", lw=2,
            label=f"mean (AUC {np.mean(areas):.3f} ± {np.std(areas):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    _finish(ax, "false positive rate", "true positive rate", "ROC, test part of every fold",
            min(len(rocs), MAX_FOLD_FIGURES) + 1)
    return figure


def _finish(ax: Any, xlabel: str, ylabel: str, title: str, n_lines: int) -> None:
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if n_lines <= 12:
        ax.legend(fontsize=7, loc="lower right" if "true" in ylabel else "lower left")
    ax.figure.subplots_adjust(left=0.16, bottom=0.14, right=0.97, top=0.9)


def predicted_vs_actual_figure(y_true: np.ndarray, y_pred: np.ndarray, shown: str = ""
                               ) -> Figure:
    figure = _figure()
    ax = figure.add_subplot()
    ax.scatter(y_true, y_pred, s=10, alpha=0.6)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax.plot([low, high], [low, high], ls=":", c="grey", lw=1)
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(f"predicted vs actual (test part{shown})", fontsize=10)
    figure.subplots_adjust(left=0.18, bottom=0.14, right=0.97, top=0.9)
    return figure


def residuals_figure(y_true: np.ndarray, y_pred: np.ndarray, shown: str = "") -> Figure:
    figure = _figure()
    ax = figure.add_subplot()
    ax.scatter(y_pred, y_true - y_pred, s=10, alpha=0.6)
    ax.axhline(0, ls=":", c="grey", lw=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual − predicted")
    ax.set_title(f"residuals (test part{shown})", fontsize=10)
    figure.subplots_adjust(left=0.18, bottom=0.14, right=0.97, top=0.9)
    return figure


def learning_curves_figure(histories: list[dict[str, list[float]]]) -> Figure:
    """Per-epoch `train_loss` and `val_loss`, one panel each, one line per fold."""
    keys = [k for k in ("train_loss", "val_loss") if any(h.get(k) for h in histories)]
    figure = _figure(4.0 * len(keys), 3.4)
    axes = np.atleast_1d(figure.subplots(1, len(keys), sharey=True))
    for ax, key in zip(axes, keys, strict=True):
        for i, history in enumerate(histories, 1):
            values = history.get(key) or []
            ax.plot(range(1, len(values) + 1), values, lw=1, label=f"fold {i}")
        ax.set_xlabel("epoch")
        ax.set_title(key, fontsize=10)
        if len(histories) <= 10:
            ax.legend(fontsize=7)
    axes[0].set_ylabel("loss")
    figure.subplots_adjust(left=0.12 / len(keys) + 0.04, bottom=0.15, right=0.98, top=0.9,
                           wspace=0.08)
    return figure


def importance_figure(table: pd.DataFrame, kind: str, sampled_rows: int | None = None) -> Figure:
    """Mean importance across folds (± std), the TOP_FEATURES largest, by original column;
    `sampled_rows`: the size of each fold's sample of test rows where one was used."""
    mean, std = table.mean(), table.std(ddof=0).fillna(0)
    order = mean.sort_values(ascending=False).index[:TOP_FEATURES][::-1]
    figure = _figure(6.0, 1.2 + 0.22 * len(order))
    ax = figure.add_subplot()
    # Error bars span ± std, cut at zero for impurity importance (never negative).
    low = np.minimum(std[order], mean[order]) if kind == "impurity" else std[order]
    ax.barh(range(len(order)), mean[order], xerr=[low, std[order]], color="tab:blue",
            alpha=0.8, error_kw={"lw": 0.8})
    ax.set_yticks(range(len(order)), [str(name) for name in order], fontsize=8)
    what = ("impurity decrease" if kind == "impurity"
            else f"permutation importance, test part ({PERMUTATION_REPEATS} repeats"
                 + (f", {sampled_rows} sampled rows)" if sampled_rows else ")"))
    ax.set_xlabel(f"{what}; mean ± std over {len(table)} fold(s)", fontsize=8)
    ax.set_title("feature importance", fontsize=10)
    figure.subplots_adjust(left=0.35, bottom=0.6 / figure.get_figheight() + 0.05, right=0.97,
                           top=1 - 0.35 / figure.get_figheight())
    return figure


def tree_figure(estimator: Any, which: str = "") -> Figure | None:
    """The fitted decision tree, its top TREE_DEPTH levels; None for other models. `which`
    says which fit it is (fold 1, or the refit on all rows)."""
    from sklearn.tree import BaseDecisionTree, plot_tree

    tree = estimator[-1]
    if not isinstance(tree, BaseDecisionTree):
        return None
    depth = tree.get_depth()
    shown = min(depth, TREE_DEPTH)
    figure = _figure(min(4.0 + 2.4 * 2 ** (shown - 1), 18.0), 1.6 + 1.3 * (shown + 1))
    ax = figure.add_subplot()
    plot_tree(tree, ax=ax, max_depth=TREE_DEPTH, filled=True, impurity=False, precision=2,
              feature_names=[str(n) for n in estimator[:-1].get_feature_names_out()],
              # The tree's own (sorted) class order, not always the data's.
              class_names=[str(c) for c in getattr(tree, "classes_", [])] or None,
              fontsize=7)
    note = f"top {TREE_DEPTH} of {depth} levels; " if depth > TREE_DEPTH else ""
    ax.set_title(f"decision tree{', ' + which if which else ''} ({note}{tree.get_n_leaves()} "
                 "leaves; thresholds on preprocessed features)", fontsize=9)
    figure.subplots_adjust(left=0.01, bottom=0.01, right=0.99, top=0.94)
    return figure


def scores_figure(folds: pd.DataFrame) -> Figure:
    """The per-fold held-out scores and their mean ± std, as a table."""
    columns = [c for c in folds.columns if c.startswith(("val_", "test_"))]
    shown = folds[columns] if len(folds) <= MAX_FOLD_FIGURES else folds[columns].iloc[0:0]
    cells = [[f"{v:.3f}" for v in row] for row in shown.to_numpy(dtype=float)]
    values = folds[columns].to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a score undefined in every fold
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    cells.append([f"{m:.3f}±{s:.3f}" for m, s in zip(mean, std, strict=True)])
    rows = [*map(str, shown.index), "mean±std"]
    figure = _figure(max(4.0, 1.0 + 1.05 * len(columns)), 0.7 + 0.25 * (len(rows) + 1))
    ax = figure.add_subplot()
    ax.set_axis_off()
    table = ax.table(cellText=cells, rowLabels=rows, colLabels=columns, loc="center",
                     cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    ax.set_title(f"held-out scores, {len(folds)} fold(s)", fontsize=10)
    figure.subplots_adjust(left=0.12, bottom=0.02, right=0.98, top=0.85)
    return figure


def clusters_figure(projected: np.ndarray, clusters: np.ndarray,
                    labels: np.ndarray | None) -> Figure:
    """Rows on their first two principal components, by cluster and by true label."""
    panels = [("clusters", clusters)] + ([("true labels", labels)] if labels is not None else [])
    figure = _figure(4.0 * len(panels), 3.6)
    for index, (title, colours) in enumerate(panels, 1):
        ax = figure.add_subplot(1, len(panels), index)
        codes = pd.factorize(pd.Series(colours))[0]
        ax.scatter(projected[:, 0], projected[:, 1], c=codes, cmap="tab10", s=8, alpha=0.8)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.set_title(f"coloured by {title}", fontsize=9)
    figure.tight_layout()
    return figure


def scree_figure(ratios: np.ndarray, title: str) -> Figure:
    """Explained variance per principal component, and its running total."""
    figure = _figure(4.4, 3.4)
    ax = figure.add_subplot()
    steps = np.arange(1, len(ratios) + 1)
    ax.bar(steps, ratios, color="tab:blue", label="per component")
    ax.plot(steps, np.cumsum(ratios), color="tab:orange", marker=".", label="cumulative")
    ax.set_ylim(0, 1.02)
    _finish(ax, "principal component", "explained variance ratio", title, 2)
    return figure


def dendrogram_figure(points: np.ndarray, method: str) -> Figure:
    """The merge tree of agglomerative clustering with `method` linkage, last 30 merges."""
    from scipy.cluster.hierarchy import dendrogram, linkage

    figure = _figure(6.0, 3.6)
    ax = figure.add_subplot()
    tree = linkage(points, method=method)
    dendrogram(tree, ax=ax, truncate_mode="lastp", p=30, no_labels=False,
               leaf_font_size=7, color_threshold=None)
    ax.set_ylabel("merge distance")
    ax.set_title(f"hierarchical clustering, {method} linkage (last 30 merges)", fontsize=9)
    figure.tight_layout()
    return figure
