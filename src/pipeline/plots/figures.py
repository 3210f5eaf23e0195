"""The job's figures: which kinds `plots: true | false | [kind, ...]` picks, and `Figures`,
which after each fold gathers what the figures need (`figure_data`), draws them (`draw`) and
logs them as PNGs on the fold's run, then across folds on the job's parent run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from pipeline import tasks
from pipeline.errors import PipelineError
from pipeline.plots import draw, figure_data

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
# Scatter figures (predicted vs actual, residuals, clusters) draw at most this many points, a
# seeded sample of the rows: beyond, the points merge into a blot and drawing takes seconds.
FIGURE_POINTS = 5000
# A dendrogram is drawn for hierarchical clustering of at most this many rows.
DENDROGRAM_ROWS = 1000


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
        self.per_fold = n_folds <= draw.MAX_FOLD_FIGURES
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
        from pipeline.distributed import global_rank

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
        history = figure_data.learning_history(estimator)
        if history:
            self.histories.append(history)
        if "importance" in self.kinds:
            found = figure_data.importance(estimator, X_test, y_test, self.seed)
            if found is not None:
                self.importance_kind, values = found
                self.importances.append(values)
                most = figure_data.PERMUTATION_ROWS
                if self.importance_kind == "permutation" and len(X_test) > most:
                    self.importance_rows = most
                    self._note("importance", f"permutation importance on a seeded sample of "
                                             f"{most} of each fold's {len(X_test)} test rows")
        if self.first_model is None:
            self.first_model = estimator
        for name, figure in figures.items():
            tracker.log_figure(run_id, figure, f"plots/{name}.png")

    def _classification(self, p: Predictions) -> dict[str, Figure]:
        """A fold's confusion matrix, ROC and precision-recall curves; the matrix and the ROC
        are kept for the parent's figures."""
        want, drawn = self.kinds, self.per_fold
        figures: dict[str, Figure] = {}
        classes = [str(c) for c in p.classes]
        matrix = figure_data.confusion_counts(p)
        self.confusions.append(matrix)
        if "confusion_matrix" in want and drawn:
            figures["confusion_matrix"] = draw.confusion_figure(matrix, classes)
        curves = figure_data.curves(p)
        if curves is not None:
            roc, pr = curves
            longest = max(len(x) for _, x, *_ in (*roc, *pr))
            if longest > draw.CURVE_POINTS and drawn and want & {"roc", "pr"}:
                self._note("curves", f"ROC and precision-recall curves drawn through "
                                     f"{draw.CURVE_POINTS} of their up to {longest} points "
                                     "(areas from every test row)")
            self.rocs.append(figure_data.mean_roc(roc))
            if "roc" in want and drawn:
                figures["roc"] = draw.roc_figure(roc, "ROC (test part)")
            if "pr" in want and drawn:
                figures["pr"] = draw.pr_figure(pr, "precision-recall (test part)")
        return figures

    def _regression(self, p: Predictions) -> dict[str, Figure]:
        """A fold's predicted against actual values, and its residuals."""
        if "regression" not in self.kinds or not self.per_fold:
            return {}
        y_true, y_pred = np.asarray(p.y_true), np.asarray(p.y_pred)
        rows = figure_data.sample_rows(len(y_true), FIGURE_POINTS, self.seed)
        shown = ""
        if rows is not None:
            y_true, y_pred = y_true[rows], y_pred[rows]
            shown = f", {len(rows)} of {len(p.y_true)} rows"
            self._note("regression", f"regression scatter plots drawn from a seeded sample of "
                                     f"{len(rows)} of each fold's {len(p.y_true)} test rows")
        return {"predicted_vs_actual": draw.predicted_vs_actual_figure(y_true, y_pred, shown),
                "residuals": draw.residuals_figure(y_true, y_pred, shown)}

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
            figures["confusion_matrix"] = draw.summed_confusion_figure(sum(self.confusions),
                                                                       classes)
        if "roc" in want and self.rocs:
            figures["roc"] = draw.roc_folds_figure(self.rocs)
        if "learning_curves" in want and self.histories:
            figures["learning_curves"] = draw.learning_curves_figure(self.histories)
        if "importance" in want and self.importances:
            table = figure_data.importance_table(self.importances)
            tracker.log_table(run_id, table.T.rename_axis("feature"), "feature_importance.csv")
            figures["feature_importance"] = draw.importance_figure(table, self.importance_kind,
                                                                   self.importance_rows)
        if "tree" in want:
            model = final if final is not None else self.first_model
            which = "refit on all rows" if final is not None else "fold 1"
            figure = draw.tree_figure(model, which) if model is not None else None
            if figure is not None:
                figures["tree"] = figure
        if "scores" in want and len(folds):
            figures["scores"] = draw.scores_figure(folds)
        if "scree" in want and self.first_model is not None:
            reducer = figure_data.reducer(self.first_model)
            if reducer is not None and hasattr(reducer, "explained_variance_ratio_"):
                figures["scree"] = draw.scree_figure(reducer.explained_variance_ratio_,
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
        if not self.kinds:
            return
        points = figure_data.preprocessed_rows(fitted, self.dataset.X)
        pca = figure_data.principal_components(points)
        figures: dict[str, Figure] = {}
        if "clusters" in self.kinds and points.shape[1] >= 2:
            labels = None if self.dataset.y is None else np.asarray(self.dataset.y)
            clusters = np.asarray(fitted[-1].labels_)
            projected = pca.transform(points)[:, :2]
            rows = figure_data.sample_rows(len(points), FIGURE_POINTS, self.seed)
            if rows is not None:
                projected, clusters = projected[rows], clusters[rows]
                labels = None if labels is None else labels[rows]
                self._note("clusters", f"cluster scatter plot drawn from a seeded sample of "
                                       f"{len(rows)} of the {len(points)} rows")
            figures["clusters_pca"] = draw.clusters_figure(projected, clusters, labels)
        if "scree" in self.kinds:
            figures["scree"] = draw.scree_figure(pca.explained_variance_ratio_,
                                                 "PCA of the preprocessed columns")
        if ("dendrogram" in self.kinds and hasattr(fitted[-1], "linkage")
                and len(points) <= DENDROGRAM_ROWS):
            method = fitted[-1].linkage
            figures["dendrogram"] = draw.dendrogram_figure(
                figure_data.merge_tree(points, method), method)
        for name, figure in figures.items():
            tracker.log_figure(run_id, figure, f"plots/{name}.png")
        if self.sampled:
            tracker.log_text(run_id, "\n".join(self.sampled.values()) + "\n", "plots/sampled.txt")
