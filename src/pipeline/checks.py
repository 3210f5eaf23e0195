"""Everything that can be checked against the data and the planned folds, before any MLflow run
exists: arguments that only the data makes impossible (a job's own, and every value its search
may propose), the Lightning Trainer settings, the seed, and the names that become directories
and MLflow filters. Each mistake is one line that names the key, its limit and the fix."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError
from pipeline.spec import is_int

if TYPE_CHECKING:  # `seed` is checked before scikit-learn and pandas are imported
    from sklearn.base import BaseEstimator
    from sklearn.pipeline import Pipeline

    from pipeline.cv import Fold
    from pipeline.data import Dataset
    from pipeline.spec import Component, Sweep

# numpy's range for a seed, and so scikit-learn's `random_state` and the splitters'.
MAX_SEED = 2**32 - 1
# The experiment's artifacts go to a directory of its name (NAME_MAX on Linux and macOS).
MAX_NAME_BYTES = 255
# Model arguments that count rows of the part a fold fits on: above that count the fold fails
# (n_neighbors when it predicts, n_clusters when it fits). Counts that scikit-learn caps or
# resamples are not refused: `max_features` above the columns means all of them,
# `max_samples` above the rows draws that many with replacement, `min_samples_split` above
# the rows leaves one leaf; nor is `batch_size`, whose batch is then the whole training part.
ROW_COUNTS = ("n_neighbors", "n_clusters")


def seed(value: Any) -> None:
    """`seed` is an integer numpy accepts. Checked before the data is loaded: the splits, the
    models and the generated data sets all read it, and would each word the mistake their way."""
    if not (is_int(value) and 0 <= value <= MAX_SEED):
        raise PipelineError(
            f"seed={value} is not an integer from 0 to {MAX_SEED} (it seeds the splits, the "
            "models and torch); use e.g. seed=42")


def against_folds(estimator: Pipeline, dataset: Dataset, folds: list[Fold],
                  preprocess: Component, scheme: str, model: str, experiment: str | None,
                  sweep: Sweep | None, searched: Collection[str] = ()) -> None:
    """The checks that need the built pipeline, the data and the planned folds; called once
    the folds are planned and before the tracking store is touched. The job's parts name
    the keys in the messages: its `preprocess` component, its cv `scheme`, its `model`, the
    `experiment` it records to and the `sweep` it belongs to. The counts of `searched` keys
    are not checked: a search sets them in every fit (`against_search` checks its values)."""
    from pipeline.cv import check_cost

    _preprocessing_arguments(preprocess, estimator[0])
    for excess in _sizes(preprocess, estimator, dataset, training_part(folds, scheme)):
        if excess.key not in searched:
            raise PipelineError(excess.plain())
    check_cost(estimator[-1], dataset, folds, model)  # a quadratic model at scale
    _trainer(estimator[-1])
    _names(experiment, sweep, dataset)


# -- arguments -------------------------------------------------------------------------------

def _preprocessing_arguments(component: Component, preprocess: Any) -> None:
    """scikit-learn's declared constraints of every preprocessing step (imputers, encoder,
    scaler, reducer), checked as `fit` would check them. The model's own are checked when it
    is built."""
    from pipeline.compat.sklearn import parameter_error

    for part in _parts(preprocess):
        if (error := parameter_error(part)) is not None:
            raise PipelineError(_preprocessing_message(component, part, error))


def _parts(estimator: Any) -> Iterator[BaseEstimator]:
    """`estimator` and every estimator nested in it (pipeline steps, column transformers)."""
    from sklearn.base import BaseEstimator

    if not isinstance(estimator, BaseEstimator):
        return
    yield estimator
    for value in estimator.get_params(deep=False).values():
        if isinstance(value, BaseEstimator):
            yield from _parts(value)
        elif isinstance(value, list):  # steps and transformers: (name, estimator, ...)
            for item in value:
                if isinstance(item, tuple) and len(item) >= 2:
                    yield from _parts(item[1])


def _preprocessing_message(component: Component, part: BaseEstimator, message: str) -> str:
    """scikit-learn's message, led by the `preprocess.*` key that set the argument when one
    key holds its value."""
    found = re.match(r"The '(\w+)' parameter of \w+ (.*)", message)
    if not found:
        return f"preprocess: {message}"
    parameter, rest = found.groups()
    value = part.get_params(deep=False)[parameter]
    keys = [key for key, setting in component.arguments.items()
            if setting == value and type(setting) is type(value)]
    if len(keys) == 1:
        return (f"preprocess.{keys[0]}={value} is refused by {type(part).__name__} "
                f"({parameter} {rest}); set preprocess.{keys[0]} to an accepted value")
    return f"preprocess: {type(part).__name__}'s {parameter} {rest}"


@dataclass(frozen=True)
class Part:
    """The smallest part a configuration is fitted on: its rows, how a message names them ("the
    5 rows of the smallest training part (...)"), and what makes such parts larger."""

    rows: int
    where: str
    larger: str


@dataclass(frozen=True)
class Excess:
    """A count in the arguments that a part cannot hold: the config key, its value, the most
    the part allows, why (worded after the value), and the fix beyond a smaller value."""

    key: str
    value: Any
    most: int
    reason: str
    remedy: str | None
    by_rows: bool  # more rows (a larger part) would hold it

    def plain(self) -> str:
        return (f"{self.key}={self.value} is {self.reason}; use {self.key}={self.most} or "
                f"fewer" + (f", or {self.remedy}" if self.remedy else ""))


def training_part(folds: list[Fold], scheme: str) -> Part:
    """The smallest training part of a job's planned folds."""
    rows = min(len(fold.train) for fold in folds)
    return Part(rows, f"the {rows} rows of the smallest training part ({len(folds)} fold(s) "
                      f"of cv={scheme})", "a cv with larger training parts")


def _sizes(component: Component, estimator: Pipeline, dataset: Dataset,
           part: Part) -> Iterator[Excess]:
    """Counts in the reducer's and the model's arguments against the rows of `part` and the
    columns the preprocessing makes of them: each count that cannot be, as an Excess."""
    from sklearn.pipeline import Pipeline

    preprocess, model = estimator[0], estimator[-1]
    if isinstance(preprocess, Pipeline) and "reduce" in preprocess.named_steps:
        yield from _components(preprocess.named_steps["reduce"], part, dataset,
                               component.get("max_categories"))
    arguments = model.get_params(deep=False)
    for name in ROW_COUNTS:
        value = arguments.get(name)
        if is_int(value) and value > part.rows:
            yield Excess(f"model.{name}", value, part.rows, f"more than {part.where}",
                         part.larger, by_rows=True)


def _components(reducer: Any, part: Part, dataset: Dataset,
                max_categories: int | None) -> Iterator[Excess]:
    """PCA keeps at most min(rows, columns) components, LDA at most the columns (and classes
    - 1, checked where the preprocessing is built)."""
    from sklearn.decomposition import PCA

    kept = reducer.n_components
    if not is_int(kept):
        return  # a share of variance, or all there are
    columns, exact = _encoded_columns(dataset, max_categories)
    counted = f"{'' if exact else 'at most '}{columns} columns after encoding"
    if isinstance(reducer, PCA) and kept > min(part.rows, columns):
        most = min(part.rows, columns)
        yield Excess("preprocess.n_components", kept, most,
                     f"more than PCA can keep: min(rows, columns) = {most} for {part.where} "
                     f"with {counted}", "a share of variance such as 0.95",
                     by_rows=part.rows < columns)
    if not isinstance(reducer, PCA) and kept > columns:
        yield Excess("preprocess.n_components", kept, columns,
                     f"more than LDA can keep from {counted}", None, by_rows=False)


def _encoded_columns(dataset: Dataset, max_categories: int | None) -> tuple[int, bool]:
    """(columns after imputing and one-hot encoding, whether that count is exact). Every
    numeric column is kept; a categorical column makes at most one column per value seen
    (at most max_categories), fewer in a training part that lacks some values."""
    categorical = [c for c in dataset.X.columns if c in dataset.categorical]
    width = len(dataset.X.columns) - len(categorical)
    for column in categorical:
        distinct = max(1, int(dataset.X[column].nunique(dropna=True)))
        width += min(distinct, max_categories) if is_int(max_categories) else distinct
    return width, not categorical


# -- a search's values ------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """A configuration a search may propose: the searched `key` at `value`, one of the bounds
    of its `span`, every other key as each trial sets it; its pipeline built as a trial builds
    it, and the preprocess component that pipeline was built from."""

    key: str
    value: Any
    span: str
    estimator: Pipeline
    preprocess: Component


def searched_values(space: Mapping[str, Any]) -> Iterator[tuple[str, Any, str]]:
    """The values to check of a search `space` (Optuna distributions by config key), each with
    the span it is drawn from: a range's high and low (the high first: a count too large for a
    part is the common mistake, and the line then names the extreme value), and every one of a
    categorical's choices (written as the preset writes them)."""
    for key, distribution in space.items():
        choices = getattr(distribution, "choices", None)
        if choices is not None:
            for choice in choices:
                yield key, choice, f"choices {', '.join(str(c) for c in choices)}"
        else:
            low, high = distribution.low, distribution.high
            for bound in dict.fromkeys((high, low)):
                yield key, bound, f"range {low}..{high}"


def search_mistake(key: str, value: Any, span: str, problem: str) -> PipelineError:
    """One line: a value the search may propose, where it comes from, and what is wrong."""
    return PipelineError(f"hparams_search: {key} may be {value} ({span}), {problem}")


def against_search(estimator: Pipeline, preprocess: Component,
                   candidates: Iterable[Candidate], dataset: Dataset, parts: list[Part]) -> None:
    """A search's job against every part it will fit on (the smallest of each kind): first the
    pipeline as every trial shares it (`estimator`, built from `preprocess`; the searched keys'
    own values are never fitted), then each configuration the search may propose, by the
    preprocessing's declared constraints and the counts of `_sizes`, as a job's own are
    checked. A searched value's line names the key, its span, the value, the part and the fix."""
    candidates = list(candidates)
    searched = {candidate.key for candidate in candidates}
    for part in parts:
        for excess in _sizes(preprocess, estimator, dataset, part):
            if excess.key not in searched:
                raise PipelineError(excess.plain())
    for candidate in candidates:
        key, value, span = candidate.key, candidate.value, candidate.span
        try:
            _preprocessing_arguments(candidate.preprocess, candidate.estimator[0])
        except PipelineError as error:
            raise search_mistake(key, value, span, f"which {error}") from None
        for part in parts:
            for excess in _sizes(candidate.preprocess, candidate.estimator, dataset, part):
                if excess.key in searched - {key}:
                    continue  # every trial sets that key too: its own values are checked
                if excess.key != key:  # the searched value brings another key's count in
                    raise search_mistake(key, value, span, f"and then {excess.plain()}")
                narrow = ("narrow the range to at most" if span.startswith("range")
                          else "keep only choices of at most")
                raise search_mistake(key, value, span, f"{excess.reason}; {narrow} {excess.most}"
                                     + (f", or use {part.larger}" if excess.by_rows else ""))


def nested_parts(outer: list[Fold], inner: list[list[Fold]], outer_scheme: str,
                 inner_scheme: str) -> list[Part]:
    """The parts a nested job fits its search's configurations on: the inner training parts
    (every trial) and the outer ones (the chosen configuration's refit), the smallest of each."""
    rows = min(len(fold.train) for folds in inner for fold in folds)
    counts = sorted({len(folds) for folds in inner})
    n_inner = "-".join(str(count) for count in dict.fromkeys((counts[0], counts[-1])))
    refit = min(len(fold.train) for fold in outer)
    return [
        Part(rows, f"the {rows} rows of the smallest inner training part ({n_inner} inner "
                   f"folds of cv={inner_scheme} within {len(outer)} outer folds)",
             "fewer inner folds (larger inner training parts) or more data"),
        Part(refit, f"the {refit} rows of the smallest outer training part, where the chosen "
                    f"configuration is refit ({len(outer)} folds of cv.outer={outer_scheme})",
             "a cv.outer with larger training parts"),
    ]


# -- the Lightning Trainer ---------------------------------------------------------------

def _trainer(model: Any) -> None:
    """A model that trains on a device builds its Lightning Trainer from the `trainer.*`
    settings as its `fit` will (the same arguments, through the same code)."""
    from pipeline.models import requires

    if "device" in requires(model):
        model.check_trainer()


# -- names -----------------------------------------------------------------------------------

def _names(given: str | None, sweep: Sweep | None, dataset: Dataset) -> None:
    """The experiment name becomes its artifacts' directory; a sweep's directory becomes an
    MLflow filter when the sweep's best job is looked up."""
    from pipeline.tracking import quoted

    name = given or dataset.name
    problem = _name_problem(name)
    if problem:
        source = "tracking.experiment" if given else f"the data set's name, {dataset.name!r}"
        shown = name if len(name) <= 60 else f"{name[:40]}...{name[-10:]}"
        raise PipelineError(f"experiment name {shown!r} ({source}) {problem}; set "
                            "tracking.experiment=<a short name on one line>")
    if sweep is not None:
        try:
            quoted(sweep.dir)
        except PipelineError as error:
            raise PipelineError(f"hydra.sweep.dir: {error}") from None


def _name_problem(name: str) -> str | None:
    directory = name.replace("/", "_")  # as tracking.Tracker names the artifacts' directory
    if any(unicodedata.category(character).startswith("C") for character in name):
        return "holds a control character (a line break or a tab)"
    if directory in (".", ".."):
        return "would name no directory of its own for its artifacts"
    size = len(directory.encode())
    if size > MAX_NAME_BYTES:
        return (f"is {size} bytes long, and as its artifacts' directory may be at most "
                f"{MAX_NAME_BYTES}")
    return None
