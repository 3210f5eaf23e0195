"""The job's task, decided once from the data and the model's family, and all that differs by
task: its metrics and figures, how a fold is fitted, predicted and scored, what a fold logs."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from pipeline import metrics
from pipeline.data import Dataset
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


class Fold(Protocol):
    """A fold's parts as row positions (pipeline.cv.Fold): what a task fits and scores on."""

    train: np.ndarray
    val: np.ndarray | None
    test: np.ndarray


class Tracker(Protocol):
    """What a task records through the job's tracker (pipeline.tracking's)."""

    def log_table(self, run_id: str, table: Any, name: str) -> None: ...


class Figures(Protocol):
    """What a task draws on the parent run through the job's figures (pipeline.plots')."""

    def clusters(self, tracker: Tracker, run_id: str, reference: Any) -> None: ...

# Figures drawn after each fold, from its predictions, and across them on the parent run.
SUPERVISED_FIGURES = frozenset({"learning_curves", "importance", "tree", "scores", "scree"})


class Task:
    """What a job does with its data. One instance per job, made by `decide`."""

    name: ClassVar[str]
    # The target is class labels: splits stratify on it, LDA can separate it.
    has_classes: ClassVar[bool] = False
    # Folds are fitted on the target, and the job can refit on all rows.
    supervised: ClassVar[bool] = True
    # The figure kinds (`plots: [...]`) that exist for this task.
    figures: ClassVar[frozenset[str]] = frozenset()

    def __str__(self) -> str:
        return self.name

    def classes(self, dataset: Dataset) -> np.ndarray:
        """The classes a classifier learns, in the data's order; empty for other tasks."""
        return np.array([])

    def fits(self, estimator: Any, n_classes: int) -> bool:
        """Whether `estimator` can learn this task's target with `n_classes` classes."""
        raise NotImplementedError

    def describe(self, dataset: Dataset) -> str:
        """What is to be learnt from `dataset`, for messages."""
        return f"{dataset.name} has a {self.name} target"

    def check_metrics(self, names: tuple[str, ...], objective: str) -> None:
        """`metrics.<task>` of a job, each a known metric of this task, and the objective
        among them."""
        metrics.check_names(self.name, list(names))
        if objective not in names:
            raise PipelineError(f"objective={objective} is not among metrics.{self.name}")

    def prepare(self, template: Pipeline, dataset: Dataset) -> None:
        """Whatever every fold compares with, made once before the folds."""

    def fit(self, estimator: Pipeline, dataset: Dataset, rows: np.ndarray | slice) -> float:
        """Fit `estimator` on `rows`; the seconds it took."""
        started = time.perf_counter()
        estimator.fit(dataset.X.iloc[rows], dataset.y.iloc[rows])
        return time.perf_counter() - started

    def score(self, estimator: Pipeline, dataset: Dataset, fold: Fold, names: list[str],
              average: str) -> tuple[dict[str, float], Any]:
        """`({part_metric: value}, the test part's outputs)` for every part of the fold."""
        parts = {"train": fold.train, "val": fold.val, "test": fold.test}
        scores_needed = metrics.needs_scores(names, self.name)
        classes = self.classes(dataset)
        outputs = {
            part: metrics.Predictions(estimator, dataset.X.iloc[rows], dataset.y.iloc[rows],
                                      task=self.name, classes=classes,
                                      probabilities=scores_needed)
            for part, rows in parts.items() if rows is not None
        }
        row = {f"{part}_{name}": value for part, predictions in outputs.items()
               for name, value in metrics.score(predictions, names, average).items()}
        return row, outputs["test"]

    def log_fold(self, tracker: Tracker, run_id: str, test: Any) -> None:
        """What a fold's run records beside its scores."""

    def finish(self, figures: Figures, tracker: Tracker, run_id: str) -> None:
        """What the parent run records once the folds are done, beside their scores."""


class Classification(Task):
    name = "classification"
    has_classes = True
    figures = SUPERVISED_FIGURES | {"confusion_matrix", "roc", "pr"}

    def classes(self, dataset: Dataset) -> np.ndarray:
        return dataset.classes

    def fits(self, estimator: Any, n_classes: int) -> bool:
        from sklearn.base import is_classifier
        from sklearn.utils import get_tags

        if not is_classifier(estimator):
            return False
        return n_classes <= 2 or get_tags(estimator).classifier_tags.multi_class

    def describe(self, dataset: Dataset) -> str:
        return (f"{dataset.name} has a classification target with "
                f"{len(self.classes(dataset))} classes")

    def log_fold(self, tracker: Tracker, run_id: str, test: metrics.Predictions) -> None:
        tracker.log_table(run_id, metrics.confusion(test), "confusion_matrix.csv")


class Regression(Task):
    name = "regression"
    figures = SUPERVISED_FIGURES | {"regression"}

    def fits(self, estimator: Any, n_classes: int) -> bool:
        from sklearn.base import is_regressor

        return is_regressor(estimator)


class Clustering(Task):
    """A clustering model on any data: its labels, where it has them, only score the
    clusters. Each fold clusters a resample; stability compares its clusters with those of a
    clustering of all rows (the reference), made once."""

    name = "clustering"
    supervised = False
    figures = frozenset({"scores", "clusters", "scree", "dendrogram"})

    def __init__(self) -> None:
        self.reference: Pipeline | None = None

    def fits(self, estimator: Any, n_classes: int) -> bool:
        from sklearn.base import is_clusterer

        return is_clusterer(estimator)

    def describe(self, dataset: Dataset) -> str:
        return f"{dataset.name} is to be clustered"

    def prepare(self, template: Pipeline, dataset: Dataset) -> None:
        from sklearn.base import clone

        self.reference = clone(template).fit(dataset.X)

    def fit(self, estimator: Pipeline, dataset: Dataset, rows: np.ndarray | slice) -> float:
        # A clustering model never sees the labels: they only score its clusters.
        started = time.perf_counter()
        estimator.fit(dataset.X.iloc[rows])
        return time.perf_counter() - started

    def score(self, estimator: Pipeline, dataset: Dataset, fold: Fold, names: list[str],
              average: str) -> tuple[dict[str, float], metrics.Assignments]:
        labels = None if dataset.y is None else dataset.y.iloc[fold.test]
        clusters = metrics.Assignments(estimator, dataset.X.iloc[fold.test], labels,
                                       self.reference[-1].labels_[fold.test])
        row = {f"test_{k}": v for k, v in metrics.score(clusters, names, average).items()}
        return row, clusters

    def finish(self, figures: Figures, tracker: Tracker, run_id: str) -> None:
        figures.clusters(tracker, run_id, self.reference)


TASKS: dict[str, type[Task]] = {t.name: t for t in (Classification, Regression, Clustering)}


def of(name: str) -> Task:
    """A fresh Task for `name`: classification, regression or clustering."""
    if name not in TASKS:
        raise PipelineError(f"data.task={name!r} is not one of {', '.join(TASKS)}")
    return TASKS[name]()


def decide(dataset: Dataset, model: type | None) -> Task:
    """The job's task, before anything is built: clustering for a model class that clusters
    (any data can be clustered), else the data's own task. `model` is the class the model's
    config names for the data's task (None where it names none); nothing is fitted."""
    return of("clustering" if model is not None and _is_clusterer(model) else dataset.task)


def _is_clusterer(model: type) -> bool:
    """scikit-learn's own test on a default instance, else the class's family."""
    from sklearn.base import ClusterMixin, is_clusterer

    try:
        instance = model()
    except TypeError:  # a constructor that needs arguments
        return issubclass(model, ClusterMixin)
    return is_clusterer(instance)
