"""Data sets: scikit-learn's bundled ones, generated ones, and any CSV or Parquet file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from pipeline.errors import PipelineError

BUNDLED = {
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "digits": ("load_digits", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}
# An integer target with at most this many distinct values is taken for class labels.
MAX_INTEGER_CLASSES = 20


@dataclass(frozen=True)
class Dataset:
    """Features, target and what to learn from them."""

    X: pd.DataFrame
    y: pd.Series | None  # None: data without labels, to be clustered
    task: str
    name: str
    categorical: tuple[str, ...] = ()
    groups: pd.Series | None = None
    # The classes in the data's own order where it has one (a bundled set's target codes),
    # else empty: sorted. The second class is a binary target's positive one.
    class_order: tuple = ()

    @property
    def classes(self) -> np.ndarray:
        if self.task != "classification":
            return np.array([])
        if self.class_order:
            return np.array(self.class_order)
        return np.unique(self.y.to_numpy())


def load(cfg: DictConfig) -> Dataset:
    """Build the data set that `cfg` (the `data` group) describes."""
    from pipeline.config import instantiate_node

    return instantiate_node(cfg, label=None)


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
    return Dataset(X=X, y=y, task=_checked_task(task, y), name=name, class_order=order)


def synthetic(
    task: str = "classification",
    n_samples: int = 500,
    n_features: int = 20,
    n_informative: int = 10,
    n_classes: int = 2,
    noise: float = 0.0,
    random_state: int | None = None,
    name: str = "synthetic",
) -> Dataset:
    """A generated data set: `make_classification` or `make_regression`."""
    from sklearn.datasets import make_classification, make_regression

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
    return Dataset(X=pd.DataFrame(X, columns=columns), y=pd.Series(y, name="target"), task=task,
                   name=name)


def table(
    path: str | None,
    target: str | None,
    features: list[str] | None = None,
    categorical: list[str] | None = None,
    groups: str | None = None,
    task: str = "auto",
    name: str | None = None,
) -> Dataset:
    """Any CSV or Parquet file: one target column, the rest (or `features`) as features.

    A file that cannot make a sound design matrix (no rows, duplicate column names, a target
    with no values, features that are empty, infinite, constant or half numbers and half text)
    is refused here, before any training, with a line saying what to change.
    """
    if not path:
        raise PipelineError("data=csv needs a file: add data.path=<file.csv> data.target=<column>")
    file = Path(path).expanduser()
    if file.is_dir():
        raise PipelineError(f"data.path={path} is a directory; point it at a CSV or Parquet file")
    if not file.is_file():
        raise PipelineError(f"data.path={path} does not exist (working directory: {Path.cwd()})")
    frame = _read(file)
    _check_column_names(frame, file)
    unlabelled = target is None and task == "clustering"
    if target is None and not unlabelled:
        raise PipelineError(f"data=csv needs data.target=<column> (or data.task=clustering for "
                            f"data without labels); columns are: {_names(frame)}")
    if not unlabelled and target not in frame.columns:
        raise PipelineError(
            f"data.target={target!r} is not a column of {file.name}; columns are: {_names(frame)}"
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
            f"{', '.join(map(repr, absent))} not in {file.name}; columns are: {_names(frame)}"
        )
    labelled = frame if unlabelled else frame[frame[target].notna()]
    if labelled.empty:
        raise PipelineError(
            f"data.target={target!r} has no values in {file.name} (all {len(frame)} rows blank); "
            "fill it in or pick another column with data.target=<column>"
        )
    forced = list(categorical or [])
    _check_features(labelled[used], forced, file)
    X = labelled[used].reset_index(drop=True)
    y = None if unlabelled else labelled[target].reset_index(drop=True)
    if not unlabelled:
        task = _checked_task(_infer_task(y) if task == "auto" else task, y)
    kinds = [c for c in X.columns if c in forced or not pd.api.types.is_numeric_dtype(X[c])
             or pd.api.types.is_bool_dtype(X[c])]
    X = as_categories(X, kinds)
    if task == "classification":
        y = y.astype(str) if not pd.api.types.is_numeric_dtype(y) else y
    return Dataset(
        X=X, y=y, task=task, name=name or file.stem, categorical=tuple(kinds),
        groups=labelled[groups].reset_index(drop=True) if groups else None,
    )


def as_categories(X: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`columns` of `X` as values the imputer and one-hot encoder take (apply it to new data
    too): object dtype, and text throughout where a column mixes numbers, booleans and text."""
    X = X.copy()
    for column in columns:
        values = X[column].astype(object)
        kinds = {_kind(value) for value in values.dropna()}
        if len(kinds) > 1:
            values = values.astype(str).astype(object).where(values.notna(), np.nan)
        X[column] = values
    return X


def _kind(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "bool"
    return "number" if isinstance(value, int | float | np.number) else "text"


def _read(file: Path) -> pd.DataFrame:
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
            return pd.read_parquet(file)
        csv = file.suffix.lower() == ".csv"
        return pd.read_csv(file, sep="," if csv else None, engine="c" if csv else "python")
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


def _check_column_names(frame: pd.DataFrame, file: Path) -> None:
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


def _check_features(X: pd.DataFrame, categorical: list[str], file: Path) -> None:
    """Refuse feature columns that cannot become a finite design matrix (row numbers are
    1-based data rows of the file)."""
    if X.shape[1] == 0:
        raise PipelineError(
            f"{file.name} has no feature columns besides the target; add columns or check "
            "data.features"
        )
    empty = [c for c in X.columns if X[c].isna().all()]
    if empty:
        rest = [str(c) for c in X.columns if c not in empty]
        keep = f"data.features=[{','.join(rest)}]" if len(rest) <= 20 else (
            "list the other columns in data.features")
        raise PipelineError(
            f"column(s) {', '.join(map(repr, empty))} of {file.name} hold no values at all; "
            f"fill them in or leave them out: {keep}"
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
            f"({_names(X, most=10)}): there is nothing to learn from; check the file or "
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


def _infer_task(y: pd.Series) -> str:
    """Strings, booleans, categories and integers with few values are labels; floats are not."""
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    if pd.api.types.is_integer_dtype(y) and y.nunique() <= MAX_INTEGER_CLASSES:
        return "classification"
    return "regression"


def _checked_task(task: str, y: pd.Series) -> str:
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


def _names(frame: pd.DataFrame, most: int = 30) -> str:
    names = [str(c) for c in frame.columns]
    return ", ".join(names[:most]) + (f", … ({len(names)} in all)" if len(names) > most else "")
