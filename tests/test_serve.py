"""`mlflow models serve` on a job's final model: a real HTTP client gets the predictions that
`pipeline.predict` writes, and a clear 4xx for a request the signature refuses."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets

from pipeline import predict
from pipeline.entry import run
from tests.conftest import store_uri
from tests.services import invoke, served
from tests.test_predict import typed_table


def latency(url: str, rows: pd.DataFrame, repeats: int = 5) -> float:
    """The fastest of a few requests, in milliseconds (the machine is shared)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        assert invoke(url, rows).status_code == 200
        best = min(best, time.perf_counter() - started)
    return best * 1000


# Per model: the job's data overrides, and the feature table the client sends rows of.
JOBS = {
    # Numbers, categories and booleans from a CSV file, as most users' data comes.
    "decision_tree": (["data=csv", "data.path=train.csv", "data.target=label"],
                      lambda: typed_table().drop(columns="label")),
    "logistic": (["data=breast_cancer", "trainer.max_epochs=2"],
                 lambda: datasets.load_breast_cancer(as_frame=True).data),
}


@pytest.mark.slow
@pytest.mark.parametrize("model", JOBS)
def test_served_model_answers_http_as_the_predict_command_does(make_cfg, workdir, model):
    overrides, features = JOBS[model]
    typed_table().to_csv(workdir / "train.csv", index=False)
    result = run(make_cfg(f"model={model}", *overrides, "cv.n_splits=2", "plots=false",
                          "refit=true"))
    X = features()
    rows = X.sample(20, random_state=0).astype(object)
    # A row of blanks (the model imputes every cell), but for columns of whole numbers: a
    # served model refuses blanks in those, declared `long`, as MLflow does.
    rows.iloc[0, [not pd.api.types.is_integer_dtype(X[c]) for c in X.columns]] = None
    rows.to_csv(workdir / "rows.csv", index=False)
    rows = pd.read_csv(workdir / "rows.csv")  # the types a client reading the file sends
    assert predict.main([f"run_id={result.run_id}", "input=rows.csv", "output=out.csv",
                         f"tracking_uri={store_uri(workdir)}"]) == 0
    expected = pd.read_csv(workdir / "out.csv")["prediction"].to_numpy()

    with served(f"runs:/{result.run_id}/model", workdir, store_uri(workdir)) as url:
        answer = invoke(url, rows)
        assert answer.status_code == 200, answer.text
        np.testing.assert_array_equal(np.asarray(answer.json()["predictions"]), expected)

        dropped = X.columns[-1]
        refused = invoke(url, rows.drop(columns=[dropped]))
        assert 400 <= refused.status_code < 500
        assert f"missing inputs ['{dropped}']" in refused.json()["message"]

        many = X.sample(1000, replace=True, random_state=0)
        print(f"\n{model} served: one row {latency(url, rows.tail(1)):.1f} ms, "
              f"1,000 rows {latency(url, many):.1f} ms (fastest of 5 requests)")
