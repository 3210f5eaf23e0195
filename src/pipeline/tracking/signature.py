"""The input schema of a logged model's signature: the columns a model fit on a table takes,
with their MLflow types, read from the table's dtypes."""

from __future__ import annotations

from typing import Any

import pandas as pd

# What the values of a column of categories are (pandas' `infer_dtype`), as an MLflow type.
CATEGORY_KINDS = {"boolean": "boolean", "integer": "double", "floating": "double",
                  "mixed-integer-float": "double", "decimal": "double"}


def input_schema(X: pd.DataFrame) -> Any:
    """The MLflow schema of the columns a model fit on `X` takes, from all of `X`'s rows.

    Read from the dtypes (and, for a column of categories, pandas' compiled `infer_dtype`):
    next to nothing on a big table, where `mlflow.models.infer_signature` takes seconds to
    read every value in Python, and sampling rows would miss what comes late. Every column is
    required (the model cannot do without one) and may hold blanks (the model imputes them).
    A column of whole numbers with no blank in any training row is `long`, so that the
    training frame itself (int64) passes MLflow's checks; any other numeric column is `double`
    (MLflow refuses to cast int64 to double, and a blank makes pandas read integers as floats).
    `pipeline.predict` takes blanks in a `long` column too; a served model refuses them, as
    MLflow does for integer columns. Text columns (categories) are `string`, or `boolean` /
    `double` where every value is one.
    """
    from mlflow.types import ColSpec, Schema

    specs = []
    for name, column in X.items():
        if pd.api.types.is_bool_dtype(column):
            kind = "boolean"
        elif pd.api.types.is_integer_dtype(column) and not column.isna().any():
            kind = "long"
        elif pd.api.types.is_numeric_dtype(column):
            kind = "double"
        else:
            kind = CATEGORY_KINDS.get(pd.api.types.infer_dtype(column, skipna=True), "string")
        specs.append(ColSpec(kind, str(name)))
    return Schema(specs)
