"""`python -m pipeline.predict run_id=<id> input=new.csv output=preds.csv`: the model a job
refit and logged (`refit`), applied to new rows; predictions and class probabilities as CSV."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import PipelineError

USAGE = """\
usage: python -m pipeline.predict run_id=<parent run id> input=<file.csv|.parquet>
                                  [output=predictions.csv] [tracking_uri=<uri>] [ignore_extra=true]

Loads the model that a job logged to its parent run (refit=true, the default for a single
job), checks the input's columns against the model's signature, and writes one row per input
row: `prediction`, and for a classifier `proba_<class>` for every class.
The tracking URI defaults to $MLFLOW_TRACKING_URI, else sqlite:///outputs/mlflow.db here.
Columns the model does not take are an error, unless ignore_extra=true drops them."""
KEYS = ("run_id", "input", "output", "tracking_uri", "ignore_extra")


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
    if not path.is_file():
        raise PipelineError(f"input={path} not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (ValueError, OSError) as error:
        raise PipelineError(f"input={path} cannot be read as a table: "
                            f"{' '.join(str(error).split())[:200]}") from error


def load(run_id: str, tracking_uri: str | None = None) -> tuple[Any, list[tuple[str, str]]]:
    """The scikit-learn pipeline logged to run `run_id` (with `predict_proba` where it has
    one), and its input columns `(name, MLflow type)` from the signature."""
    from pipeline.tracking import _check_reachable, _quiet_mlflow, default_uri, redact

    uri = tracking_uri or default_uri()
    where = redact(uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise PipelineError(f"no MLflow store at {where}; run from the directory of the job's "
                            "outputs/, or pass tracking_uri=")
    if uri.startswith(("http://", "https://")):
        _check_reachable(uri)
    _quiet_mlflow()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(uri)
    try:
        mlflow.MlflowClient().get_run(run_id)
    except MlflowException as error:
        raise PipelineError(f"run {run_id} not found in {where}") from error
    model_uri = f"runs:/{run_id}/model"
    try:
        info = mlflow.models.get_model_info(model_uri)
    except (MlflowException, OSError) as error:
        raise PipelineError(
            f"run {run_id} has no logged model; its job ran with refit=false (a sweep's jobs "
            "do by default): rerun that job with refit=true") from error
    if info.signature is None:
        raise PipelineError(f"the model of run {run_id} has no signature to check columns by")
    columns = [(spec.name, str(spec.type)) for spec in info.signature.inputs.inputs]
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
    extra ones (unless `ignore_extra`)."""
    names = [name for name, _ in columns]
    missing = [n for n in names if n not in frame.columns]
    extra = [str(c) for c in frame.columns if c not in names]
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
        if kind == "string":
            frame[name] = column.where(column.isna(), column.astype(str)).astype(object)
        elif kind in ("double", "float", "long", "integer"):
            try:
                frame[name] = pd.to_numeric(column).astype(float)
            except (ValueError, TypeError) as error:
                raise PipelineError(f"column {name} must be numeric ({kind}): "
                                    f"{' '.join(str(error).split())[:120]}") from error
    return frame


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
