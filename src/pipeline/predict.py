"""`python -m pipeline.predict run_id=<id> input=new.csv output=preds.csv`: the model a job
refit and logged (`refit`), applied to new rows; predictions and class probabilities as CSV."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import data
from pipeline.errors import PipelineError

USAGE = """\
usage: python -m pipeline.predict run_id=<parent run id> input=<file.csv|.parquet>
                                  [output=predictions.csv] [tracking_uri=<uri>] [ignore_extra=true]

Loads the model that a job logged to its parent run (refit=true, the default for a single
job), checks the input's columns and their types against the model's signature (a numeric
column holds numbers or blanks, which the model imputes), and writes one row per input row:
`prediction`, and for a classifier `proba_<class>` for every class.
The tracking URI defaults to $MLFLOW_TRACKING_URI, else sqlite:///outputs/mlflow.db here.
Columns the model does not take are an error, unless ignore_extra=true drops them."""
KEYS = ("run_id", "input", "output", "tracking_uri", "ignore_extra")
# MLflow's numeric column types: earlier models declared integer columns `long`.
NUMBERS = ("double", "float", "long", "integer")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or any(a in ("-h", "--help", "help") for a in args):
        print(USAGE)
        return 0 if args else 2
    try:
        options = parse(args)
    except PipelineError as error:
        print(f"error: {error}\n{USAGE.splitlines()[0]}", file=sys.stderr)
        return 2
    try:
        written = predict_file(**options)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {written} prediction(s) to {options.get('output', 'predictions.csv')}")
    return 0


def parse(args: list[str]) -> dict[str, Any]:
    """Hydra-style `key=value` arguments."""
    options: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in KEYS:
            raise PipelineError(f"unknown argument {arg!r}; expected key=value with key one of "
                                f"{', '.join(KEYS)}")
        options[key] = value
    for key in ("run_id", "input"):
        if not options.get(key):
            raise PipelineError(f"{key}=... is required")
    if "ignore_extra" in options:
        options["ignore_extra"] = options["ignore_extra"].lower() in ("true", "1", "yes")
    return options


def predict_file(run_id: str, input: str, output: str = "predictions.csv",
                 tracking_uri: str | None = None, ignore_extra: bool = False) -> int:
    """Predict every row of `input` with the model of run `run_id`; write `output`; return the
    number of rows."""
    frame = read(Path(input))
    model, columns = load(run_id, tracking_uri)
    predictions = predict(model, conform(frame, columns, ignore_extra))
    try:
        predictions.to_csv(output, index=False)
    except OSError as error:
        raise PipelineError(f"output={output} cannot be written: {error.strerror}") from error
    return len(predictions)


def read(path: Path) -> pd.DataFrame:
    """The rows to predict; a file that is no table, or a table without rows, is an error."""
    if path.is_dir():
        raise PipelineError(f"input={path} is a directory; give a CSV file, or a Parquet file "
                            "named *.parquet")
    if not path.is_file():
        raise PipelineError(f"input={path} not found (working directory: {Path.cwd()})")
    parquet = path.suffix.lower() in (".parquet", ".pq")
    if not parquet:
        with path.open("rb") as stream:
            if b"\x00" in stream.read(8192):
                raise PipelineError(f"input={path} is not a text table (it holds binary data); "
                                    "give a CSV file, or a Parquet file named *.parquet")
    try:
        frame = data.read_parquet(path) if parquet else pd.read_csv(path)
    except pd.errors.EmptyDataError as error:
        raise PipelineError(f"input={path} is empty; give a header row naming the model's "
                            "columns, then one row per example") from error
    except UnicodeDecodeError as error:
        # (pandas decodes in chunks: the byte offset it reports is not the file's)
        raise PipelineError(f"input={path} is not UTF-8 text ({error.reason}); save it as "
                            "UTF-8 CSV") from error
    except (ValueError, OSError) as error:
        raise PipelineError(f"input={path} cannot be read as a table: "
                            f"{' '.join(str(error).split())[:200]}") from error
    if frame.empty:
        raise PipelineError(f"input={path} has a header but no rows; add one row per example "
                            "to predict below the header")
    return frame


def load(run_id: str, tracking_uri: str | None = None) -> tuple[Any, list[tuple[str, str]]]:
    """The scikit-learn pipeline logged to run `run_id` (with `predict_proba` where it has
    one), and its input columns `(name, MLflow type)` from the signature."""
    from pipeline.compat.mlflow import tracking_uri as scoped_tracking_uri
    from pipeline.tracking.client import check_reachable, quiet_mlflow
    from pipeline.tracking.secrets import redact
    from pipeline.tracking.store import check_store, default_uri

    uri = tracking_uri or default_uri()
    where = redact(uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise PipelineError(f"no MLflow store at {where}; run from the directory of the job's "
                            "outputs/, or pass tracking_uri=")
    if uri.startswith(("http://", "https://")):
        check_reachable(uri)
    if uri.startswith("sqlite:///"):  # one of an older MLflow: refused, opening migrates it
        check_store(uri, reading=True)
    quiet_mlflow()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.MlflowClient(tracking_uri=uri).get_run(run_id)
    except MlflowException as error:
        raise PipelineError(f"run {run_id} not found in {where}") from error
    # MLflow resolves a `runs:/` model URI against its global tracking URI alone.
    with scoped_tracking_uri(uri):
        return _logged_model(run_id, f"runs:/{run_id}/model")


def _logged_model(run_id: str, model_uri: str) -> tuple[Any, list[tuple[str, str]]]:
    import mlflow
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException

    try:
        info = mlflow.models.get_model_info(model_uri)
    except (MlflowException, OSError) as error:
        raise PipelineError(
            f"run {run_id} has no logged model; its job ran with refit=false (a sweep's jobs "
            "do by default): rerun that job with refit=true") from error
    if info.signature is None:
        raise PipelineError(f"the model of run {run_id} has no signature to check columns by")
    # A column's type by its MLflow name ("double", "string"; `str()` gives "DataType.double").
    columns = [(spec.name, getattr(spec.type, "name", str(spec.type)))
               for spec in info.signature.inputs.inputs]
    try:
        model = mlflow.sklearn.load_model(model_uri)
    except (ImportError, AttributeError) as error:
        # Unpickling finds the classes and functions by name in the installed packages.
        raise PipelineError(
            f"the model of run {run_id} does not load with the installed packages ({error}); "
            "install the pipeline version that made it, or load it in a fresh Python with "
            "mlflow.pyfunc.load_model (it carries its own copy of pipeline)") from error
    return model, columns


def conform(frame: pd.DataFrame, columns: list[tuple[str, str]],
            ignore_extra: bool = False) -> pd.DataFrame:
    """`frame`'s columns in the model's order and types; an error names missing columns and
    extra ones (unless `ignore_extra`), and a column whose values are not of its type."""
    names = [name for name, _ in columns]
    missing = [n for n in names if n not in frame.columns]
    extra = [str(c) for c in frame.columns if c not in names]
    if len(missing) == len(names):
        raise PipelineError(
            f"input shares no column with the model, which takes {_listed(names)}; is it the "
            "right file?")
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if extra and not ignore_extra:
        problems.append(f"extra column(s) {', '.join(extra)} (drop them, or ignore_extra=true)")
    if problems:
        raise PipelineError(f"input does not match the model's signature: {'; '.join(problems)}")
    frame = frame[names].copy()
    for name, kind in columns:
        column = frame[name]
        if kind in NUMBERS:
            frame[name] = _numbers(column, name, kind)
        elif kind == "boolean":
            frame[name] = _booleans(column, name)
        elif kind == "string":
            frame[name] = column.where(column.isna(), column.astype(str)).astype(object)
    return frame


def _numbers(column: pd.Series, name: str, kind: str) -> pd.Series:
    """`column` as floats; blanks stay NaN (the model imputes them), text and infinities are
    an error naming the first offending data row (1-based, header excluded)."""
    numbers = pd.to_numeric(column, errors="coerce").astype(float)
    text = numbers.isna() & column.notna()
    if text.any():
        first = int(text.to_numpy().argmax())
        raise PipelineError(
            f"column {name!r} must hold numbers ({kind}), but data row {first + 1} holds "
            f"{column.iloc[first]!r} ({int(text.sum())} of {len(column)} value(s) are not "
            "numbers); fix those cells, or leave them blank to have them imputed")
    infinite = np.isinf(numbers.to_numpy())
    if infinite.any():
        raise PipelineError(
            f"column {name!r} holds infinite values ({int(infinite.sum())} row(s), first data "
            f"row {int(infinite.argmax()) + 1}); replace them with numbers, or leave those cells "
            "blank to have them imputed")
    return numbers


def _booleans(column: pd.Series, name: str) -> pd.Series:
    """`column` as True/False (blanks kept), as the model saw it in training."""
    words = {"true": True, "false": False}
    values = column.astype(object).map(
        lambda v: words.get(v.strip().lower(), v) if isinstance(v, str) else v)
    wrong = values.notna() & ~values.map(lambda v: isinstance(v, bool | np.bool_))
    if wrong.any():
        first = int(wrong.to_numpy().argmax())
        raise PipelineError(
            f"column {name!r} must hold true or false, but data row {first + 1} holds "
            f"{column.iloc[first]!r}; fix those cells, or leave them blank to have them imputed")
    return values.astype(object)


def _listed(names: list[str], most: int = 10) -> str:
    return ", ".join(names[:most]) + (f", … ({len(names)} in all)" if len(names) > most else "")


def predict(model: Any, X: pd.DataFrame) -> pd.DataFrame:
    """`prediction`, and `proba_<class>` for each class where the model has probabilities."""
    result = pd.DataFrame({"prediction": model.predict(X)})
    if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
        proba = model.predict_proba(X)
        for k, label in enumerate(model.classes_):
            result[f"proba_{label}"] = proba[:, k]
    return result


if __name__ == "__main__":
    sys.exit(main())
