"""User mistakes end in one clear line and a non-zero exit, with no MLflow run left RUNNING."""

from __future__ import annotations

import pandas as pd
import pytest
from tests.conftest import all_runs


@pytest.fixture
def small_csv(workdir):
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0] * 5, "b": ["x", "y"] * 10,
                  "label": ["p", "q"] * 10}).to_csv(workdir / "small.csv", index=False)
    return "small.csv"


MISTAKES = {
    "missing file": (["data=csv", "data.path=nope.csv", "data.target=y"],
                     ["nope.csv", "does not exist"]),
    "absent target": (["data=csv", "data.path=small.csv", "data.target=price"],
                      ["'price'", "columns are: a, b, label"]),
    "classifier on regression": (["model=naive_bayes", "data=diabetes"],
                                 ["model=naive_bayes", "regression", "ols"]),
    "too many folds": (["data=iris", "cv.n_splits=200"], ["n_splits=200", "iris"]),
    "too few folds": (["data=iris", "cv.n_splits=1"], ["cv.n_splits", "at least 2"]),
    "bad model argument": (["model=decision_tree", "model.criterion=purity"],
                           ["model.criterion", "purity"]),
    "closed tracking port": (["tracking.uri=http://127.0.0.1:9"],
                             ["http://127.0.0.1:9", "unreachable"]),
    "unknown tracking scheme": (["tracking.uri=foo://bar"], ["tracking.uri=foo://bar"]),
}


@pytest.mark.parametrize("name", MISTAKES)
def test_mistake_is_one_clear_line(cli, workdir, small_csv, name):
    args, words = MISTAKES[name]
    done = cli(*args)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert "RUNNING" not in set(all_runs(workdir)["status"])


def test_unknown_config_option_is_hydras_message(cli, workdir):
    done = cli("model=xgboost")
    assert done.returncode != 0
    assert "Could not find 'model/xgboost'" in done.stderr
    assert "Traceback" not in done.stderr
