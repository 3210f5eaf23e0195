"""Per-fold preprocessing: impute and scale numbers, impute and one-hot encode categories."""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

from pipeline.data import Dataset
from pipeline.errors import PipelineError

SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "none": None}


def build(
    dataset: Dataset,
    scale: str = "standard",
    numeric_impute: str = "median",
    categorical_impute: str = "most_frequent",
    min_frequency: int | float | None = 0.01,
    max_categories: int | None = 50,
) -> ColumnTransformer:
    """An unfitted transformer for `dataset`'s columns; the runner fits a clone per fold."""
    if scale not in SCALERS:
        raise PipelineError(f"preprocess.scale={scale!r} is not one of {', '.join(SCALERS)}")
    categorical = [c for c in dataset.X.columns if c in dataset.categorical]
    numeric = [c for c in dataset.X.columns if c not in dataset.categorical]
    numeric_steps = [("impute", SimpleImputer(strategy=numeric_impute))]
    if SCALERS[scale] is not None:
        numeric_steps.append(("scale", SCALERS[scale]()))
    categorical_steps = [
        ("impute", SimpleImputer(strategy=categorical_impute)),
        ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", sparse_output=False,
                                 min_frequency=min_frequency, max_categories=max_categories)),
    ]
    return ColumnTransformer(
        [("numeric", Pipeline(numeric_steps), numeric),
         ("categorical", Pipeline(categorical_steps), categorical)],
        verbose_feature_names_out=False,
    )
