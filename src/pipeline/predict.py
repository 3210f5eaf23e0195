"""`python -m pipeline.predict run_id=<id> input=new.csv output=preds.csv`: the model a job
refit and logged (`refit`), applied to new rows; predictions and class probabilities as CSV."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import data
from pipeline.errors import PipelineError

USAGE = """\
usage: python -m pipeline.predict run_id=<parent run id> input=<file.csv|.parquet>
                                  [output=predictions.csv] [tracking_uri=<uri>]
                                  [ignore_extra=true] [strict=true]

Loads the model that a job logged to its parent run (refit=true, the default for a single
job), reads the input's columns with the types of the model's signature (a text column as
written, leading zeros kept; a numeric column holds numbers or blanks, which the model
imputes), and writes one row per input row: `prediction`, and for a classifier
`proba_<class>` for every class. Categories the model never saw in training are reported per
column on stderr; strict=true refuses them.
The tracking URI defaults to $MLFLOW_TRACKING_URI, else sqlite:///outputs/mlflow.db here.
Columns the model does not take are an error, unless ignore_extra=true drops them."""
KEYS = ("run_id", "input", "output", "tracking_uri", "ignore_extra", "strict")
FLAGS = ("ignore_extra", "strict")
# What a true/false argument may say (any case).
BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
# MLflow's run ids are uuid4().hex, in every store it ships (file, SQL, REST server).
RUN_ID = re.compile(r"[0-9a-f]{32}")
# The schemes of the tracking URIs MLflow reads (a SQL store's may name a driver: `mysql+pymysql`).
URI_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")
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
    """Hydra-style `key=value` arguments, each checked for its form before anything is read."""
    options: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in KEYS:
            raise PipelineError(f"unknown argument {arg!r}; expected key=value with key one of "
                                f"{', '.join(KEYS)}")
        if key in options:
            raise PipelineError(f"{key}= is given twice; give it once")
        options[key] = value
    for key in ("run_id", "input"):
        if not options.get(key):
            raise PipelineError(f"{key}=... is required")
    for key in ("output", "tracking_uri"):
        if options.get(key) == "":
            raise PipelineError(f"{key}= is empty; give a value, or leave the argument out")
    if not RUN_ID.fullmatch(options["run_id"]):
        raise PipelineError(
            f"run_id={options['run_id']} is not an MLflow run id (32 hexadecimal characters, "
            "0-9 and a-f, as the job's last line and the MLflow UI show it)")
    for key in FLAGS:
        if key in options:
            flag = BOOLEANS.get(options[key].strip().lower())
            if flag is None:
                raise PipelineError(f"{key}={options[key]} is not true or false; give "
                                    f"{key}=true or {key}=false (yes/no and 1/0 also work)")
            options[key] = flag
    if "tracking_uri" in options:
        _check_uri_form(options["tracking_uri"])
    return options


def _check_uri_form(uri: str) -> None:
    """A tracking URI of a scheme MLflow reads, or a path (a file store)."""
    from pipeline.tracking.secrets import redact

    scheme, sep, rest = uri.partition("://")
    if not sep:
        return  # a path: MLflow's file store
    if scheme.split("+")[0].lower() not in URI_SCHEMES or not rest:
        raise PipelineError(
            f"tracking_uri={redact(uri)} is not a tracking URI MLflow reads; give "
            "sqlite:///<path>/mlflow.db, http(s)://<host>:<port>, file:///<dir> or a SQL "
            f"database URI (schemes: {', '.join(URI_SCHEMES)})")


def predict_file(run_id: str, input: str, output: str = "predictions.csv",
                 tracking_uri: str | None = None, ignore_extra: bool = False,
                 strict: bool = False) -> int:
    """Predict every row of `input` with the model of run `run_id`; write `output`; return the
    number of rows. Categories never seen in training are a warning on stderr (an error with
    `strict`)."""
    path = Path(input)
    check_input(path)
    check_output(Path(output), path)
    model, columns = load(run_id, tracking_uri)
    frame = conform(read(path, columns), columns, ignore_extra)
    reports = unseen_categories(model, frame)
    if reports and strict:
        raise PipelineError("; ".join(line for line, _ in reports) + "; strict=true refuses "
                            "them: correct those values, or leave strict out to predict them")
    for line, encoded in reports:
        print(f"warning: {line}; they are encoded as {encoded}", file=sys.stderr)
    predictions = predict(model, frame)
    try:
        predictions.to_csv(output, index=False)
    except OSError as error:
        raise PipelineError(f"output={output} cannot be written: "
                            f"{error.strerror or error}") from error
    return len(predictions)


def check_input(path: Path) -> None:
    """`path` is a file that may hold a table (a text file, or Parquet by its name)."""
    if path.is_dir():
        raise PipelineError(f"input={path} is a directory; give a CSV file, or a Parquet file "
                            "named *.parquet")
    if not path.is_file():
        raise PipelineError(f"input={path} not found (working directory: {Path.cwd()})")
    if not _is_parquet(path):
        with path.open("rb") as stream:
            if b"\x00" in stream.read(8192):
                raise PipelineError(f"input={path} is not a text table (it holds binary data); "
                                    "give a CSV file, or a Parquet file named *.parquet")


def check_output(output: Path, input: Path) -> None:
    """`output` can be written: not a directory, nor the input, in a directory that exists
    and is writable."""
    if output.is_dir():
        raise PipelineError(f"output={output} is a directory; name a file in it, e.g. "
                            f"output={output / 'predictions.csv'}")
    if output.exists() and output.resolve() == input.resolve():
        raise PipelineError(f"output={output} is the input file; name another file, so that "
                            "the rows are kept")
    folder = output.absolute().parent
    if not folder.is_dir():
        what = "is a file, not a directory" if folder.exists() else "does not exist"
        raise PipelineError(f"output={output}: the directory {folder} {what}; create it first "
                            "(mkdir -p), or name a file in an existing directory")
    if not os.access(folder, os.W_OK | os.X_OK) or (
            output.exists() and not os.access(output, os.W_OK)):
        where = output if output.exists() else f"the directory {folder}"
        raise PipelineError(f"output={output}: {where} is not writable; name a file in a "
                            "directory you can write to")


def read(path: Path, columns: Iterable[tuple[str, str]] = ()) -> pd.DataFrame:
    """The rows to predict, the signature's text `columns` read as written (a CSV's `01234`
    stays `01234`, where pandas would infer the number 1234 when every code is digits);
    numbers and booleans as pandas reads them, as the training loader did. A file that is no
    table, or a table without rows, is an error."""
    check_input(path)
    text = {name: str for name, kind in columns if kind == "string"}
    try:
        frame = data.read_parquet(path) if _is_parquet(path) else pd.read_csv(
            path, dtype=text or None)
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


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


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
            frame[name] = _text(column)
    return frame


def _text(column: pd.Series) -> pd.Series:
    """`column` in the text form the model saw (blanks kept). A CSV's text columns are read
    as written; a Parquet file may hold numbers there, each written as the training loader
    writes a number among text: `1234` (a whole number, also where a blank made the column
    float), else Python's `str`. A code that lost its leading zeros as a number cannot get
    them back: it comes out as a category never seen, and is reported so."""
    def as_text(value: object) -> object:
        if isinstance(value, str) or pd.isna(value):
            return value
        if isinstance(value, float | np.floating) and float(value).is_integer():
            return str(int(value))
        return str(value)

    return column.astype(object).map(as_text).astype(object)


def unseen_categories(model: Any, frame: pd.DataFrame) -> list[tuple[str, str]]:
    """For each column of `frame` holding categories `model`'s encoder never saw in
    training, a line (how many rows, an example) and how the encoder takes them."""
    from pipeline.tracking.signature import training_categories, unseen

    lines = []
    for name, categories in training_categories(model).items():
        if name not in frame.columns:
            continue
        new = unseen(frame[name], categories)
        if new.any():
            example = frame[name][new].iloc[0]
            lines.append((f"column {name!r}: {int(new.sum())} of {len(frame)} row(s) hold "
                         f"categories not seen in training (e.g. {example!r})",
                          "the group of rare categories" if categories.grouped else "unknown"))
    return lines


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
