"""Impossible arguments found before any run: arguments that only the data makes impossible
(against the smallest training part of the planned folds), Lightning Trainer settings, seeds and
names are each one `error:` line, with no MLflow run created. The table runs in-process (the
error line is what the command prints for a PipelineError); a few cases run the real command to
show the line and the exit status themselves. Strings that reach an MLflow filter are quoted so
that a sweep or an experiment named with quotes still finds its runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.model_selection import StratifiedKFold

from pipeline import checks, tracking
from pipeline.entry import run
from pipeline.errors import PipelineError
from pipeline.sweeps import mark_best
from tests.conftest import all_runs, assert_refused_before_any_work, parents

QUICK = ["++plots=false", "++refit=false"]
MLP = ["model=mlp", "trainer.max_epochs=1"]
# The smallest training part of iris under the default cv (stratified 5-fold, seed 42).
_X, _y = load_iris(return_X_y=True)
ROWS = min(len(train) for train, _ in
           StratifiedKFold(5, shuffle=True, random_state=42).split(_X, _y))
RESAMPLED = round(0.8 * len(_y))  # cv=resample's parts for clustering models: 0.8 of the rows


def four_classes_one_column(workdir: Path) -> None:
    # A measurement, not a row number (which the loader refuses): a normal draw.
    a = np.random.default_rng(0).normal(size=40).round(3)
    pd.DataFrame({"a": a, "label": list("pqrs") * 10}).to_csv(
        workdir / "four.csv", index=False)


# name: (overrides, words the error line holds: the key, the limit, the fold size, the fix)
CASES: dict[str, tuple[list[str], list[str]]] = {
    # Against the smallest training part
    "knn: more neighbours than training rows": (
        ["model=knn", f"model.n_neighbors={ROWS + 1}"],
        [f"model.n_neighbors={ROWS + 1}", f"{ROWS} rows of the smallest training part",
         "cv=kfold", f"model.n_neighbors={ROWS} or fewer"]),
    "knn regressor too": (
        ["model=knn", "data=diabetes", "model.n_neighbors=1000"],
        ["model.n_neighbors=1000", "smallest training part", "or fewer"]),
    "kmeans: more clusters than rows": (
        ["model=kmeans", f"model.n_clusters={RESAMPLED + 1}"],
        [f"model.n_clusters={RESAMPLED + 1}", f"{RESAMPLED} rows", "cv=resample",
         f"model.n_clusters={RESAMPLED} or fewer"]),
    "hierarchical: more clusters than rows": (
        ["model=hierarchical", "model.n_clusters=1000"],
        ["model.n_clusters=1000", f"{RESAMPLED} rows", "or fewer"]),
    "pca: more components than columns": (
        ["preprocess.reduce=pca", "preprocess.n_components=5"],
        ["preprocess.n_components=5", "min(rows, columns) = 4", "4 columns after encoding",
         "preprocess.n_components=4 or fewer"]),
    "pca: more components than training rows": (
        ["data=synthetic", "data.n_samples=20", "data.n_features=30", "cv.n_splits=2",
         "preprocess.reduce=pca", "preprocess.n_components=15"],
        ["preprocess.n_components=15", "min(rows, columns) = 10", "10 rows",
         "preprocess.n_components=10 or fewer"]),
    "lda: more components than columns": (
        ["data=csv", "data.path=four.csv", "data.target=label", "cv.n_splits=2",
         "preprocess.reduce=lda", "preprocess.n_components=2"],
        ["preprocess.n_components=2", "LDA", "1 columns", "preprocess.n_components=1"]),
    # scikit-learn's declared constraints, before any fit
    "model argument out of range": (["model=svm", "model.C=-1"], ["model.C", "Got -1"]),
    "imputer strategy": (["preprocess.numeric_impute=banana"],
                         ["preprocess.numeric_impute=banana", "SimpleImputer", "'median'"]),
    "encoder max_categories": (["preprocess.max_categories=0"],
                               ["preprocess.max_categories=0", "OneHotEncoder", "[1, inf)"]),
    # Seeds
    "seed -1": (["seed=-1"], ["seed=-1", "0 to 4294967295", "seed=42"]),
    "seed text": (["seed=abc"], ["seed=abc", "not an integer"]),
    "seed fraction": (["seed=1.5"], ["seed=1.5", "not an integer"]),
    "seed 2**32": (["seed=4294967296"], ["seed=4294967296", "0 to 4294967295"]),
    "seed torch model": ([*MLP, "seed=-1"], ["seed=-1", "0 to 4294967295"]),
    # Lightning Trainer settings, for the torch models
    "trainer: unknown key": ([*MLP, "+trainer.foo=1"], ["trainer.foo", "not an argument"]),
    "trainer: max_epochs 0": ([*MLP, "trainer.max_epochs=0"],
                              ["trainer.max_epochs", "positive integer", "got 0"]),
    "trainer: devices 0": ([*MLP, "trainer.devices=0"],
                           ["trainer.devices=0", "change or drop trainer.devices"]),
    "trainer: negative devices": ([*MLP, "trainer.devices=-1"], ["trainer.devices=-1", "int > 0"]),
    "trainer: precision": ([*MLP, "trainer.precision=banana"],
                           ["trainer.precision=banana", "Allowed precision values", "32-true"]),
    "trainer: accelerator": ([*MLP, "trainer.accelerator=tpu_x"],
                             ["trainer.accelerator=tpu_x", "cpu", "change or drop"]),
    "trainer: strategy": ([*MLP, "trainer.strategy=foo"],
                          ["trainer.strategy=foo", "ddp", "change or drop trainer.strategy"]),
    # Names that become directories
    "experiment '..'": (["model=knn", "tracking.experiment=.."],
                        ["'..'", "tracking.experiment", "no directory of its own"]),
    "experiment with a line break": (["model=knn", "tracking.experiment='two\nlines'"],
                                     ["control character", "tracking.experiment=<"]),
    "experiment name too long": (["model=knn", f"tracking.experiment={'x' * 256}"],
                                 ["256 bytes", "at most 255", "tracking.experiment=<"]),
}
SETUP = {"lda: more components than columns": four_classes_one_column}


def refused_in_process(overrides: list[str], make_cfg,
                       workdir: Path) -> subprocess.CompletedProcess:
    """What the command would end with: `error: <message>` and exit 1 for a PipelineError."""
    try:
        run(make_cfg(*overrides, *QUICK))
    except PipelineError as error:
        return subprocess.CompletedProcess(overrides, 1, "", f"error: {error}\n")
    return subprocess.CompletedProcess(overrides, 0, "", "")


@pytest.mark.parametrize("name", CASES)
def test_impossible_argument_is_refused_before_any_run(name, make_cfg, workdir):
    overrides, words = CASES[name]
    if name in SETUP:
        SETUP[name](workdir)
    done = refused_in_process(overrides, make_cfg, workdir)
    assert_refused_before_any_work(done, workdir, words)


@pytest.mark.parametrize("overrides, words", [
    (["model=knn", "model.n_neighbors=1000"], ["model.n_neighbors=1000", "or fewer"]),
])
def test_the_command_prints_one_line(overrides, words, run_cli, workdir):
    done = run_cli(*overrides)
    assert "Traceback" not in done.stderr + done.stdout
    assert_refused_before_any_work(done, workdir, words)


def test_limits_are_exact_at_the_limit_the_job_runs(make_cfg, workdir):
    """As many neighbours as training rows, and as many components as columns, are fine."""
    rows = min(len(train) for train, _ in
               StratifiedKFold(2, shuffle=True, random_state=42).split(_X, _y))
    result = run(make_cfg("model=knn", f"model.n_neighbors={rows}", "cv.n_splits=2",
                          "preprocess.reduce=pca", "preprocess.n_components=4", *QUICK))
    assert len(result.folds) == 2 and np.isfinite(result.score)
    assert set(all_runs(workdir)["status"]) == {"FINISHED"}


@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_every_seed_numpy_accepts_passes(seed, make_cfg):
    checks.seed(make_cfg(f"seed={seed}").seed)  # seed=0 is a seed, not "no seed"


def test_batch_larger_than_the_training_part_is_the_whole_part(make_cfg, workdir):
    """Not refused: like a DataLoader's only batch, it is every training row, so the scores are
    those of full-batch training (`model.batch_size=null`)."""
    job = [*MLP, "cv=holdout", "model.validation_fraction=0", *QUICK]
    large = run(make_cfg(*job, "model.batch_size=1000"))
    full = run(make_cfg(*job, "model.batch_size=null"))
    pd.testing.assert_frame_equal(large.folds.drop(columns="fit_time"),
                                  full.folds.drop(columns="fit_time"))


# -- strings in MLflow filters -------------------------------------------------------------

FILTERABLE = ["plain", "it's", 'say "hi"', "back\\slash", "it''s", "two\nlines", "ünïcode",
              "x' or tags.v = 'y", "/tmp/multirun/2026-01-01/10-00-00"]


def test_quoted_values_find_exactly_their_runs(workdir):
    """Per MLflow's parser (no escapes: outer quotes trimmed), each value is matched as is."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'store.db'}")
    experiment = client.create_experiment("quotes", artifact_location=str(workdir / "art"))
    ids = {value: client.create_run(experiment, tags={"v": value}).info.run_id
           for value in FILTERABLE}
    for value, run_id in ids.items():
        found = client.search_runs(
            [experiment], f"tags.v = {tracking.quoted(value)} and attributes.status = 'RUNNING'")
        assert [r.info.run_id for r in found] == [run_id], value


@pytest.mark.parametrize("value", ["both ' and \"", "ends in a backslash\\"])
def test_unquotable_values_are_refused(value, workdir):
    with pytest.raises(PipelineError, match="cannot be searched for in MLflow"):
        tracking.quoted(value)
    assert mark_best(f"sqlite:///{workdir / 'store.db'}", value) is None


@pytest.mark.slow
def test_sweep_and_experiment_named_with_quotes_end_to_end(run_cli, workdir):
    """A sweep in a directory with a quote marks its best job; a second sweep (another quote
    kind) with resume=true finds both jobs FINISHED and marks the best among them."""
    jobs = ["-m", "model=knn", "model.n_neighbors=3,7", "cv.n_splits=3",
            "tracking.experiment=\"Bob's iris\"", *QUICK]
    first = run_cli(*jobs, "hydra.sweep.dir=\"sweeps/it's\"")
    assert first.returncode == 0, first.stderr
    assert "best of 2 job(s)" in first.stdout
    runs = parents(all_runs(workdir))
    assert len(runs) == 2 and set(runs["tags.sweep"]) == {"sweeps/it's"}
    assert (runs["tags.best_in_sweep"] == "true").sum() == 1

    again = run_cli(*jobs, "resume=true", "hydra.sweep.dir='sweeps/\"again\"'")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped:") + again.stderr.count("skipped:") == 2
    assert "best of 2 job(s)" in again.stdout
    runs = parents(all_runs(workdir))
    assert len(runs) == 2 and set(runs["tags.resumed_in"]) == {'sweeps/"again"'}
    import mlflow

    names = {e.name for e in mlflow.search_experiments()} - {"Default"}
    assert names == {"Bob's iris"}

    # Both kinds of quote: no MLflow filter can hold it, so each job refuses it up front.
    both = run_cli("-m", "model=knn", "hydra.sweep.dir='sweeps/it\\'s \"both\"'", *QUICK)
    assert both.returncode == 1 and "Traceback" not in both.stderr, both.stderr
    assert "hydra.sweep.dir" in both.stderr and "cannot be searched for in MLflow" in both.stderr
    assert len(all_runs(workdir)) == 2 + 2 * 3  # the two jobs above and their folds only
