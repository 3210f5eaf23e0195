"""Drawing the figures: each function takes the numbers a figure shows (gathered by
`pipeline.plots.figure_data`) and returns a matplotlib `Figure`, drawn by Agg outside pyplot.
Matplotlib is imported on the first figure, never at `import pipeline`."""

from __future__ import annotations

import sys
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.plots.figure_data import PERMUTATION_REPEATS, ROC_GRID

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
# Per-fold figures for up to this many folds (leave-one-out: summaries on the parent only);
# across folds, the ROC figure draws this many folds' curves and the score table their rows.
MAX_FOLD_FIGURES = 20
# ROC and precision-recall curves are computed from every test row (their areas are exact)
# and drawn through at most this many of their points (a 200,000-row part has as many).
CURVE_POINTS = 2000
# The tree is drawn down to this depth; deeper levels show as "(...)".
TREE_DEPTH = 4
# Feature-importance bars: the most important features only.
TOP_FEATURES = 20


def new_figure(width: float = 4.0, height: float = 3.6) -> Figure:
    """A figure outside pyplot (nothing to close, no GUI), drawn by Agg."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # headless, also for the pyplot that plot_tree imports
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _thinned(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A curve's points for drawing: at most CURVE_POINTS of them, evenly spaced along the
    curve's points, the first and last kept."""
    if len(x) <= CURVE_POINTS:
        return x, y
    kept = np.unique(np.linspace(0, len(x) - 1, CURVE_POINTS).round().astype(int))
    return x[kept], y[kept]


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
    figure = new_figure()
    ax = figure.add_subplot()
    _matrix_axes(ax, matrix, labels, "d", f"confusion matrix (test, n={int(matrix.sum())})")
    figure.subplots_adjust(left=0.22, bottom=0.2, right=0.97, top=0.9)
    return figure


def summed_confusion_figure(matrix: np.ndarray, labels: list[str]) -> Figure:
    """Counts summed over the folds' test parts, and the same normalised per true class."""
    figure = new_figure(8.0, 3.8)
    counts, share = figure.subplots(1, 2)
    _matrix_axes(counts, matrix, labels, "d", f"summed over folds (n={int(matrix.sum())})")
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    _matrix_axes(share, normalised, labels, ".2f", "normalised by true class (recall)")
    figure.subplots_adjust(left=0.1, bottom=0.2, right=0.98, top=0.9, wspace=0.35)
    return figure


def roc_figure(curves: list, title: str) -> Figure:
    figure = new_figure()
    ax = figure.add_subplot()
    for label, fpr, tpr, area in curves:
        ax.plot(*_thinned(fpr, tpr), lw=1.2, label=f"{label} (AUC {area:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    _finish(ax, "false positive rate", "true positive rate", title, len(curves))
    return figure


def pr_figure(curves: list, title: str) -> Figure:
    figure = new_figure()
    ax = figure.add_subplot()
    for label, recall, precision, average in curves:
        ax.plot(*_thinned(recall, precision), lw=1.2, drawstyle="steps-post",
                label=f"{label} (AP {average:.3f})")
    _finish(ax, "recall", "precision", title, len(curves))
    return figure


def roc_folds_figure(rocs: list[tuple[np.ndarray, np.ndarray, float]]) -> Figure:
    """Every fold's ROC curve (macro average over classes when multiclass) and their mean."""
    figure = new_figure(4.4, 4.0)
    ax = figure.add_subplot()
    for i, (fpr, tpr, area) in enumerate(rocs[:MAX_FOLD_FIGURES], 1):
        ax.plot(fpr, tpr, lw=0.8, alpha=0.5, label=f"fold {i} (AUC {area:.3f})")
    areas = [area for *_, area in rocs]
    mean = np.mean([tpr for _, tpr, _ in rocs], axis=0)
    ax.plot(ROC_GRID, mean, c="black", lw=2,
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
    figure = new_figure()
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
    figure = new_figure()
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
    figure = new_figure(4.0 * len(keys), 3.4)
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
    figure = new_figure(6.0, 1.2 + 0.22 * len(order))
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
    figure = new_figure(min(4.0 + 2.4 * 2 ** (shown - 1), 18.0), 1.6 + 1.3 * (shown + 1))
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
    figure = new_figure(max(4.0, 1.0 + 1.05 * len(columns)), 0.7 + 0.25 * (len(rows) + 1))
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
    figure = new_figure(4.0 * len(panels), 3.6)
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
    figure = new_figure(4.4, 3.4)
    ax = figure.add_subplot()
    steps = np.arange(1, len(ratios) + 1)
    ax.bar(steps, ratios, color="tab:blue", label="per component")
    ax.plot(steps, np.cumsum(ratios), color="tab:orange", marker=".", label="cumulative")
    ax.set_ylim(0, 1.02)
    _finish(ax, "principal component", "explained variance ratio", title, 2)
    return figure


def dendrogram_figure(tree: np.ndarray, method: str) -> Figure:
    """The merge tree (`figure_data.merge_tree`) of agglomerative clustering with `method`
    linkage, its last 30 merges."""
    from scipy.cluster.hierarchy import dendrogram

    figure = new_figure(6.0, 3.6)
    ax = figure.add_subplot()
    dendrogram(tree, ax=ax, truncate_mode="lastp", p=30, no_labels=False,
               leaf_font_size=7, color_threshold=None)
    ax.set_ylabel("merge distance")
    ax.set_title(f"hierarchical clustering, {method} linkage (last 30 merges)", fontsize=9)
    figure.tight_layout()
    return figure
