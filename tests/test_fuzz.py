"""Property test: any table a user may feed in either becomes a finite numeric design matrix
with a row per labelled example, or is refused with a PipelineError; never another exception.

Random DataFrames (mixed dtypes, NaN and ±inf, constant, all-missing and duplicate columns,
text with few or many categories, numbers mixed with text, tiny and skewed classes) are written
as CSV or Parquet and go through the data stage (`data.table`), the preprocessing stage
(`preprocessing.build(...).fit_transform`, then `transform` of rows it did not see) and the
splitter (`cv.split`). The examples are derandomised: every CI run tries the same ones.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipeline import cv, preprocessing
from pipeline.data import table
from pipeline.errors import PipelineError
from pipeline.spec import Component, Scheme

EXAMPLES = 400
KFOLD = Scheme(Component("cv", "kfold", "pipeline.cv.kfold",
                         {"n_splits": 3, "shuffle": True, "stratify": True, "random_state": 0}))
# float32's range: beyond it a float64 column's variance is no longer finite.
FINITE = st.floats(min_value=-3e38, max_value=3e38, allow_nan=False, allow_infinity=False)
SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-300])
WORDS = st.sampled_from(["a", "b", "c", "déjà vu", "x,y", "", " ", "1", "2.5", "?", "True",
                         "NaN", "n/a", "\"q\""])
MISSING = st.just(None)


def mostly(values: st.SearchStrategy, *rare: st.SearchStrategy) -> st.SearchStrategy:
    """`values` three times out of four, else one of `rare` (st.one_of picks evenly)."""
    return st.one_of(values, values, values, *rare) if len(rare) == 1 else st.one_of(
        values, values, values, st.one_of(*rare))


# Kinds of feature column, the common ones more often.
KINDS = ["float"] * 4 + ["int"] * 2 + ["text"] * 3 + ["bool", "many", "mixed", "constant",
                                                     "infinite", "empty"]
TARGETS = ["skewed"] * 3 + ["balanced"] * 3 + ["float"] * 2 + ["text"] * 2 + [
    "single", "missing", "infinite"]


@st.composite
def column(draw: st.DrawFn, n: int) -> list:
    kind = draw(st.sampled_from(KINDS))
    cell = {
        "float": mostly(FINITE, st.just(np.nan), st.sampled_from([0.0, -0.0, 1e-300])),
        "infinite": mostly(FINITE, SPECIAL),
        "int": st.integers(-10**12, 10**12),
        "bool": mostly(st.booleans(), MISSING),
        "text": mostly(WORDS, MISSING),
        "many": st.text(min_size=0, max_size=6),
        "mixed": st.one_of(FINITE, WORDS, st.booleans(), MISSING),
        "constant": st.just(draw(st.one_of(FINITE, WORDS))),
        "empty": st.just(None),
    }[kind]
    return draw(st.lists(cell, min_size=n, max_size=n))


@st.composite
def tables(draw: st.DrawFn) -> tuple[pd.DataFrame, str, bool]:
    n = draw(st.one_of(st.integers(1, 5), st.integers(6, 60), st.integers(6, 60)))
    n_features = draw(st.sampled_from([0] + [1, 2, 3, 4, 5] * 3))
    names = [f"f{i}" for i in range(n_features)]
    if n_features > 1 and draw(st.integers(0, 9)) == 0:  # now and then a repeated name
        names[-1] = names[0]
    columns = [(name, draw(column(n))) for name in names]
    target_kind = draw(st.sampled_from(TARGETS))
    if target_kind == "skewed":  # one dominant class, one or two tiny ones
        target = draw(st.lists(st.sampled_from([0] * 8 + [1, 2]), min_size=n, max_size=n))
    elif target_kind == "balanced":
        n_classes = draw(st.integers(2, 4))
        target = [i % n_classes for i in range(n)]
    elif target_kind == "single":
        target = [7] * n
    elif target_kind in ("float", "infinite"):
        cells = mostly(FINITE, SPECIAL) if target_kind == "infinite" else FINITE
        target = draw(st.lists(cells, min_size=n, max_size=n))
    elif target_kind == "text":
        target = draw(st.lists(mostly(WORDS, MISSING), min_size=n, max_size=n))
    else:
        target = draw(st.lists(st.one_of(st.just(None), st.sampled_from(["p", "q"])),
                               min_size=n, max_size=n))
    columns.append(("target", target))
    frame = pd.DataFrame({i: values for i, (_, values) in enumerate(columns)})
    frame.columns = [name for name, _ in columns]  # repeated names are allowed here
    return frame, draw(st.sampled_from(["csv", "parquet"])), draw(st.booleans())


def write(frame: pd.DataFrame, path: Path) -> bool:
    """False when Parquet cannot hold the frame (mixed types in a column, repeated names)."""
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
        return True
    try:
        frame.to_parquet(path, index=False)
    except (ValueError, TypeError, ArithmeticError):  # pyarrow's errors derive from these
        return False
    return True


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tables())
def test_any_table_is_a_finite_design_matrix_or_a_clear_error(case):
    frame, kind, categorical_first = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data.{kind}"
        if not write(frame, path) and not write(frame, path := path.with_suffix(".csv")):
            return
        features = [c for c in dict.fromkeys(frame.columns) if c != "target"]
        categorical = features[:1] if categorical_first else None
        try:
            dataset = table(str(path), "target", categorical=categorical)
            transformer = preprocessing.build(dataset)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. a column all-missing in one fold
                n_seen = max(1, len(dataset.y) * 2 // 3)
                design = transformer.fit_transform(dataset.X.iloc[:n_seen])
                unseen = transformer.transform(dataset.X)
        except PipelineError as error:
            refused(error)
            return
    event("design matrix")
    assert len(dataset.X) == len(dataset.y)
    for matrix, rows in ((design, n_seen), (unseen, len(dataset.y))):
        assert matrix.shape[0] == rows
        assert np.issubdtype(matrix.dtype, np.number)
        assert np.isfinite(matrix).all()
    try:
        folds = cv.split(KFOLD, dataset)
    except PipelineError as error:
        refused(error)
        return
    assert all(len(np.intersect1d(fold.train, fold.test)) == 0 for fold in folds)


def refused(error: PipelineError) -> None:
    message = str(error)
    assert message and "\n" not in message
    event("refused: " + re.sub(r"'[^']*'|[0-9]+|/tmp/\S*", "_", message)[:45])
