"""Per-fold preprocessing: impute and scale numbers, impute and one-hot encode categories."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import sklearn.preprocessing
from scipy.sparse import issparse
from sklearn import impute
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder
from sklearn.utils.validation import FLOAT_DTYPES, check_array, check_is_fitted, validate_data

from pipeline import tasks
from pipeline.compat.sklearn import InvalidParameterError, parameter_error, standard_scale
from pipeline.data import Dataset
from pipeline.errors import PipelineError
from pipeline.tasks import Task


class StandardScaler(sklearn.preprocessing.StandardScaler):
    """scikit-learn's StandardScaler (its name in messages too), whose `fit` on a dense table
    with no missing value computes the same mean_, var_ and scale_, bit for bit, a chunk of
    rows at a time: scikit-learn's makes two float64 copies of the whole table (its centred
    values and their squares), 640 MB for 800,000 rows x 50 float32 columns, and took 3 s of
    a 1M-row fold on a busy machine (the chunks: a tenth of it)."""

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> StandardScaler:
        if sample_weight is not None or not (self.with_mean and self.with_std) or issparse(X):
            return super().fit(X, y, sample_weight)
        if (error := parameter_error(self)) is not None:
            raise InvalidParameterError(error)
        # A new fit: every learned attribute is set below or by scikit-learn's own `fit`.
        checked = validate_data(self, X, dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan")
        if not _chunks_add_up_in_order(checked) or np.isnan(checked).any():
            return super().fit(X, y)  # scikit-learn's, on the same rows
        self.mean_, self.var_ = _mean_and_variance(checked)
        self.n_samples_seen_ = np.float64(len(checked))  # as scikit-learn 1.9 counts them
        self.scale_ = standard_scale(self.var_, self.mean_, self.n_samples_seen_)
        return self


# Rows are summed this many bytes of float64 at a time (the chunk stays in the cache).
CHUNK_BYTES = 1 << 21


def _chunks_add_up_in_order(X: np.ndarray) -> bool:
    """Whether numpy sums `X` along axis 0 one row after another, as `_mean_and_variance`
    does: a C-ordered float32 or float64 table of at least two columns (a single column is
    summed pairwise), of fewer than 2**24 rows (which float32 counts exactly)."""
    return (X.ndim == 2 and 0 < X.shape[0] < 1 << 24 and X.shape[1] > 1
            and X.flags.c_contiguous and X.dtype in (np.float32, np.float64))


def _mean_and_variance(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and (population) variance, in float64, equal bit for bit to
    scikit-learn's `_incremental_mean_and_var` in a first fit of `X` (see
    `_chunks_add_up_in_order`): its sums along axis 0 add the rows in order, and so do these,
    each chunk's sum started from the running total (the chunk's first row)."""
    n, width = X.shape
    mean = np.sum(X, axis=0, dtype=np.float64) / n  # no temporary: as scikit-learn's
    rows = max(1, CHUNK_BYTES // (8 * width))
    centred, squared = np.empty((rows + 1, width)), np.empty((rows + 1, width))
    correction, squares = np.zeros(width), np.zeros(width)
    for start in range(0, n, rows):
        chunk = X[start:start + rows]
        end = len(chunk) + 1
        centred[0], squared[0] = correction, squares
        np.subtract(chunk, mean, out=centred[1:end])
        np.square(centred[1:end], out=squared[1:end])
        correction, squares = centred[:end].sum(axis=0), squared[:end].sum(axis=0)
    return mean, (squares - correction**2 / n) / n


SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "none": None}
# A text column with a distinct value in every row and more values than this is an identifier.
MAX_IDENTIFIER_VALUES = 50
# The one-hot part of the design matrix (float64, dense) may take at most this much memory.
MAX_ONE_HOT_BYTES = 2**30


def build(
    dataset: Dataset,
    scale: str = "standard",
    numeric_impute: str = "median",
    categorical_impute: str = "most_frequent",
    min_frequency: int | float | None = 0.01,
    max_categories: int | None = 50,
    reduce: str = "none",
    n_components: int | float | None = None,
    *,
    task: Task | None = None,
) -> ColumnTransformer | Pipeline:
    """An unfitted transformer for `dataset`'s columns; the runner fits a clone per fold.

    Categorical columns that would only make noise or exhaust memory (an identifier, more
    one-hot columns than fit in memory) are refused here, before any training. With `reduce`,
    the columns' transformer is followed by PCA or LDA: `Pipeline([columns, reduce])`.
    `task` is the job's (the data's own if not given).
    """
    reducer = _reducer(reduce, n_components, dataset, task or tasks.of(dataset.task))
    if scale not in SCALERS:
        raise PipelineError(f"preprocess.scale={scale!r} is not one of {', '.join(SCALERS)}")
    categorical = [c for c in dataset.X.columns if c in dataset.categorical]
    numeric = [c for c in dataset.X.columns if c not in dataset.categorical]
    _check_categories(dataset, categorical, max_categories)
    # A column missing in every row of a fold's training part is kept (as zeros), so that no
    # fold loses it and a fold whose only text column is blank still has a design matrix.
    numeric_steps = [("impute", SimpleImputer(strategy=numeric_impute, keep_empty_features=True))]
    if SCALERS[scale] is not None:
        # In place: the imputer before it always hands over a fresh array (a 1M-row fold's
        # training part is 160 MB of float32 per copy).
        numeric_steps.append(("scale", SCALERS[scale](copy=False)))
    categorical_steps = [
        ("impute", SimpleImputer(strategy=categorical_impute, keep_empty_features=True)),
        ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", sparse_output=False,
                                 min_frequency=min_frequency, max_categories=max_categories)),
    ]
    columns = ColumnTransformer(
        [("numeric", Pipeline(numeric_steps), numeric),
         ("categorical", Pipeline(categorical_steps), categorical)],
        verbose_feature_names_out=False,
    )
    return columns if reducer is None else Pipeline([("columns", columns), ("reduce", reducer)])


class SimpleImputer(impute.SimpleImputer):
    """scikit-learn's SimpleImputer (its name in messages too), with the same statistics and
    output, faster on large float columns: its median of numeric columns is numpy's (where
    scikit-learn's masked-array median took 35 s of a 1M-row job's 45 s fold on 800,000 rows x
    50 columns), and `transform` of rows with nothing missing is the copy it makes of them (no
    mask, no search for missing cells). Only public methods are overridden: the medians are
    handed to scikit-learn's own `fit` as a one-row table (a value is its own median), so that
    every fitted attribute is scikit-learn's."""

    def fit(self, X: Any, y: Any = None) -> SimpleImputer:
        if (self.strategy != "median" or not _is_nan(self.missing_values) or self.add_indicator
                or issparse(X)):
            return super().fit(X, y)
        try:
            checked = check_array(X, dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan",
                                  ensure_min_samples=1)
        except ValueError:
            return super().fit(X, y)  # scikit-learn's own message
        if checked.dtype.kind != "f" or checked.ndim != 2:
            return super().fit(X, y)
        missing = np.isnan(checked)
        if missing.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a column missing in every row
                median = np.array([np.nanmedian(checked[:, j]) for j in range(checked.shape[1])],
                                  dtype=checked.dtype)
        else:
            median = np.array([_median(checked[:, j]) for j in range(checked.shape[1])],
                              dtype=checked.dtype)
        medians = median[None, :]
        if isinstance(X, pd.DataFrame):  # the same feature names
            medians = pd.DataFrame(medians, columns=X.columns)
        return super().fit(medians, y)

    def transform(self, X: Any) -> Any:
        if self.add_indicator or not _is_nan(self.missing_values) or issparse(X):
            return super().transform(X)
        check_is_fitted(self)
        if self.statistics_.dtype.kind != "f":
            return super().transform(X)
        # Checked and copied as scikit-learn's `transform` does (its dtype rule for a numeric
        # fit: floats for mean and median, the input's own otherwise).
        dtype = FLOAT_DTYPES if self.strategy in ("mean", "median") else None
        checked = validate_data(self, X, reset=False, accept_sparse="csc", dtype=dtype,
                                force_writeable=True, ensure_all_finite="allow-nan",
                                copy=self.copy)
        if (checked.dtype.kind != "f" or checked.shape[1] != len(self.statistics_)
                or np.isnan(checked).any()
                or not (self.keep_empty_features
                        or not np.isnan(self.statistics_.astype(float)).any())):
            return super().transform(X)  # something to impute (or refuse): scikit-learn's
        return checked


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and np.isnan(value)


def _median(column: np.ndarray) -> Any:
    """`np.median` of a column without missing values, by one partition of a copy (numpy's
    partitions twice for an even count: 2.5x slower on 800,000 rows); the same value."""
    n = len(column)
    if n == 0:
        return np.nan
    middle = n // 2
    part = column.copy()
    part.partition(middle)
    if n % 2:
        return part[middle]
    # The mean of the two middle values, computed as np.median computes it.
    return np.mean(np.array([part[:middle].max(), part[middle]], dtype=column.dtype))


REDUCERS = ("none", "pca", "lda")


def _reducer(reduce: str, n_components: int | float | None, dataset: Dataset,
             task: Task) -> Any:
    """The dimensionality reduction after scaling: PCA (a count, or a share of variance to
    keep) or LDA (supervised: fitted on each fold's training labels only)."""
    if reduce not in REDUCERS:
        raise PipelineError(f"preprocess.reduce={reduce!r} is not one of {', '.join(REDUCERS)}")
    if reduce == "none":
        return None
    if reduce == "pca":
        from sklearn.decomposition import PCA

        fraction = isinstance(n_components, float) and 0 < n_components < 1
        if not (n_components is None or fraction
                or (isinstance(n_components, int) and n_components >= 1)):
            raise PipelineError(
                "preprocess.n_components must be a count (>= 1), a share of variance to keep "
                f"(between 0 and 1) or null, got {n_components}")
        # A share of variance needs the exact decomposition.
        return PCA(n_components=n_components, svd_solver="full" if fraction else "auto",
                   random_state=0)
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    if not task.has_classes:
        raise PipelineError(
            f"preprocess.reduce=lda separates classes, and this job's task is {task}; "
            "use preprocess.reduce=pca")
    most = len(dataset.classes) - 1
    if n_components is not None and not (isinstance(n_components, int)
                                         and 1 <= n_components <= most):
        raise PipelineError(
            f"preprocess.n_components={n_components}: LDA keeps at most classes - 1 = {most} "
            f"components for {dataset.name}'s {len(dataset.classes)} classes")
    return LinearDiscriminantAnalysis(n_components=n_components)


def reduction_scores(preprocess: Any, X: pd.DataFrame
                     ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """What a fold's reduction kept: (scores, curves). Scores: components kept and, for PCA,
    the share of variance they explain and the reconstruction error (MSE, MAE) of `X`, the
    fold's test part, in the scaled space. Curves: PCA's explained variance ratio per
    component. Both empty when no reduction is configured."""
    if not isinstance(preprocess, Pipeline) or "reduce" not in preprocess.named_steps:
        return {}, {}
    columns = preprocess.named_steps["columns"].transform(X)
    reducer = preprocess.named_steps["reduce"]
    reduced = reducer.transform(columns)
    scores = {"n_components": float(reduced.shape[1])}
    if not hasattr(reducer, "components_") or not hasattr(reducer, "inverse_transform"):
        return scores, {}
    restored = reducer.inverse_transform(reduced)
    ratios = [float(r) for r in reducer.explained_variance_ratio_]
    scores["explained_variance"] = float(sum(ratios))
    scores["test_reconstruction_mse"] = float(np.mean((columns - restored) ** 2))
    scores["test_reconstruction_mae"] = float(np.mean(np.abs(columns - restored)))
    return scores, {"explained_variance_ratio": ratios}


def _check_categories(dataset: Dataset, columns: list[str], max_categories: int | None) -> None:
    rows = len(dataset.X)
    width = 0
    for column in columns:
        values = dataset.X[column]
        distinct = values.nunique(dropna=True)
        if distinct > MAX_IDENTIFIER_VALUES and distinct == values.notna().sum():
            raise PipelineError(
                f"column {column!r} of {dataset.name} has a different value in each of its "
                f"{distinct} rows: an identifier or free text, not a category; leave it out by "
                "listing the other columns in data.features"
            )
        width += distinct if max_categories is None else min(distinct, max_categories)
    if rows * width * 8 > MAX_ONE_HOT_BYTES:
        raise PipelineError(
            f"one-hot encoding {dataset.name}'s categorical columns would make {width} columns "
            f"for {rows} rows ({rows * width * 8 / 2**30:.1f} GiB); group rare categories with "
            "preprocess.max_categories=50 (or a higher preprocess.min_frequency), or leave "
            "columns out with data.features"
        )
