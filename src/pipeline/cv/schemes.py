"""The cross-validation schemes that `conf/cv/*.yaml` name, beside scikit-learn's own: k-fold
stratified on classes unless asked not to, holdouts, leave-one-out, groups, time series, a
train/validation/test split, and resamples for clustering."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn import model_selection as ms

from pipeline.errors import PipelineError
from pipeline.tasks import Task


def _stratified(stratify: bool, task: Task) -> bool:
    return bool(stratify) and task.has_classes


def kfold(
    n_splits: int = 5, shuffle: bool = True, stratify: bool = True,
    random_state: int | None = None, *, task: Task,
) -> ms.BaseCrossValidator:
    """k-fold, stratified on a classification target unless `stratify` is false."""
    _check_splits(n_splits)
    splitter = ms.StratifiedKFold if _stratified(stratify, task) else ms.KFold
    return splitter(n_splits, shuffle=shuffle, random_state=random_state if shuffle else None)


def repeated_kfold(
    n_splits: int = 5, n_repeats: int = 10, stratify: bool = True,
    random_state: int | None = None, *, task: Task,
) -> ms.RepeatedKFold | ms.RepeatedStratifiedKFold:
    """`n_repeats` rounds of k-fold, each shuffled anew (stratified on a classification target
    unless `stratify` is false): every row is tested once per round."""
    _check_splits(n_splits)
    if not isinstance(n_repeats, int) or n_repeats < 1:
        raise PipelineError(f"cv.n_repeats must be an integer of at least 1, got {n_repeats}")
    splitter = ms.RepeatedStratifiedKFold if _stratified(stratify, task) else ms.RepeatedKFold
    return splitter(n_splits=n_splits, n_repeats=n_repeats, random_state=random_state)


def repeated_holdout(
    n_repeats: int = 10, test_size: float = 0.2, stratify: bool = True,
    random_state: int | None = None, *, task: Task,
) -> ms.BaseShuffleSplit:
    """`n_repeats` independent random train/test splits (Monte Carlo cross-validation); each
    split is a fold of its own (`fold-<i>`, `Folds.repeats` 1), not a repeat of one fold."""
    _check_fraction("test_size", test_size)
    if n_repeats < 1:
        raise PipelineError(f"cv.n_repeats must be at least 1, got {n_repeats}")
    splitter = ms.StratifiedShuffleSplit if _stratified(stratify, task) else ms.ShuffleSplit
    return splitter(n_splits=n_repeats, test_size=test_size, random_state=random_state)


def holdout(
    test_size: float = 0.2, stratify: bool = True, random_state: int | None = None, *, task: Task,
) -> ms.BaseShuffleSplit:
    """One random train/test split."""
    return repeated_holdout(1, test_size, stratify, random_state, task=task)


def loocv() -> ms.LeaveOneOut:
    """Leave-one-out: as many folds as rows."""
    return ms.LeaveOneOut()


def group_kfold(n_splits: int = 5) -> ms.GroupKFold:
    """k-fold in which no group (`data.groups` column) is split between train and test."""
    _check_splits(n_splits)
    return _NeedsGroups(ms.GroupKFold(n_splits))


def timeseries(n_splits: int = 5, gap: int = 0, test_size: int | None = None):
    """Expanding-window splits in row order: every test fold lies after its training part."""
    _check_splits(n_splits)
    return ms.TimeSeriesSplit(n_splits=n_splits, gap=gap, test_size=test_size)


def train_val_test(
    test_size: float = 0.2, val_size: float = 0.2, stratify: bool = True,
    random_state: int | None = None, *, task: Task,
) -> TrainValTestSplit:
    """One split into training, validation and test parts; `val_size` is a fraction of all rows."""
    _check_fraction("test_size", test_size)
    _check_fraction("val_size", val_size)
    if test_size + val_size >= 1:
        raise PipelineError(
            f"cv.test_size + cv.val_size must leave rows to train on, got {test_size} + {val_size}"
        )
    return TrainValTestSplit(test_size, val_size, _stratified(stratify, task), random_state)


def resample(
    n_repeats: int = 10, fraction: float = 0.8, random_state: int | None = None,
) -> Resample:
    """Clustering's cross-validation: `n_repeats` random subsets of `fraction` of the rows."""
    _check_fraction("fraction", fraction)
    if n_repeats < 1:
        raise PipelineError(f"cv.n_repeats must be at least 1, got {n_repeats}")
    return Resample(n_repeats, fraction, random_state)


class Resample:
    """Subsets for a clustering model: each fold fits and scores the same subset of rows (its
    `train` and `test` parts are the same rows); the agreement of the subsets' clusterings
    with a clustering of all rows measures their stability."""

    def __init__(self, n_repeats: int, fraction: float, random_state: Any):
        self.n_repeats, self.fraction, self.random_state = n_repeats, fraction, random_state

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, ...]]:
        rng = np.random.default_rng(self.random_state)
        n_rows = len(X)
        size = max(2, round(self.fraction * n_rows))
        for _ in range(self.n_repeats):
            rows = np.sort(rng.choice(n_rows, size=size, replace=False))
            yield rows, rows


class TrainValTestSplit:
    """One split into (train, test, val): the test part first, then validation from the rest."""

    def __init__(self, test_size: float, val_size: float, stratify: bool, random_state: Any):
        self.test_size, self.val_size = test_size, val_size
        self.stratify, self.random_state = stratify, random_state

    def split(self, X: Any, y: Any, groups: Any = None) -> Iterator[tuple[np.ndarray, ...]]:
        rows = np.arange(len(y))
        labels = np.asarray(y)
        rest, test = ms.train_test_split(
            rows, test_size=self.test_size, random_state=self.random_state,
            stratify=labels if self.stratify else None,
        )
        train, val = ms.train_test_split(
            rest, test_size=self.val_size / (1 - self.test_size), random_state=self.random_state,
            stratify=labels[rest] if self.stratify else None,
        )
        yield np.sort(train), np.sort(test), np.sort(val)


class _NeedsGroups:
    """A group splitter that explains a missing `data.groups` instead of sklearn's bare error."""

    def __init__(self, splitter: ms.BaseCrossValidator):
        self.splitter = splitter

    def split(self, X: Any, y: Any, groups: Any = None) -> Iterator[tuple[np.ndarray, ...]]:
        if groups is None:
            raise PipelineError(
                "cv=group_kfold needs a group column: add data.groups=<column> (data=csv)"
            )
        return self.splitter.split(X, y, groups)


def _check_splits(n_splits: int) -> None:
    if not isinstance(n_splits, int) or n_splits < 2:
        raise PipelineError(f"cv.n_splits must be an integer of at least 2, got {n_splits}")


def _check_fraction(key: str, value: float) -> None:
    if not 0 < value < 1:
        raise PipelineError(f"cv.{key} must be a fraction between 0 and 1, got {value}")
