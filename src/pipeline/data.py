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
    y: pd.Series
    task: str
    name: str
    categorical: tuple[str, ...] = ()
    groups: pd.Series | None = None

    @property
    def classes(self) -> np.ndarray:
        return np.unique(self.y.to_numpy()) if self.task == "classification" else np.array([])


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
    task = _checked_task(task or natural_task, y)
    return Dataset(X=X, y=y, task=task, name=name)


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
    """Any CSV or Parquet file: one target column, the rest (or `features`) as features."""
    if not path:
        raise PipelineError("data=csv needs a file: add data.path=<file.csv> data.target=<column>")
    file = Path(path).expanduser()
    if not file.is_file():
        raise PipelineError(f"data.path={path} does not exist (working directory: {Path.cwd()})")
    frame = _read(file)
    if target is None:
        raise PipelineError(f"data=csv needs data.target=<column>; columns are: {_names(frame)}")
    if target not in frame.columns:
        raise PipelineError(
            f"data.target={target!r} is not a column of {file.name}; columns are: {_names(frame)}"
        )
    used = [c for c in frame.columns if c not in (target, groups)] if features is None else features
    absent = [c for c in [*used, *(categorical or []), *([groups] if groups else [])]
              if c not in frame.columns]
    if absent:
        raise PipelineError(
            f"{', '.join(map(repr, absent))} not in {file.name}; columns are: {_names(frame)}"
        )
    labelled = frame[frame[target].notna()]
    if labelled.empty:
        raise PipelineError(f"data.target={target!r} has no values in {file.name}")
    X = labelled[used].reset_index(drop=True)
    y = labelled[target].reset_index(drop=True)
    task = _checked_task(_infer_task(y) if task == "auto" else task, y)
    forced = list(categorical or [])
    X = X.astype({c: "object" for c in forced}) if forced else X
    kinds = [c for c in X.columns if c in forced or not pd.api.types.is_numeric_dtype(X[c])
             or pd.api.types.is_bool_dtype(X[c])]
    if task == "classification":
        y = y.astype(str) if not pd.api.types.is_numeric_dtype(y) else y
    return Dataset(
        X=X, y=y, task=task, name=name or file.stem, categorical=tuple(kinds),
        groups=labelled[groups].reset_index(drop=True) if groups else None,
    )


def _read(file: Path) -> pd.DataFrame:
    try:
        if file.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(file)
        return pd.read_csv(file, sep=None if file.suffix.lower() != ".csv" else ",",
                           engine="python" if file.suffix.lower() != ".csv" else "c")
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as error:
        first = " ".join(str(error).split())[:200]
        raise PipelineError(f"cannot read {file} as a table: {first}") from error


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
    if task == "classification" and y.nunique() < 2:
        raise PipelineError(f"target {y.name!r} has a single class; a classifier needs two or more")
    return task


def _names(frame: pd.DataFrame, most: int = 30) -> str:
    names = [str(c) for c in frame.columns]
    return ", ".join(names[:most]) + (f", … ({len(names)} in all)" if len(names) > most else "")
