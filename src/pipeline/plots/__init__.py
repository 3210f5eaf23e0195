"""Figures a person looks at, logged as PNG artifacts: per fold on the fold's run, and across
folds (summed confusion matrix, ROC of every fold, learning curves, feature importance, the
tree, the score table) on the job's parent run. `plots: true | false | [kind, ...]` picks them.

`figures` decides and logs them (`Figures`), `figure_data` gathers the numbers they show, and
`draw` draws them with matplotlib (imported on the first figure only).
"""

from pipeline.plots.draw import (
    clusters_figure,
    confusion_figure,
    dendrogram_figure,
    importance_figure,
    learning_curves_figure,
    new_figure,
    pr_figure,
    predicted_vs_actual_figure,
    residuals_figure,
    roc_figure,
    roc_folds_figure,
    scores_figure,
    scree_figure,
    summed_confusion_figure,
    tree_figure,
)
from pipeline.plots.figure_data import (
    importance,
    original_columns,
    permutation_importance,
    sample_rows,
)
from pipeline.plots.figures import KINDS, Figures, selected

__all__ = [
    "KINDS", "Figures", "clusters_figure", "confusion_figure", "dendrogram_figure", "importance",
    "importance_figure", "learning_curves_figure", "new_figure", "original_columns",
    "permutation_importance", "pr_figure", "predicted_vs_actual_figure", "residuals_figure",
    "roc_figure", "roc_folds_figure", "sample_rows", "scores_figure", "scree_figure", "selected",
    "summed_confusion_figure", "tree_figure",
]
