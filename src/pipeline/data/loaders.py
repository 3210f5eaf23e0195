"""The loaders: scikit-learn's bundled data sets, generated ones, and any CSV or Parquet file
read into a `Dataset` (feature dtypes, task inference, the notes printed at load). What a table
must not hold is `honesty`'s to refuse."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.dataset import MAX_INTEGER_CLASSES, Dataset, add_note
from pipeline.data.honesty import (
    check_column_names,
    check_features,
    check_no_identifiers,
    check_no_target_copy,
    checked_task,
    listed_columns,
)
from pipeline.errors import PipelineError

BUNDLED = {
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "digits": ("load_digits", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}

# How generated and file data hold their numeric features (`data.dtype`): float32 halves the
# memory of a big table and is what the torch models train on; float64 keeps full precision.
DTYPES = ("float32", "float64")
# A float feature column is held as float32 only where float32's rounding at the column's
# largest magnitude is at most this share of the column's range: standard scores, counts and
# measurements are, a timestamp or a large identifier-like value with a narrow spread is not
# (at 1.7e9 float32 steps by 128; a column spanning hours would lose its detail). Those columns
# stay float64, and the data's notes say which.
FLOAT32_MAX_STEP = 1e-6

log = logging.getLogger("pipeline")


def bundled(name: str, task: str | None = None) -> Dataset:
    """One of scikit-learn's bundled data sets (no download)."""
    import sklearn.datasets

    if name not in BUNDLED:
        choices = ", ".join(BUNDLED)
        raise PipelineError(f"data.name={name!r} is not bundled; choose one of {choices}")
    loader, natural_task = BUNDLED[name]
    frame = getattr(sklearn.datasets, loader)(as_frame=True)
    X, y = frame.data, frame.target.rename("target")
    task = task or natural_task
    order = ()
    if task == "classification" and "target_names" in frame:
        # Classes by name (iris: setosa, versicolor, virginica; digits' names are its digits),
        # in the order of their codes: breast_cancer's positive class stays 1, benign, as in
        # scikit-learn, though 'benign' sorts before 'malignant'.
        names = np.asarray(frame.target_names)
        y = pd.Series(names[y.to_numpy()], name="target")
        order = tuple(names.tolist())
    return Dataset(X=X, y=y, task=checked_task(task, y), name=name, class_order=order)


def synthetic(
    task: str = "classification",
    n_samples: int = 500,
    n_features: int = 20,
    n_informative: int = 10,
    n_classes: int = 2,
    noise: float = 0.0,
    random_state: int | None = None,
    name: str = "synthetic",
    dtype: str = "float32",
) -> Dataset:
    """A generated data set: `make_classification` or `make_regression`, its features held as
    `dtype` (float32 by default: a million rows of 50 features take 200 MB, not 400 MB)."""
    from sklearn.datasets import make_classification, make_regression

    _check_dtype(dtype)
    n_informative = min(n_informative, n_features)
    try:
        if task == "classification":
            X, y = make_classification(
                n_samples=n_samples, n_features=n_features, n_informative=n_informative,
                n_redundant=0, n_classes=n_classes, flip_y=noise, random_state=random_state,
            )
        elif task == "regression":
            X, y = make_regression(
                n_samples=n_samples, n_features=n_features, n_informative=n_informative,
                noise=noise, random_state=random_state,
            )
        else:
            raise PipelineError(f"data.task={task!r}: synthetic data is classification or "
                                "regression")
    except ValueError as error:
        raise PipelineError(f"data=synthetic: {error}") from error
    columns = [f"x{i}" for i in range(n_features)]
    # One block of `dtype`, cast once from the generator's float64 (freed on return).
    X = pd.DataFrame(X.astype(dtype, copy=False), columns=columns, copy=False)
    return Dataset(X=X, y=pd.Series(y, name="target"), task=task, name=name)


def table(
    path: str | None,
    target: str | None,
    features: list[str] | None = None,
    categorical: list[str] | None = None,
    groups: str | None = None,
    task: str = "auto",
    name: str | None = None,
    dtype: str = "float32",
) -> Dataset:
    """Any CSV or Parquet file: one target column, the rest (or `features`) as features.

    Float feature columns are held as `dtype` (float32 by default, see `FLOAT32_MAX_STEP` for
    the columns that stay float64); integer and boolean columns keep their type (a model's
    signature takes them as whole numbers), text columns become categories. The `categorical`
    columns of a CSV file are read as the text it holds: codes such as `01234` keep their
    leading zeros even where every code is digits (inferred, they would be the number 1234).

    A file that cannot make a sound design matrix (no rows, duplicate column names, a target
    with no values, features that are empty, infinite, constant or half numbers and half text)
    or that would make every score meaningless (the target again among the features, a row
    number or numeric identifier) is refused here, before any training, with a line saying
    what to change. Rows without a target value are dropped; that, and what was inferred, is
    printed and kept in the Dataset's `notes`.
    """
    _check_dtype(dtype)
    if not path:
        raise PipelineError("data=csv needs a file: add data.path=<file.csv> data.target=<column>")
    file = Path(path).expanduser()
    if file.is_dir():
        raise PipelineError(f"data.path={path} is a directory; point it at a CSV or Parquet file")
    if not file.is_file():
        raise PipelineError(f"data.path={path} does not exist (working directory: {Path.cwd()})")
    frame = _read(file, text=categorical or ())
    check_column_names(frame, file)
    unlabelled = target is None and task == "clustering"
    if target is None and not unlabelled:
        raise PipelineError(f"data=csv needs data.target=<column> (or data.task=clustering for "
                            f"data without labels); columns are: {listed_columns(frame)}")
    if not unlabelled and target not in frame.columns:
        raise PipelineError(
            f"data.target={target!r} is not a column of {file.name}; columns are: "
            f"{listed_columns(frame)}"
        )
    if frame.empty:
        raise PipelineError(
            f"{file.name} has a header but no rows; add one row per example below the header"
        )
    used = [c for c in frame.columns if c not in (target, groups)] if features is None else features
    absent = [c for c in [*used, *(categorical or []), *([groups] if groups else [])]
              if c not in frame.columns]
    if absent:
        raise PipelineError(
            f"{', '.join(map(repr, absent))} not in {file.name}; columns are: "
            f"{listed_columns(frame)}"
        )
    # Boolean indexing copies every column: only where rows are to be dropped.
    labelled = frame if unlabelled or frame[target].notna().all() else frame[
        frame[target].notna()]
    if labelled.empty:
        raise PipelineError(
            f"data.target={target!r} has no values in {file.name} (all {len(frame)} rows blank); "
            "fill it in or pick another column with data.target=<column>"
        )
    notes: list[str] = []
    if len(labelled) < len(frame):
        add_note(notes, f"dropped {len(frame) - len(labelled)} row(s) with no value in target "
                        f"{target!r}", warn=True)
    forced = list(categorical or [])
    check_features(labelled[used], forced, file)
    X = labelled[used].reset_index(drop=True)
    y = None if unlabelled else labelled[target].reset_index(drop=True)
    if not unlabelled:
        y = _integer_labels(y, task)
        inferred = task == "auto"
        task = checked_task(_infer_task(y) if inferred else task, y)
        if inferred:
            add_note(notes, _inferred(task, y))
        check_no_target_copy(X, y, task, file)
    check_no_identifiers(X, file, chosen=features is not None, notes=notes)
    kinds = [c for c in X.columns if c in forced or not pd.api.types.is_numeric_dtype(X[c])
             or pd.api.types.is_bool_dtype(X[c])]
    if kinds:
        add_note(notes, f"categorical (one-hot encoded): {', '.join(map(str, kinds[:10]))}"
                        + (f", … ({len(kinds)} in all)" if len(kinds) > 10 else ""))
    X = as_categories(X, kinds)
    if dtype == "float32":
        X = _as_float32(X, notes)
    group_labels = labelled[groups].reset_index(drop=True) if groups else None
    del frame, labelled  # the file's own frame: only X, y and the groups are kept
    if file.suffix.lower() in (".parquet", ".pq"):
        _release_arrow_memory()
    if task == "classification":
        y = y.astype(str) if not pd.api.types.is_numeric_dtype(y) else y
    for line in notes:  # printed once, at the start of the job, when nothing was refused
        log.log(logging.WARNING if line.startswith("warning:") else logging.INFO, line)
    return Dataset(
        X=X, y=y, task=task, name=name or file.stem, categorical=tuple(kinds),
        groups=group_labels, notes=tuple(notes),
    )


def as_categories(X: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`columns` of `X` as values the imputer and one-hot encoder take (apply it to new data
    too): object dtype, and text throughout where a column mixes numbers, booleans and text."""
    if not columns:
        return X
    X = X.copy(deep=False)  # copy-on-write: the columns replaced below, not the others
    for column in columns:
        values = X[column].astype(object)
        kinds = {_kind(value) for value in values.dropna()}
        if len(kinds) > 1:
            values = values.astype(str).astype(object).where(values.notna(), np.nan)
        X[column] = values
    return X


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise PipelineError(f"data.dtype={dtype!r} is not one of {', '.join(DTYPES)}")


def _as_float32(X: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """`X` with its float columns as float32, except those float32 would round too coarsely
    (kept float64). The float32 columns are written into one C-ordered block, a column at a
    time: one array that every fold's rows are taken from and that scikit-learn and torch read
    without a copy."""
    chosen, kept = [], []
    for column in X.columns:
        if X[column].dtype != np.float64:
            continue
        v = X[column].to_numpy()
        low, high = np.nanmin(v, initial=np.inf), np.nanmax(v, initial=-np.inf)
        if np.isfinite(low) and high > low and float(np.spacing(np.float32(
                max(abs(low), abs(high))))) > FLOAT32_MAX_STEP * (high - low):
            kept.append(str(column))
        else:
            chosen.append(column)
    if kept:
        add_note(notes, f"kept as float64 (float32 would round their values too coarsely for "
                        f"their spread; data.dtype=float64 keeps every column): "
                        f"{', '.join(kept[:10])}"
                        + (f", … ({len(kept)} in all)" if len(kept) > 10 else ""))
    if not chosen:
        return X
    block = np.empty((len(X), len(chosen)), dtype=np.float32)
    for j, column in enumerate(chosen):
        block[:, j] = X[column].to_numpy()
    floats = pd.DataFrame(block, columns=pd.Index(chosen), copy=False)
    if len(chosen) == X.shape[1]:
        return floats.set_axis(X.columns, axis=1)
    joined = pd.concat([floats, X.drop(columns=chosen)], axis=1)
    # In the file's order (the model's signature lists them so); a copy, once, at load.
    return joined if list(joined.columns) == list(X.columns) else joined[list(X.columns)]


def _kind(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "bool"
    return "number" if isinstance(value, int | float | np.number) else "text"


def read_parquet(file: Path) -> pd.DataFrame:
    """A Parquet file as a frame, at the memory of the frame alone. At 1M x 50 float64 (400 MB
    of values): the file's bytes are not read whole ahead of decoding (`pre_buffer`), and
    Arrow's columns are handed over to pandas one at a time (`self_destruct`) into a block each
    (`split_blocks`), not copied into one consolidated frame while the whole Arrow table is
    alive."""
    return pd.read_parquet(file, pre_buffer=False,
                           to_pandas_kwargs={"split_blocks": True, "self_destruct": True})


def _read(file: Path, text: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """The file as a frame; in a text file, the `text` columns are read as written (a name
    that is not a column is the caller's to report)."""
    parquet = file.suffix.lower() in (".parquet", ".pq")
    if not parquet:
        with file.open("rb") as stream:
            start = stream.read(8192)
        if b"\x00" in start:
            raise PipelineError(
                f"data.path={file} is not a text table (it holds binary data); give a CSV file, "
                "or a Parquet file named *.parquet"
            )
    try:
        if parquet:
            return read_parquet(file)
        csv = file.suffix.lower() == ".csv"
        return pd.read_csv(file, sep="," if csv else None, engine="c" if csv else "python",
                           dtype=dict.fromkeys(text, str) or None)
    except pd.errors.EmptyDataError as error:
        raise PipelineError(
            f"data.path={file} is empty; a table needs a header row naming the columns, then "
            "one row per example"
        ) from error
    except UnicodeDecodeError as error:
        raise PipelineError(
            f"cannot read {file} as a table: it is not UTF-8 text ({error.reason} at byte "
            f"{error.start}); save it as UTF-8 CSV"
        ) from error
    except (ValueError, OSError, pd.errors.ParserError) as error:
        first = " ".join(str(error).split())[:200]
        raise PipelineError(
            f"cannot read {file} as a table: {first}; is it a CSV file, or Parquet named *.parquet?"
        ) from error


def _release_arrow_memory() -> None:
    """Hand back to the system the pages Arrow's allocator kept from the columns just freed: at
    1M x 50 it holds on to about 550 MB that no other allocation in the job can reuse."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _integer_labels(y: pd.Series, task: str) -> pd.Series:
    """Class labels coded as integers, with blank cells, read as floats (1.0, NaN, 4.0): once the
    blank rows are gone, integral values that are few (or declared labels) are integers again,
    so that they are classified, not regressed, and shown as 1, not 1.0."""
    if task not in ("auto", "classification") or not pd.api.types.is_float_dtype(y):
        return y
    values = y.to_numpy(dtype=float)
    exact = np.isfinite(values) & (np.abs(values) < 2**53)  # beyond, a float is no count
    if not (exact.all() and (values == np.trunc(values)).all()):
        return y
    if task == "auto" and y.nunique() > MAX_INTEGER_CLASSES:
        return y
    return y.astype("int64")


def _inferred(task: str, y: pd.Series) -> str:
    held = "numbers" if pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(
        y) else "labels"
    other = "regression" if task == "classification" else "classification"
    advice = f"; data.task={other} to change it" if held == "numbers" else ""
    return (f"task {task}, inferred from target {y.name!r} ({held}, {y.nunique()} distinct)"
            f"{advice}")


def _infer_task(y: pd.Series) -> str:
    """Strings, booleans, categories and integers with few values are labels; floats are not."""
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    if pd.api.types.is_integer_dtype(y) and y.nunique() <= MAX_INTEGER_CLASSES:
        return "classification"
    return "regression"
