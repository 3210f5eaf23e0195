"""What a logged model takes: its signature's input schema (the columns, with their MLflow
types, read from the training table's dtypes), the categories its encoder saw in training,
and the guard that holds a served model's text columns to the signature."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

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


class Categories(NamedTuple):
    """The categories one input column held in training, and whether the encoder grouped rare
    ones (`min_frequency`, `max_categories`): a category it never saw is then encoded as that
    group, else as no category at all (every one-hot column 0)."""

    seen: tuple[Any, ...]
    grouped: bool


def training_categories(model: Any) -> dict[str, Categories]:
    """The categories of every one-hot encoded input column of a fitted pipeline (as
    `preprocessing.build` makes it: a ColumnTransformer, maybe inside a Pipeline, whose
    categorical part ends in a OneHotEncoder), by column name; {} for a model without one."""
    found: dict[str, Categories] = {}
    _collect(model, None, found)
    return found


def _collect(node: Any, columns: list[str] | None, found: dict[str, Categories]) -> None:
    """Walks `node`, fed the input columns `columns` (None: its own `feature_names_in_`)."""
    if isinstance(node, Pipeline):
        # The steps before an encoder (an imputer) keep the columns one for one; the steps
        # after a ColumnTransformer hold no encoder of input columns.
        for _, step in node.steps:
            _collect(step, columns, found)
    elif isinstance(node, ColumnTransformer) and hasattr(node, "transformers_"):
        names = np.asarray(getattr(node, "feature_names_in_", columns or []), dtype=object)
        for _, part, selected in node.transformers_:
            if isinstance(part, str):  # "drop", "passthrough"
                continue
            by_name = isinstance(selected, list) and all(isinstance(c, str) for c in selected)
            picked = selected if by_name else names[selected].tolist()  # indices, a mask
            _collect(part, [str(c) for c in picked], found)
    elif isinstance(node, OneHotEncoder) and hasattr(node, "categories_"):
        names = columns if columns is not None else [
            str(c) for c in getattr(node, "feature_names_in_", [])]
        infrequent = getattr(node, "infrequent_categories_", [None] * len(node.categories_))
        for name, seen, rare in zip(names, node.categories_, infrequent, strict=True):
            found[name] = Categories(tuple(seen.tolist()), rare is not None)


def unseen(values: pd.Series, categories: Categories) -> pd.Series:
    """Which of `values` (blanks aside: they are imputed) the encoder never saw in training."""
    seen = set(categories.seen)
    return values.notna() & ~values.map(lambda v: v in seen).astype(bool)


class TextColumns(TransformerMixin, BaseEstimator):
    """The first step of a logged model: a number or true/false in a column the signature
    declares text is refused, naming the column, the row and the value. MLflow refuses a
    column of numbers there (int64, float64), but lets a JSON request's `{"code": 1234}`
    through as an object column, where the encoder would take 1234 for a category never
    seen (a code such as `01234` that lost its leading zero on the way). Text passes
    unchanged; so does anything outside a DataFrame."""

    def __init__(self, columns: tuple[str, ...] = ()) -> None:
        self.columns = columns

    def fit(self, X: Any, y: Any = None) -> TextColumns:
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True  # nothing to learn

    def transform(self, X: Any) -> Any:
        if not isinstance(X, pd.DataFrame):
            return X
        for name in self.columns:
            if name not in X.columns or X[name].dtype != object or pd.api.types.infer_dtype(
                    X[name], skipna=True) in ("string", "empty"):
                continue  # (another dtype went through MLflow's own check; text is text)
            wrong = X[name].map(lambda v: isinstance(v, bool | int | float | np.number)
                                and not pd.isna(v)).to_numpy(dtype=bool)
            if wrong.any():
                from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException

                row = int(wrong.argmax())
                value = X[name].iloc[row]
                raise MlflowException(
                    f"column {name!r} takes text, but row {row + 1} holds {value!r}, not text "
                    f"({int(wrong.sum())} of {len(X)} row(s)); send "
                    "these values as strings (quoted in JSON), as the model was trained on "
                    "them: a code written as a number has lost any leading zeros",
                    error_code=INVALID_PARAMETER_VALUE)
        return X


def guarded(model: Pipeline, schema: Any) -> Pipeline:
    """`model` (fitted) behind a `TextColumns` step for the schema's text columns: the model
    that is logged for serving."""
    text = tuple(spec.name for spec in schema.inputs if getattr(spec.type, "name", "") == "string")
    if not text:
        return model
    return Pipeline([("signature", TextColumns(text)), *model.steps])
