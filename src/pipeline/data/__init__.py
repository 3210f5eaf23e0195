"""Data sets: scikit-learn's bundled ones, generated ones, and any CSV or Parquet file, each a
`Dataset`. `loaders` reads them, `honesty` refuses what would make every score meaningless,
`dataset` holds the type. The config's `_target_`s name the loaders here (`pipeline.data.table`).
"""

from __future__ import annotations

from pipeline.data.dataset import MAX_INTEGER_CLASSES, Dataset
from pipeline.data.honesty import MIN_ROWS_FOR_IDENTIFIERS
from pipeline.data.loaders import (
    BUNDLED,
    DTYPES,
    FLOAT32_MAX_STEP,
    as_categories,
    bundled,
    read_parquet,
    synthetic,
    table,
)
from pipeline.spec import Component

__all__ = [
    "BUNDLED", "DTYPES", "FLOAT32_MAX_STEP", "MAX_INTEGER_CLASSES", "MIN_ROWS_FOR_IDENTIFIERS",
    "Dataset", "as_categories", "bundled", "load", "read_parquet", "synthetic", "table",
]


def load(spec: Component) -> Dataset:
    """Build the data set that the `data` group's component describes."""
    return spec.build()
