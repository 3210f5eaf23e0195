"""`cv=repeated_kfold`: r rounds of (stratified) k-fold, scored as scikit-learn's
`cross_validate` scores them, run as `repeat-<r>/fold-<i>` in MLflow, in turn, in worker
processes, batched, interrupted or resumed."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets
from sklearn.model_selection import (
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedKFold,
    cross_validate,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipeline import cv, report
from pipeline.entry import describe, run
from pipeline.errors import PipelineError
from tests.conftest import all_runs, children, parents

QUICK = ["plots=false", "refit=false"]
KNN = ["data=wine", "model=knn", "cv=repeated_kfold", "cv.n_splits=3", "cv.n_repeats=2",
       "seed=7", *QUICK]
NAMES = ["repeat-1/fold-1", "repeat-1/fold-2", "repeat-1/fold-3",
         "repeat-2/fold-1", "repeat-2/fold-2", "repeat-2/fold-3"]


def test_scores_equal_cross_validate_in_turn_and_in_workers_and_resume_reuses_them(make_cfg,
                                                                                  workdir):
    result = run(make_cfg(*KNN))
    X, y = datasets.load_wine(return_X_y=True)
    expected = cross_validate(
        Pipeline([("scale", StandardScaler()), ("model", KNeighborsClassifier())]), X, y,
        cv=RepeatedStratifiedKFold(n_splits=3, n_repeats=2, random_state=7),
        scoring="accuracy")["test_score"]
    folds = children(all_runs(workdir), result.run_id)  # in the order of the `fold` param
    np.testing.assert_array_equal(folds["metrics.test_accuracy"].to_numpy(), expected)
    np.testing.assert_array_equal(result.folds["test_accuracy"].to_numpy(), expected)
    assert result.repeats == 2 and list(result.folds.index) == NAMES
    assert list(folds["tags.mlflow.runName"]) == NAMES
    assert list(folds["params.fold"]) == [str(i) for i in range(1, 7)]
    assert list(folds["params.repeat"]) == ["1", "1", "1", "2", "2", "2"]
    assert list(folds["params.fold_in_repeat"]) == ["1", "2", "3"] * 2
    assert set(folds["status"]) == {"FINISHED"}
    assert result.score == pytest.approx(expected.mean())
    assert result.spread == pytest.approx(expected.std())

    parallel = run(make_cfg(*KNN, "cv.n_jobs=2"))
    scores = [c for c in result.folds.columns if c != "fit_time"]
    pd.testing.assert_frame_equal(parallel.folds[scores], result.folds[scores], check_exact=True)
    in_workers = children(all_runs(workdir), parallel.run_id)
    assert list(in_workers["tags.mlflow.runName"]) == NAMES
    assert list(in_workers["params.repeat"]) == list(folds["params.repeat"])

    again = run(make_cfg(*KNN, "resume=true"))
    assert again.run_id in {result.run_id, parallel.run_id} and again.score == result.score
    assert len(parents(all_runs(workdir))) == 2  # nothing new


def test_split_stratifies_where_there_are_classes_and_checks_class_sizes(make_cfg):
    cfg = make_cfg("data=diabetes", "cv=repeated_kfold", "cv.n_repeats=3")
    job, dataset, _ = describe(cfg)
    folds = cv.split(job.scheme, dataset)
    expected = RepeatedKFold(n_splits=5, n_repeats=3, random_state=42).split(dataset.X)
    assert folds.repeats == 3 and len(folds) == 15
    for fold, (train, test) in zip(folds, expected, strict=True):
        np.testing.assert_array_equal(fold.train, train)
        np.testing.assert_array_equal(fold.test, test)
    assert folds.position(6) == (2, 1) and folds.run_name(15) == "repeat-3/fold-5"

    cfg = make_cfg("data=iris", "cv=repeated_kfold", "cv.n_repeats=2", "cv.stratify=false")
    job, iris, _ = describe(cfg)
    unstratified = RepeatedKFold(n_splits=5, n_repeats=2, random_state=42).split(iris.X)
    for fold, (train, _) in zip(cv.split(job.scheme, iris), unstratified, strict=True):
        np.testing.assert_array_equal(fold.train, train)

    def scheme_of(*overrides: str):
        return describe(make_cfg(*overrides))[0].scheme

    with pytest.raises(PipelineError, match=r"cv.n_splits=51: class\(es\) .* fewer rows than"):
        cv.split(scheme_of("data=iris", "cv=repeated_kfold", "cv.n_splits=51"), iris)
    with pytest.raises(PipelineError, match="cv.n_repeats must be an integer of at least 1"):
        cv.split(scheme_of("data=iris", "cv=repeated_kfold", "cv.n_repeats=0"), iris)
    # One round is k-fold, named as k-fold's runs are; repeated holdout's splits are folds.
    once = cv.split(scheme_of("data=iris", "cv=repeated_kfold", "cv.n_repeats=1"), iris)
    assert once.repeats == 1 and once.run_name(5) == "fold-5"
    for fold, (train, _) in zip(once, StratifiedKFold(5, shuffle=True, random_state=42).split(
            iris.X, iris.y), strict=True):
        np.testing.assert_array_equal(fold.train, train)
    assert cv.split(scheme_of("data=iris", "cv=repeated_holdout"), iris).repeats == 1


def test_table_of_many_folds_shows_each_repeats_mean(caplog):
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.8, 1.0, size=(50, 2))
    folds = cv.Folds([cv.Fold(np.arange(2), np.arange(1))] * 50, repeats=10)
    table = pd.DataFrame({"test_accuracy": scores[:, 0], "fit_time": scores[:, 1]},
                         index=pd.Index([folds.run_name(i) for i in range(1, 51)], name="fold"))
    summary = pd.DataFrame([table.mean(), table.std(ddof=0)], index=["mean", "std"])
    per_repeat = scores[:, 0].reshape(10, 5).mean(axis=1)

    lines = report.table(table, summary, "test_accuracy", repeats=10).splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert list(rows) == [f"repeat-{r}" for r in range(1, 11)] + ["mean±std"]
    assert [float(rows[f"repeat-{r}"][0]) for r in range(1, 11)] == pytest.approx(
        per_repeat, abs=5e-4)
    assert rows["mean±std"][0] == f"{scores[:, 0].mean():.3f}±{scores[:, 0].std():.3f}"

    few = report.table(table.iloc[:10], summary, "test_accuracy", repeats=2)
    assert "repeat-2/fold-5" in few and "repeat-1 " not in few  # every fold, by its run's name

    from rich.console import Console

    console = Console(width=100, record=True)
    # report's own table builder, private to it: what print_result shows, without a Result.
    console.print(report._rich_table(  # noqa: SLF001
        table, summary, "test_accuracy", "title", repeats=10))
    shown = console.export_text()
    assert "repeat-10" in shown and "repeat-1/fold-1" not in shown

    result = report.Result(table, summary, "test_accuracy", "wine", "0" * 32, "sqlite:///x",
                           repeats=10)
    caplog.set_level(logging.INFO, logger="pipeline")
    report.print_result(result, SimpleNamespace(name="wine"), "knn", "repeated_kfold")  # logged
    assert ("knn on wine, cv=repeated_kfold, 50 fold(s) (10 repeats of 5; a row per repeat: the "
            "mean of its folds; per-fold rows in the run's folds.csv)") in caplog.text
    assert "repeat-10 " in caplog.text


def test_interrupt_between_folds_keeps_the_finished_ones(make_cfg, workdir, monkeypatch):
    calls = {"n": 0}
    fit = KNeighborsClassifier.fit

    def interrupted_in_repeat_2(self, X, y, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return fit(self, X, y, **kwargs)

    monkeypatch.setattr(KNeighborsClassifier, "fit", interrupted_in_repeat_2)
    with pytest.raises(KeyboardInterrupt, match="its finished fold runs are kept"):
        run(make_cfg(*KNN))
    runs = all_runs(workdir)
    [parent] = parents(runs).itertuples()
    folds = children(runs, parent.run_id)
    assert parent.status == "KILLED"
    assert list(folds["tags.mlflow.runName"]) == NAMES[:4]
    assert list(folds["status"]) == ["FINISHED"] * 3 + ["KILLED"]


BATCHED = ["model=mlp", "data=iris", "trainer.max_epochs=2", "cv=repeated_kfold",
           "cv.n_splits=2", "cv.n_repeats=2", *QUICK]


def test_batched_folds_of_every_repeat_train_as_one_model(make_cfg, workdir, caplog,
                                                         one_torch_thread):
    caplog.set_level(logging.INFO, logger="pipeline")
    together = run(make_cfg(*BATCHED, "cv.batch_folds=true"))
    assert "the 4 folds trained as one batched model" in caplog.text
    alone = run(make_cfg(*BATCHED, "cv.batch_folds=false"))
    scores = [c for c in alone.folds.columns if c != "fit_time"]
    np.testing.assert_allclose(together.folds[scores].to_numpy(float),
                               alone.folds[scores].to_numpy(float), atol=1e-6)
    names = ["repeat-1/fold-1", "repeat-1/fold-2", "repeat-2/fold-1", "repeat-2/fold-2"]
    assert list(together.folds.index) == names
    assert list(children(all_runs(workdir), together.run_id)["tags.mlflow.runName"]) == names


def test_batched_memory_estimate_counts_the_folds_of_every_repeat(make_cfg, monkeypatch):
    from pipeline import models
    from pipeline.models import batched

    cfg = make_cfg(*BATCHED)
    job, dataset, task = describe(cfg)
    template = Pipeline([("scale", StandardScaler()),
                         ("model", models.build(job.model, dataset, task))])
    folds = cv.split(job.scheme, dataset, task)
    one_repeat = sum(len(fold.train) for fold in folds[:2]) * dataset.X.shape[1] * 4 * 3
    monkeypatch.setattr(batched, "MAX_STACKED_BYTES", one_repeat)
    assert batched.decide("auto", template, folds[:2], dataset, task)
    assert not batched.decide("auto", template, folds, dataset, task)
    with pytest.raises(PipelineError, match="held at once would take"):
        batched.decide(True, template, folds, dataset, task)
