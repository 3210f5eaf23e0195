"""The final model: refit on all the data, logged to the parent run, used by the predict command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn import datasets

from pipeline import predict, tracking
from pipeline.entry import run
from tests.conftest import all_runs, command_in_process, parents, refit_csv_job, store_uri


@pytest.fixture
def refit_models(monkeypatch: pytest.MonkeyPatch) -> list:
    """The models that jobs log, as the job fitted them."""
    models: list = []
    log_model = tracking.Tracker.log_model

    def keep(self, run_id, model, X, packages=()):
        models.append(model)
        return log_model(self, run_id, model, X, packages)

    monkeypatch.setattr(tracking.Tracker, "log_model", keep)
    return models


def python(code: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """A fresh interpreter, as a user's serving process would be."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def predict_cli(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m pipeline.predict ARGS` in `workdir` (the `workdir` fixture's directory), run
    in this process: exit status, stdout and stderr (see `command_in_process`)."""
    assert Path.cwd() == workdir
    return command_in_process(lambda: predict.main(), "pipeline.predict", *args)


@pytest.mark.slow
@pytest.mark.parametrize(("data", "model", "overrides"), [
    ("breast_cancer", "mlp", ["trainer.max_epochs=5"]),
    ("wine", "random_forest", ["model.n_estimators=20"]),
])
def test_refit_model_loads_in_a_fresh_process_and_predicts_as_in_the_job(
        make_cfg, workdir, refit_models, data, model, overrides):
    result = run(make_cfg(f"data={data}", f"model={model}", "cv.n_splits=2", "plots=false",
                          *overrides))
    [final] = refit_models
    X = getattr(datasets, f"load_{data}")(as_frame=True).data
    expected = final.predict(X)
    X.to_csv(workdir / "rows.csv", index=False)

    loaded = python(f"""
        import json, mlflow, pandas as pd
        mlflow.set_tracking_uri({store_uri(workdir)!r})
        model = mlflow.pyfunc.load_model("runs:/{result.run_id}/model")
        print(json.dumps(model.predict(pd.read_csv("rows.csv")).tolist()))
    """, cwd=workdir)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    predicted = json.loads(loaded.stdout.strip().splitlines()[-1])
    np.testing.assert_array_equal(np.asarray(predicted), expected)

    parent = all_runs(workdir).set_index("run_id").loc[result.run_id]
    assert parent["status"] == "FINISHED"  # reopened to log the model, and closed again
    logged = MlflowClient(store_uri(workdir)).search_logged_models(
        [parent["experiment_id"]], filter_string=f"source_run_id = '{result.run_id}'")
    assert [m.name for m in logged] == ["model"]


@pytest.mark.slow
def test_predict_command_checks_columns_and_writes_one_row_per_input_row(make_cfg, workdir):
    result = run(make_cfg("data=iris", "model=knn", "plots=false"))  # refit: auto, a single job
    frame = datasets.load_iris(as_frame=True).data.sample(12, random_state=0)
    frame.to_csv(workdir / "new.csv", index=False)
    frame.drop(columns=["petal width (cm)"]).to_csv(workdir / "short.csv", index=False)

    bad = predict_cli(workdir, f"run_id={result.run_id}", "input=short.csv", "output=out.csv")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "error: input does not match the model's signature: missing column(s) petal width (cm)"]
    assert not (workdir / "out.csv").exists()

    good = predict_cli(workdir, f"run_id={result.run_id}", "input=new.csv", "output=out.csv")
    assert good.returncode == 0, good.stderr
    written = pd.read_csv(workdir / "out.csv")
    assert len(written) == len(frame)
    names = datasets.load_iris().target_names  # classes by name
    assert list(written.columns) == ["prediction", *(f"proba_{name}" for name in names)]
    assert set(written["prediction"]) <= set(names)
    np.testing.assert_allclose(written.filter(like="proba_").sum(axis=1), 1.0)
    np.testing.assert_array_equal(names[written.filter(like="proba_").to_numpy().argmax(axis=1)],
                                  written["prediction"])


def test_predict_names_extra_columns_unknown_runs_and_runs_without_a_model(
        make_cfg, workdir, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri(workdir))
    with_model = run(make_cfg("data=iris", "model=knn", "plots=false", "refit=true"))
    without = run(make_cfg("data=iris", "model=knn", "plots=false", "refit=false"))
    frame = datasets.load_iris(as_frame=True).frame
    frame.to_csv(workdir / "labelled.csv", index=False)

    def errors(*args: str) -> str:
        assert predict.main(list(args)) == 1
        return capsys.readouterr().err.strip()

    assert errors(f"run_id={with_model.run_id}", "input=labelled.csv") == (
        "error: input does not match the model's signature: extra column(s) target "
        "(drop them, or ignore_extra=true)")
    assert predict.main([f"run_id={with_model.run_id}", "input=labelled.csv",
                         "ignore_extra=true", "output=out.csv"]) == 0
    assert len(pd.read_csv(workdir / "out.csv")) == len(frame)
    assert errors("run_id=" + "0123456789abcdef" * 2, "input=labelled.csv").startswith(
        "error: run 0123456789abcdef0123456789abcdef not found in sqlite:///")
    assert "has no logged model" in errors(f"run_id={without.run_id}", "input=labelled.csv")
    assert "input=nowhere.csv not found" in errors(f"run_id={with_model.run_id}",
                                                   "input=nowhere.csv")
    assert predict.main(["input=labelled.csv"]) == 2
    assert "run_id=... is required" in capsys.readouterr().err


@pytest.mark.slow
def test_a_sweep_does_not_refit_by_default(run_cli, workdir):
    done = run_cli("-m", "model=knn", "data=iris", "plots=false")
    assert done.returncode == 0, done.stderr
    [parent_id] = parents(all_runs(workdir))["run_id"]
    pd.DataFrame({"x": [1.0]}).to_csv(workdir / "rows.csv", index=False)
    found = predict_cli(workdir, f"run_id={parent_id}", "input=rows.csv")
    assert found.returncode == 1 and "has no logged model" in found.stderr


def typed_table(rows: int = 160) -> pd.DataFrame:
    """A table whose columns show their type late: `count` is whole numbers with blanks only
    after row 100 (a float column), `colour` is text blank in its first 100 rows; a sample of
    rows would declare them `long` and `double`. `rooms` is whole numbers throughout."""
    rng = np.random.default_rng(0)
    count = pd.Series(rng.integers(0, 10, rows), dtype="Int64")
    count[[110, 130, 150]] = pd.NA
    colour = pd.Series(rng.choice(["red", "green"], rows), dtype=object)
    colour[:100] = None
    signal = rng.normal(size=rows) + count.fillna(5).to_numpy(dtype=float) / 3
    return pd.DataFrame({
        "x": rng.normal(size=rows).round(3), "count": count, "colour": colour,
        "flag": rng.choice([True, False], rows), "rooms": rng.integers(1, 6, rows),
        "label": np.where(signal > 1.5, "yes", "no")})


@pytest.fixture(scope="module")
def typed_job(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One job on `typed_table`, shared by the tests below: its folder (holding train.csv and
    the store), run id, and the final model with the rows it was fit on."""
    return refit_csv_job(tmp_path_factory.mktemp("typed"), typed_table())


def predict_in(job: dict, capsys: pytest.CaptureFixture, file: str,
               *args: str) -> tuple[int, str]:
    """`pipeline.predict` on `file` of the job's folder: (exit status, stderr)."""
    status = predict.main([f"run_id={job['run_id']}", f"input={job['folder'] / file}",
                           f"output={job['folder'] / 'out.csv'}", f"tracking_uri={job['uri']}",
                           *args])
    return status, capsys.readouterr().err.strip()


def test_a_model_takes_its_own_training_data_whatever_its_first_rows_hold(typed_job, capsys):
    assert predict_in(typed_job, capsys, "train.csv", "ignore_extra=true") == (0, "")
    written = pd.read_csv(typed_job["folder"] / "out.csv")
    expected = typed_job["final"].predict(typed_job["X"])
    np.testing.assert_array_equal(written["prediction"], expected)

    import mlflow

    mlflow.set_tracking_uri(typed_job["uri"])
    served = mlflow.pyfunc.load_model(f"runs:/{typed_job['run_id']}/model")
    features = pd.read_csv(typed_job["folder"] / "train.csv").drop(columns="label")
    np.testing.assert_array_equal(served.predict(features), expected)
    declared = {spec.name: spec.type.name for spec in served.metadata.get_input_schema().inputs}
    assert declared == {"x": "double", "count": "double", "colour": "string", "flag": "boolean",
                        "rooms": "long"}
    assert features["rooms"].dtype == np.int64  # the training frame's own type passes


def test_blank_cells_are_imputed_as_in_training(typed_job, capsys):
    rows = pd.read_csv(typed_job["folder"] / "train.csv").drop(columns="label").head(12)
    blanked = rows.astype(object)
    for column, row in [("x", 0), ("count", 1), ("colour", 2), ("flag", 3), ("rooms", 4)]:
        blanked.loc[row, column] = None
    blanked.to_csv(typed_job["folder"] / "blanks.csv", index=False)
    assert predict_in(typed_job, capsys, "blanks.csv") == (0, "")
    # What the training loader makes of blanks: NaN in numbers, missing categories.
    expected = typed_job["final"].predict(typed_job["X"].head(12).mask(blanked.isna()))
    np.testing.assert_array_equal(pd.read_csv(typed_job["folder"] / "out.csv")["prediction"],
                                  expected)
    # The same rows from Parquet, which keeps the types that CSV makes the reader infer.
    rows.mask(blanked.isna()).to_parquet(typed_job["folder"] / "blanks.parquet")
    assert predict_in(typed_job, capsys, "blanks.parquet") == (0, "")
    np.testing.assert_array_equal(pd.read_csv(typed_job["folder"] / "out.csv")["prediction"],
                                  expected)


def _with(column: str, row: int, value: object):
    def edit(rows: pd.DataFrame) -> pd.DataFrame:
        rows[column] = rows[column].astype(object)
        rows.loc[row, column] = value
        return rows
    return edit


@pytest.mark.parametrize(("edit", "message"), [
    (_with("x", 2, "abc"), "column 'x' must hold numbers (double), but data row 3 holds 'abc' "
     "(1 of 12 value(s) are not numbers); fix those cells, or leave them blank to have them "
     "imputed"),
    (_with("count", 4, "3,5"), "column 'count' must hold numbers (double), but data row 5 holds "
     "'3,5' (1 of 12 value(s) are not numbers); fix those cells, or leave them blank to have "
     "them imputed"),
    (_with("x", 1, "inf"), "column 'x' holds infinite values (1 row(s), first data row 2); "
     "replace them with numbers, or leave those cells blank to have them imputed"),
    (_with("flag", 6, "maybe"), "column 'flag' must hold true or false, but data row 7 holds "
     "'maybe'; fix those cells, or leave them blank to have them imputed"),
    (lambda rows: rows.head(0), "input={file} has a header but no rows; add one row per "
     "example to predict below the header"),
    (lambda rows: rows.rename(columns=str.upper), "input shares no column with the model, "
     "which takes x, count, colour, flag, rooms; is it the right file?"),
], ids=["text-in-numbers", "decimal-comma", "infinity", "not-a-boolean", "zero-rows",
        "another-table"])
def test_predict_refuses_values_the_signature_does_not_allow_in_one_line(
        typed_job, capsys, edit, message):
    rows = pd.read_csv(typed_job["folder"] / "train.csv").drop(columns="label").head(12)
    file = typed_job["folder"] / "bad.csv"
    edit(rows).to_csv(file, index=False)
    (typed_job["folder"] / "out.csv").unlink(missing_ok=True)
    assert predict_in(typed_job, capsys, "bad.csv") == (1, f"error: {message.format(file=file)}")
    assert not (typed_job["folder"] / "out.csv").exists()


@pytest.mark.parametrize(("content", "message"), [
    (b"", "input={file} is empty; give a header row naming the model's columns, then one row "
     "per example"),
    (b"PAR1\x15\x04\x15\x00\x00binary", "input={file} is not a text table (it holds binary "
     "data); give a CSV file, or a Parquet file named *.parquet"),
    (b"x,count\n\xff\xfe,1\n", "input={file} is not UTF-8 text (invalid start byte); save it "
     "as UTF-8 CSV"),
    (None, "input={file} is a directory; give a CSV file, or a Parquet file named *.parquet"),
], ids=["empty", "binary", "not-utf8", "directory"])
def test_predict_refuses_a_file_that_is_no_table_in_one_line(typed_job, capsys, content,
                                                             message):
    file = typed_job["folder"] / "wrong.csv"
    if file.is_dir():
        file.rmdir()
    elif file.exists():
        file.unlink()
    if content is None:
        file.mkdir()
    else:
        file.write_bytes(content)
    assert predict_in(typed_job, capsys, "wrong.csv") == (1, f"error: {message.format(file=file)}")
