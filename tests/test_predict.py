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
from tests.conftest import all_runs, parents, store_uri

from pipeline import predict, tracking
from pipeline.runner import run


@pytest.fixture
def refit_models(monkeypatch: pytest.MonkeyPatch) -> list:
    """The models that jobs log, as the job fitted them."""
    models: list = []
    log_model = tracking.Tracker.log_model

    def keep(self, run_id, model, X):
        models.append(model)
        return log_model(self, run_id, model, X)

    monkeypatch.setattr(tracking.Tracker, "log_model", keep)
    return models


def python(code: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """A fresh interpreter, as a user's serving process would be."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def predict_cli(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([sys.executable, "-m", "pipeline.predict", *args], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=120)


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
    assert errors("run_id=0123456789abcdef", "input=labelled.csv").startswith(
        "error: run 0123456789abcdef not found in sqlite:///")
    assert "has no logged model" in errors(f"run_id={without.run_id}", "input=labelled.csv")
    assert "input=nowhere.csv not found" in errors(f"run_id={with_model.run_id}",
                                                   "input=nowhere.csv")
    assert predict.main(["input=labelled.csv"]) == 2
    assert "run_id=... is required" in capsys.readouterr().err


@pytest.mark.slow
def test_a_sweep_does_not_refit_by_default(cli, workdir):
    done = cli("-m", "model=knn", "data=iris", "plots=false")
    assert done.returncode == 0, done.stderr
    [parent_id] = parents(all_runs(workdir))["run_id"]
    pd.DataFrame({"x": [1.0]}).to_csv(workdir / "rows.csv", index=False)
    found = predict_cli(workdir, f"run_id={parent_id}", "input=rows.csv")
    assert found.returncode == 1 and "has no logged model" in found.stderr
