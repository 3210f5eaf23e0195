"""The data-honesty checks: a table is refused, with a line saying what to change, when it cannot
make a sound design matrix (repeated names, empty, infinite, constant or half-text columns) or
would make every score meaningless (the target again among the features, a row number or
identifier, a target with one class or that cannot be regressed)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.data.dataset import MAX_INTEGER_CLASSES, add_note
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pathlib import Path

# Row-number and identifier columns are looked for in tables of at least this many rows:
# in fewer, a column of distinct integers is as likely a coincidence.
MIN_ROWS_FOR_IDENTIFIERS = 20
# A column is first compared with the target (or tested for integers) on its first rows:
# most columns are told apart there, so a large table costs little more than a small one.
HEAD_ROWS = 1000
# Words of a column name that make a distinct integer in every row an identifier.
_IDENTIFIER_WORDS = frozenset({"id", "ids", "idx", "index", "row", "rowid", "rownum", "uid",
                               "uuid", "key", "unnamed"})
# The words of a column name: `customer_id`, `CustomerID` and `customerId` hold `id`.
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def check_column_names(frame: pd.DataFrame, file: Path) -> None:
    """pandas renames a repeated CSV header (`a`, `a.1`); a repeated name is a mistake to fix."""
    names = list(frame.columns)
    if file.suffix.lower() not in (".parquet", ".pq"):
        csv = file.suffix.lower() == ".csv"
        header = pd.read_csv(file, header=None, nrows=1, dtype=str, sep="," if csv else None,
                             engine="c" if csv else "python")
        names = [name for name in header.iloc[0].tolist() if isinstance(name, str)]
    seen = pd.Series(names).value_counts()
    repeated = seen[seen > 1]
    if not repeated.empty:
        listed = ", ".join(f"{name!r} ({count} times)" for name, count in repeated.items())
        raise PipelineError(
            f"{file.name} repeats column name(s) {listed}; rename them so that every column "
            "name is unique"
        )


def check_features(X: pd.DataFrame, categorical: list[str], file: Path) -> None:
    """Refuse feature columns that cannot become a finite design matrix (row numbers are
    1-based data rows of the file)."""
    if X.shape[1] == 0:
        raise PipelineError(
            f"{file.name} has no feature columns besides the target; add columns or check "
            "data.features"
        )
    empty = [c for c in X.columns if X[c].isna().all()]
    if empty:
        raise PipelineError(
            f"column(s) {', '.join(map(repr, empty))} of {file.name} hold no values at all; "
            f"fill them in or leave them out: {_features_without(X, empty)}"
        )
    for column in X.columns:
        values = X[column]
        if pd.api.types.is_float_dtype(values):
            infinite = np.isinf(values.to_numpy(dtype=float))
            if infinite.any():
                raise PipelineError(
                    f"column {column!r} of {file.name} holds infinite values ({infinite.sum()} "
                    f"row(s), first data row {values.index[infinite][0] + 1}); replace them with "
                    "numbers, or leave those cells blank to have them imputed"
                )
        elif column not in categorical and not pd.api.types.is_numeric_dtype(values):
            _check_not_mixed(values.dropna(), column, file)
    if all(X[c].nunique(dropna=True) <= 1 for c in X.columns):
        raise PipelineError(
            f"every feature column of {file.name} holds a single value "
            f"({listed_columns(X, most=10)}): there is nothing to learn from; check the file or "
            "data.features"
        )


def _check_not_mixed(values: pd.Series, column: str, file: Path) -> None:
    """A column of mostly numbers with a few text cells ('?', 'n/a', '3,5') is a numeric column
    with typos, which one-hot encoding would silently turn into hundreds of categories."""
    if values.empty or values.map(lambda v: isinstance(v, bool)).any():
        return
    numbers = pd.to_numeric(values.astype(str), errors="coerce")
    n_numbers = int(numbers.notna().sum())
    if n_numbers * 2 >= len(values) and n_numbers < len(values):
        text = values[numbers.isna()]
        raise PipelineError(
            f"column {column!r} of {file.name} mixes numbers and text ({len(text)} of "
            f"{len(values)} value(s) are not numbers, e.g. {text.iloc[0]!r} in data row "
            f"{text.index[0] + 1}); fix or blank those cells, or add it to data.categorical "
            "to treat every value as a category"
        )


def _features_without(X: pd.DataFrame, dropped: list[str]) -> str:
    """The `data.features` setting that leaves out `dropped` (spelled out for up to 20 columns)."""
    rest = [str(c) for c in X.columns if c not in dropped]
    return f"data.features=[{','.join(rest)}]" if len(rest) <= 20 else (
        "list the other columns in data.features")


def check_no_target_copy(X: pd.DataFrame, y: pd.Series, task: str, file: Path) -> None:
    """Refuse a feature that is the target again: an exact copy, or a one-to-one recoding of
    it ('yes'/'no' as 1/0, a label-encoded copy). Every score would measure the copy.

    Recodings are looked for where the target holds labels (classification, or few distinct
    values): a continuous target with a distinct value in every row is one-to-one with any
    feature of distinct values, which says nothing. There only an equal column is a copy.
    Near-copies (a few cells differ) are features, however telling.
    """
    # Many distinct values in the head: a continuous target, not worth hashing row by row.
    recodings = task == "classification" or (
        y.iloc[:HEAD_ROWS].nunique() <= MAX_INTEGER_CLASSES and y.nunique() <= MAX_INTEGER_CLASSES)
    codes, labels = pd.factorize(y) if recodings else (None, ())
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    for column in X.columns:
        feature = X[column]
        if recodings:
            if not _one_to_one(feature, codes, len(labels)):
                continue
        elif not (numeric and pd.api.types.is_numeric_dtype(feature) and _equal(feature, y)):
            continue
        copy = np.array_equal(feature.to_numpy(dtype=object), y.to_numpy(dtype=object))
        if copy:
            what = "a copy of"
        else:
            pairs = pd.DataFrame({"f": feature, "y": y}).drop_duplicates().head(2)
            shown = ", ".join(f"{t!r} as {f!r}" for f, t in zip(pairs["f"], pairs["y"],
                                                                 strict=True))
            what = f"a one-to-one recoding ({shown}{', …' * (len(labels) > 2)}) of"
        raise PipelineError(
            f"feature {column!r} of {file.name} is {what} target {y.name!r}: every score would "
            f"measure the copy, not the model; leave it out: {_features_without(X, [column])}"
        )


def _one_to_one(feature: pd.Series, target_codes: np.ndarray, n_labels: int) -> bool:
    """Whether each value of `feature` goes with one target value and each target value with
    one feature value (first on the head of the column, where most columns fail)."""
    n = len(feature)
    for rows in ((slice(0, HEAD_ROWS),) if n <= HEAD_ROWS else (slice(0, HEAD_ROWS), slice(None))):
        own, values = pd.factorize(feature.iloc[rows])
        target = target_codes[rows]
        if (own < 0).any():  # a blank cell where the target has a value
            return False
        n_target = len(np.unique(target))
        if len(values) != n_target:
            return False
        pairs = own.astype(np.int64) * n_labels + target
        if len(np.unique(pairs)) != n_target:
            return False
    return True


def _equal(feature: pd.Series, y: pd.Series) -> bool:
    head = slice(0, HEAD_ROWS)
    return (np.array_equal(feature.iloc[head].to_numpy(dtype=float),
                           y.iloc[head].to_numpy(dtype=float))
            and np.array_equal(feature.to_numpy(dtype=float), y.to_numpy(dtype=float)))


def check_no_identifiers(X: pd.DataFrame, file: Path, chosen: bool, notes: list[str]) -> None:
    """Refuse a numeric row number or identifier among the features: a model can score through
    the order or the identity of the rows (how the file was sorted or assembled), which new
    data does not share. Listed in `data.features` (`chosen`), it is kept with a warning.
    Text identifiers are the preprocessing's to refuse (too many categories)."""
    if len(X) < MIN_ROWS_FOR_IDENTIFIERS:
        return
    for column in X.columns:
        kind = _identifier_kind(X[column])
        if kind is None:
            continue
        what = f"column {column!r} of {file.name} looks like {kind}"
        if chosen:
            add_note(notes, f"{what}; kept because data.features lists it", warn=True)
            continue
        unnamed = " (pandas' to_csv writes its index as such a column unless index=False)" if str(
            column).startswith("Unnamed:") else ""
        raise PipelineError(
            f"{what}: a model could score through the rows' order or identity{unnamed}; leave it "
            f"out: {_features_without(X, [column])}, or list it in data.features to keep it"
        )


def _identifier_kind(values: pd.Series) -> str | None:
    """What a column of distinct integers, one per row, looks like: a row number (consecutive
    integers, in any order), a counter in file order (strictly monotonic) or an identifier (by
    its name); None for any other column."""
    if pd.api.types.is_float_dtype(values):
        v = values.to_numpy(dtype=float)
    elif pd.api.types.is_integer_dtype(values) and not values.hasnans:
        v = values.to_numpy(dtype=np.int64)
    else:
        return None
    head = v[:HEAD_ROWS]  # where most columns fail, at little cost
    if not _integral(head) or len(np.unique(head)) < len(head):
        return None
    if v.dtype.kind == "f" and not _integral(v):  # blanks (NaN) fail here too
        return None
    low, high = v.min(), v.max()
    if int(high) - int(low) == len(v) - 1 and (
            np.bincount((v - low).astype(np.int64), minlength=len(v)) == 1).all():
        return f"a row number (the integers {int(low)} to {int(high)}, each once)"
    if _strictly_monotonic(v[:HEAD_ROWS]) and _strictly_monotonic(v):
        return "a row number, counter or timestamp (integers rising or falling row by row)"
    words = _WORDS.findall(str(values.name))
    if {w.lower() for w in words} & _IDENTIFIER_WORDS and values.nunique() == len(v):
        return "an identifier (a distinct integer in every row)"
    return None


def _integral(v: np.ndarray) -> bool:
    return bool(np.isfinite(v).all() and (v == np.trunc(v)).all())


def _strictly_monotonic(v: np.ndarray) -> bool:
    # Comparisons, not differences: a difference of large integers can overflow.
    return bool((v[1:] > v[:-1]).all() or (v[1:] < v[:-1]).all())


def checked_task(task: str, y: pd.Series) -> str:
    from pipeline.config import TASKS

    if task not in TASKS:
        raise PipelineError(f"data.task={task!r} is not one of auto, {', '.join(TASKS)}")
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise PipelineError(
            f"target {y.name!r} holds non-numeric values and cannot be regressed; "
            "use data.task=classification"
        )
    if task == "regression" and not np.isfinite(y.to_numpy(dtype=float)).all():
        raise PipelineError(
            f"target {y.name!r} holds infinite values; replace them or leave the rows blank "
            "to skip them"
        )
    if task == "classification" and y.nunique() < 2:
        only = f" ('{y.iloc[0]}')" if len(y) else ""
        raise PipelineError(
            f"target {y.name!r} has a single class{only}; a classifier needs two or more: "
            "check data.target and the file's rows"
        )
    return task


def listed_columns(frame: pd.DataFrame, most: int = 30) -> str:
    names = [str(c) for c in frame.columns]
    return ", ".join(names[:most]) + (f", … ({len(names)} in all)" if len(names) > most else "")
