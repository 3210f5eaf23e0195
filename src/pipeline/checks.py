"""Everything that can be checked against the data and the planned folds, before any MLflow run
exists: arguments that only the data makes impossible, the Lightning Trainer settings, the seed,
and the names that become directories and MLflow filters. Each mistake is one line that names
the key, its limit and the fix."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
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
                  sweep: Sweep | None) -> None:
    """The checks that need the built pipeline, the data and the planned folds; called once
    the folds are planned and before the tracking store is touched. The job's parts name
    the keys in the messages: its `preprocess` component, its cv `scheme`, its `model`, the
    `experiment` it records to and the `sweep` it belongs to."""
    from pipeline.cv import check_cost

    _preprocessing_arguments(preprocess, estimator[0])
    _sizes(scheme, preprocess, estimator, dataset, folds)
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


def _sizes(scheme: str, component: Component, estimator: Pipeline, dataset: Dataset,
           folds: list[Fold]) -> None:
    """Counts in the reducer's and the model's arguments against the rows of the smallest
    training part and the columns the preprocessing makes of them."""
    from sklearn.pipeline import Pipeline

    rows = min(len(fold.train) for fold in folds)
    where = (f"the {rows} rows of the smallest training part "
             f"({len(folds)} fold(s) of cv={scheme})")
    preprocess, model = estimator[0], estimator[-1]
    if isinstance(preprocess, Pipeline) and "reduce" in preprocess.named_steps:
        _components(preprocess.named_steps["reduce"], rows, where, dataset,
                    component.get("max_categories"))
    arguments = model.get_params(deep=False)
    for name in ROW_COUNTS:
        value = arguments.get(name)
        if is_int(value) and value > rows:
            raise PipelineError(f"model.{name}={value} is more than {where}; use "
                                f"model.{name}={rows} or fewer, or a cv with larger training "
                                "parts")


def _components(reducer: Any, rows: int, where: str, dataset: Dataset,
                max_categories: int | None) -> None:
    """PCA keeps at most min(rows, columns) components, LDA at most the columns (and classes
    - 1, checked where the preprocessing is built)."""
    from sklearn.decomposition import PCA

    kept = reducer.n_components
    if not is_int(kept):
        return  # a share of variance, or all there are
    columns, exact = _encoded_columns(dataset, max_categories)
    counted = f"{'' if exact else 'at most '}{columns} columns after encoding"
    if isinstance(reducer, PCA) and kept > min(rows, columns):
        most = min(rows, columns)
        raise PipelineError(
            f"preprocess.n_components={kept} is more than PCA can keep: min(rows, columns) "
            f"= {most} for {where} with {counted}; use preprocess.n_components={most} or "
            "fewer, or a share of variance such as 0.95")
    if not isinstance(reducer, PCA) and kept > columns:
        raise PipelineError(
            f"preprocess.n_components={kept} is more than LDA can keep from {counted}; use "
            f"preprocess.n_components={columns} or fewer")


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
