"""A job's folds: the scheme's splitter run once up front, and what the planned folds are
checked for before any fit (a fold count, a class too small, a part of one class, a model too
slow for the rows)."""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn import model_selection as ms

from pipeline import tasks
from pipeline.cv.schemes import Resample
from pipeline.data import Dataset
from pipeline.errors import PipelineError
from pipeline.spec import Scheme
from pipeline.tasks import Task

log = logging.getLogger("pipeline")

# A job of more folds than this is refused before any fit. Each fold is a fit, the scoring of
# every part and an MLflow child run: measured at 0.8 s (knn) to 1.3 s (logistic, 5 epochs) a
# fold on a few hundred rows (2 shared cores, load 8), so a thousand folds are 15-20 minutes,
# and leave-one-out on 10,000 rows would be hours, however small the model.
MAX_FOLDS = 1000
# Models whose fold costs grow with the square of the rows (seconds per training row² per
# feature, measured with 50 features on 2 shared cores at load 9): a kernel SVM's fit and the
# prediction of its training part (SVC at 10,000 rows: 19 s fit, 16 s predict), and the
# nearest neighbours of every training row that scoring the training part looks up (3.6 s at
# 10,000 rows). A job estimated beyond QUADRATIC_REFUSE_S is refused, beyond QUADRATIC_WARN_S
# warned about.
QUADRATIC_COST = {"SVC": 7e-9, "SVR": 7e-9, "NuSVC": 7e-9, "NuSVR": 7e-9,
                  "KNeighborsClassifier": 7e-10, "KNeighborsRegressor": 7e-10}
QUADRATIC_WARN_S = 300
# Up to this many features scikit-learn's nearest neighbours search a tree (n log n), not
# every pair of rows.
NEIGHBOUR_TREE_FEATURES = 15
QUADRATIC_REFUSE_S = 3600


class Fold(NamedTuple):
    train: np.ndarray
    test: np.ndarray
    val: np.ndarray | None = None


class Folds(list):
    """The planned folds, in order, and the warnings planning them gave (printed once; the job
    records them on its parent run). A repeated scheme (repeated k-fold) plans `repeats` rounds
    of `len(folds) // repeats` folds each, one round after another."""

    def __init__(self, folds: list[Fold], notes: tuple[str, ...] = (), repeats: int = 1):
        super().__init__(folds)
        self.notes = notes
        self.repeats = repeats

    def position(self, i: int) -> tuple[int, int]:
        """Fold `i` (1-based, across repeats) as (repeat, fold within the repeat), both 1-based."""
        per_repeat = len(self) // self.repeats
        return (i - 1) // per_repeat + 1, (i - 1) % per_repeat + 1

    def run_name(self, i: int) -> str:
        """Fold `i`'s run name: `fold-<i>`, or `repeat-<r>/fold-<j>` when the scheme repeats."""
        if self.repeats == 1:
            return f"fold-{i}"
        repeat, within = self.position(i)
        return f"repeat-{repeat}/fold-{within}"

    def digest(self, data: str, n_rows: int) -> str:
        """A short fingerprint of the plan: the data's name and row count, then every fold's
        parts (train, test and any validation indices) in order. Two jobs with the same
        digest were scored on the same rows fold by fold, so their fold scores pair."""
        import hashlib

        hasher = hashlib.sha256(f"{data}\n{n_rows}\n{len(self)}".encode())
        for fold in self:
            for part in fold:
                indices = np.ascontiguousarray([] if part is None else part, dtype=np.int64)
                hasher.update(len(indices).to_bytes(8, "little"))
                hasher.update(indices.astype("<i8", copy=False))
        return hasher.hexdigest()[:16]


def split(scheme: Scheme, dataset: Dataset, task: Task | None = None) -> Folds:
    """All folds of `dataset` under the `cv` group's scheme for the job's `task` (the data's
    own task if not given); a split that cannot be made is a user error, found before any
    training. The scheme is any splitter with `split(X, y, groups)`: scikit-learn's own (a
    `_target_` and its arguments) or ours, which take the task to stratify on classes."""
    task = task or tasks.of(dataset.task)
    name = scheme.name
    splitter = _splitter(scheme, task)
    if isinstance(splitter, Resample) and task.supervised:
        raise PipelineError(
            f"cv={name} is for clustering models; use cv=kfold (or another scheme) here")
    if not isinstance(splitter, Resample) and not task.supervised:
        raise PipelineError(f"cv={name} does not fit a clustering model: use cv=resample")
    if _stratifies(splitter) and not task.has_classes:
        raise PipelineError(
            f"cv={name} ({type(splitter).__name__}) stratifies on classes, and {dataset.name} "
            f"has a {task} target; use a splitter that does not stratify (e.g. KFold)")
    if isinstance(splitter, ms.StratifiedKFold | ms.RepeatedStratifiedKFold):
        _check_class_sizes(scheme, dataset, _per_repeat(splitter))
    _check_fold_count(name, splitter, dataset)
    try:
        folds = [Fold(*parts) for parts in splitter.split(dataset.X, dataset.y, dataset.groups)]
    except ValueError as error:
        message = " ".join(str(error).split())
        raise PipelineError(
            f"cv={name} cannot split {dataset.name} ({len(dataset.X)} rows): {message}"
        ) from error
    if not folds:
        raise PipelineError(f"cv={name} made no folds of {dataset.name}")
    notes = _check_parts(name, dataset, folds) if task.has_classes else ()
    for line in notes:
        log.warning(line)
    repeats = splitter.n_repeats if isinstance(splitter, REPEATED) else 1
    return Folds(folds, notes, repeats)


# scikit-learn's splitters that run `n_repeats` rounds of k folds, each round shuffled anew.
REPEATED = (ms.RepeatedKFold, ms.RepeatedStratifiedKFold)


def _per_repeat(splitter: Any) -> int:
    """The folds of one round: `n_splits` (a repeated splitter's count covers its rounds)."""
    if isinstance(splitter, REPEATED):
        return splitter.get_n_splits() // splitter.n_repeats
    return splitter.n_splits


def _splitter(scheme: Scheme, task: Task) -> Any:
    """The `cv` group's splitter; `task` goes to a target that takes one (our schemes)."""
    import inspect

    from pipeline.spec import locate

    try:
        takes_task = "task" in inspect.signature(locate(scheme.splitter.target)).parameters
    except (ImportError, ValueError, TypeError, AttributeError):
        takes_task = False  # building it says what is wrong
    return scheme.splitter.build(**({"task": task} if takes_task else {}))


def _check_fold_count(name: str, splitter: Any, dataset: Dataset) -> None:
    """Refuse, before splitting, a scheme that would make more than MAX_FOLDS folds (a fold per
    row, on a big table): it would run for hours, where 10-fold CV estimates the same."""
    count = getattr(splitter, "get_n_splits", None)
    try:
        n_folds = count(dataset.X, dataset.y, dataset.groups) if count else None
    except (TypeError, ValueError):
        n_folds = None  # splitting says what is wrong
    if n_folds is None or n_folds <= MAX_FOLDS:
        return
    per_row = isinstance(splitter, ms.LeaveOneOut | ms.LeavePOut)
    what = "a fold per row" if per_row else f"{n_folds} folds"
    raise PipelineError(
        f"cv={name} on {dataset.name}'s {len(dataset.X)} rows would run {n_folds} folds ({what}, "
        f"each a fit and an MLflow run: at least {_duration(n_folds)} at a second a fold); at most "
        f"{MAX_FOLDS} are run. Use cv=kfold cv.n_splits=10, or cv=repeated_holdout "
        "cv.n_repeats=20 for many estimates"
        + (f"; leave-one-out is for tables of up to {MAX_FOLDS} rows" if per_row else ""))


def check_cost(model: Any, dataset: Dataset, folds: Folds, model_name: str) -> None:
    """Refuse (or warn about) a model whose cost grows with the square of the rows on folds
    where the estimate (QUADRATIC_COST) runs to hours; the warning joins the folds' notes."""
    per_cell = QUADRATIC_COST.get(type(model).__name__)
    if per_cell is None or not folds:
        return
    n_features = max(dataset.X.shape[1], 1)
    if (type(model).__name__.startswith("KNeighbors") and n_features <= NEIGHBOUR_TREE_FEATURES
            and getattr(model, "algorithm", "auto") != "brute"):
        return
    estimate = sum(per_cell * len(fold.train) ** 2 * n_features for fold in folds)
    if estimate <= QUADRATIC_WARN_S:
        return
    rows = max(len(fold.train) for fold in folds)
    what = (f"model={model_name} ({type(model).__name__}) on training parts of up to {rows} "
            f"rows: its cost grows with the square of the rows, an estimated "
            f"{_duration(estimate)} for the {len(folds)} folds")
    advice = ("use a model that scales with the rows (model=logistic, model=mlp, "
              "model=random_forest), or fewer rows (a sample of the table)")
    if estimate > QUADRATIC_REFUSE_S:
        raise PipelineError(f"{what}; {advice}")
    line = f"warning: {what}; to go faster, {advice}"
    log.warning(line)
    folds.notes = (*folds.notes, line)


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.0f} hours" if seconds >= 7200 else f"{seconds / 60:.0f} minutes"


def _check_parts(name: str, dataset: Dataset, folds: list[Fold]) -> tuple[str, ...]:
    """Refuse a fold whose training part holds a single class: no classifier can be fitted to
    it and any score would be a constant's. Warn of parts that lack a class: a model that never
    saw a class cannot predict it, and roc_auc is undefined on a part without every class.
    Counted per class with `bincount`, so a plan of many folds (leave-one-out) costs little."""
    codes, classes = pd.factorize(dataset.y)
    n_classes = len(classes)
    total = np.bincount(codes, minlength=n_classes)
    lacking: dict[str, list[int]] = {"training": [], "validation": [], "test": []}
    one_class = []
    for i, fold in enumerate(folds, 1):
        held = {"test": np.bincount(codes[fold.test], minlength=n_classes)}
        if fold.val is not None:
            held["validation"] = np.bincount(codes[fold.val], minlength=n_classes)
        if len(fold.train) + sum(len(part) for part in fold[1:] if part is not None) == len(codes):
            train = total - sum(held.values())  # the parts are disjoint and cover every row
        else:
            train = np.bincount(codes[fold.train], minlength=n_classes)
        if np.count_nonzero(train) < 2:
            one_class.append((i, train))
        for part, counts in {"training": train, **held}.items():
            if np.count_nonzero(counts) < n_classes:
                lacking[part].append(i)
    if one_class:
        i, train = one_class[0]
        label = classes[np.argmax(train)]
        raise PipelineError(
            f"cv={name}: the training part of fold {i} holds a single class ('{label}', "
            f"{train.max()} rows){_also(one_class[1:])}; no classifier can learn from it: "
            f"{_one_class_fix(name)}"
        )
    why = {"training": "a model there never sees the missing class(es), cannot predict them, "
                       "and roc_auc is undefined (NaN)",
           "validation": "val_roc_auc is undefined (NaN) there",
           "test": "test_roc_auc is undefined (NaN) there and left out of its mean"}
    return tuple(f"warning: cv={name}: the {part} part of {_which(numbers, len(folds))} "
                 f"lacks one or more of the {n_classes} classes; {why[part]}"
                 for part, numbers in lacking.items() if numbers)


def _also(more: list[tuple[int, np.ndarray]]) -> str:
    return f" (and of fold(s) {', '.join(str(i) for i, _ in more[:10])})" if more else ""


def _one_class_fix(scheme: str) -> str:
    if scheme == "timeseries":
        return ("the first rows, in file order, hold one class (is the file sorted by the "
                "target?); order the rows by time, or use cv=kfold if their order is not time")
    if scheme == "group_kfold":
        return ("the groups left to train on hold one class; choose data.groups so that "
                "classes mix within groups, or use cv=kfold")
    return "use cv=kfold (stratified on the target), or add rows of the other classes"


def _which(numbers: list[int], n_folds: int) -> str:
    if len(numbers) == n_folds:
        return f"every fold ({n_folds})"
    listed = ", ".join(map(str, numbers[:10])) + (", …" if len(numbers) > 10 else "")
    return f"{len(numbers)} of {n_folds} folds ({listed})"


def _stratifies(splitter: Any) -> bool:
    """Whether `splitter` is one of scikit-learn's splitters that stratify on the target."""
    return type(splitter).__name__.startswith(("Stratified", "RepeatedStratified")) and (
        type(splitter).__module__.startswith("sklearn."))


def _check_class_sizes(scheme: Scheme, dataset: Dataset, n_splits: int) -> None:
    """scikit-learn only warns when a class has fewer rows than folds (some test folds then
    lack it); here it is a mistake, named with its fix."""
    counts = dataset.y.value_counts()
    small = counts[counts < n_splits]
    if small.empty:
        return
    listed = ", ".join(f"'{label}' ({count} row{'s' * (count > 1)})"
                       for label, count in small.head(10).items())
    if len(small) > 10:
        listed += f" and {len(small) - 10} more"
    fewest = int(small.min())
    fix = (f"use cv.n_splits={fewest} or fewer, " if fewest >= 2 else "") + (
        "merge or drop the rare class(es)"
        + (", or set cv.stratify=false" if "stratify" in scheme.splitter.arguments else ""))
    raise PipelineError(
        f"cv={scheme.name} cv.n_splits={n_splits}: class(es) {listed} of {dataset.name} have fewer "
        f"rows than folds; {fix}"
    )
