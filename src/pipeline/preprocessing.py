"""Per-fold preprocessing: impute and scale numbers, impute and one-hot encode categories."""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

from pipeline.data import Dataset
from pipeline.errors import PipelineError

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
) -> ColumnTransformer:
    """An unfitted transformer for `dataset`'s columns; the runner fits a clone per fold.

    Categorical columns that would only make noise or exhaust memory (an identifier, more
    one-hot columns than fit in memory) are refused here, before any training.
    """
    if scale not in SCALERS:
        raise PipelineError(f"preprocess.scale={scale!r} is not one of {', '.join(SCALERS)}")
    categorical = [c for c in dataset.X.columns if c in dataset.categorical]
    numeric = [c for c in dataset.X.columns if c not in dataset.categorical]
    _check_categories(dataset, categorical, max_categories)
    # A column missing in every row of a fold's training part is kept (as zeros), so that no
    # fold loses it and a fold whose only text column is blank still has a design matrix.
    numeric_steps = [("impute", SimpleImputer(strategy=numeric_impute, keep_empty_features=True))]
    if SCALERS[scale] is not None:
        numeric_steps.append(("scale", SCALERS[scale]()))
    categorical_steps = [
        ("impute", SimpleImputer(strategy=categorical_impute, keep_empty_features=True)),
        ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", sparse_output=False,
                                 min_frequency=min_frequency, max_categories=max_categories)),
    ]
    return ColumnTransformer(
        [("numeric", Pipeline(numeric_steps), numeric),
         ("categorical", Pipeline(categorical_steps), categorical)],
        verbose_feature_names_out=False,
    )


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
