"""Nested cross-validation (cv.outer): the search inside each outer fold never sees its test
part, its runs nest under the outer folds, and the outer scores are the chosen model's."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline import tracking
from tests.conftest import all_runs, assert_refused_before_any_work, parents

# 2 outer x 3 trials x 2 inner folds of small forests on iris: 12 fits and 2 refits.
SMALL = ["hparams_search=random_forest_optuna", "cv.outer=kfold", "cv.outer_splits=2",
         "cv.n_splits=2", "hydra.sweeper.n_trials=3", "plots=false",
         "hydra.sweeper.params={model.n_estimators:'int(interval(3, 8))',"
         "model.max_depth:'choice(1, 2, 4)'}"]
CHOSEN = ["n_estimators", "max_depth", "min_samples_leaf", "max_features"]


def test_nested_job_keeps_outer_test_rows_from_the_search(run_cli, workdir, monkeypatch):
    """One command, one job: every fit and every scoring of the inner search holds rows of the
    outer training part only (on the indices), the runs nest parent > outer folds > trials,
    and each outer score is the chosen configuration's, refit on its training part."""
    from pipeline import tasks

    fitted, scored = [], []
    fit, score = tasks.Task.fit, tasks.Task.score

    def recording_fit(self, estimator, dataset, rows):
        fitted.append(np.sort(rows))
        return fit(self, estimator, dataset, rows)

    def recording_score(self, estimator, dataset, fold, names, average):
        scored.append(np.sort(np.concatenate([fold.train, fold.test])))
        return score(self, estimator, dataset, fold, names, average)

    monkeypatch.setattr(tasks.Task, "fit", recording_fit)
    monkeypatch.setattr(tasks.Task, "score", recording_score)
    done = run_cli(*SMALL)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert ("2 outer folds (cv.outer=kfold) x 3 trials x 2 inner folds (cv=kfold) = 12 fits"
            in output)

    X, y = load_iris(return_X_y=True)
    outer = list(StratifiedKFold(2, shuffle=True, random_state=42).split(X, y))
    per_fold = 3 * 2 + 1  # the trials' inner fits, then the refit
    assert len(fitted) == len(scored) == 2 * per_fold
    for i, (train, test) in enumerate(outer):
        inner = [np.sort(train[part]) for part, _ in
                 StratifiedKFold(2, shuffle=True, random_state=42).split(X[train], y[train])]
        *search, refit = fitted[i * per_fold:(i + 1) * per_fold]
        for rows in search + scored[i * per_fold:(i + 1) * per_fold - 1]:
            assert not np.intersect1d(rows, test).size  # no outer test row, fit or scored
            assert np.isin(rows, train).all()
        # Each trial fits the inner folds of the outer training part (the cv option's splitter).
        assert all(np.array_equal(rows, inner[j % 2]) for j, rows in enumerate(search))
        np.testing.assert_array_equal(refit, np.sort(train))

    runs = all_runs(workdir)
    assert set(runs["status"]) == {"FINISHED"} and len(runs) == 1 + 2 + 2 * 3
    [top] = [row for _, row in parents(runs).iterrows()]  # one job, not a sweep of trials
    assert top["tags.mlflow.runName"] == "random_forest-nested-kfold"
    assert top["tags.nested"] == "true"
    folds = runs[runs["tags.mlflow.parentRunId"] == top["run_id"]].sort_values("params.fold")
    assert list(folds["tags.mlflow.runName"]) == ["fold-1", "fold-2"]
    for (_, fold), (train, test) in zip(folds.iterrows(), outer, strict=True):
        trials = runs[runs["tags.mlflow.parentRunId"] == fold["run_id"]].sort_values(
            "params.trial")  # of equal inner means, the first trial is the best
        assert list(trials["tags.mlflow.runName"]) == ["trial-0", "trial-1", "trial-2"]
        best = trials.loc[trials["metrics.inner_accuracy_mean"].idxmax()]
        assert fold["metrics.inner_best_accuracy"] == best["metrics.inner_accuracy_mean"]
        chosen = {key: yaml.safe_load(best[f"params.model.{key}"]) for key in CHOSEN}
        assert chosen == {key: yaml.safe_load(fold[f"params.best.model.{key}"])
                          for key in CHOSEN}
        reference = make_pipeline(StandardScaler(), RandomForestClassifier(
            **chosen, random_state=42)).fit(X[train], y[train])
        assert fold["metrics.test_accuracy"] == pytest.approx(
            accuracy_score(y[test], reference.predict(X[test])))
    nested, inner_best = (folds[f"metrics.{key}"].mean()
                          for key in ("test_accuracy", "inner_best_accuracy"))
    assert top["metrics.test_accuracy_mean"] == pytest.approx(nested)
    assert top["metrics.inner_best_accuracy_mean"] == pytest.approx(inner_best)
    assert f"nested test_accuracy: {nested:.4f}" in output
    assert f"inner best accuracy: {inner_best:.4f}" in output


@pytest.mark.parametrize("args, words", [
    (["hparams_search=random_forest_optuna", "cv.outer=nope"], ["cv.outer=nope", "kfold"]),
    (["cv.outer=kfold"], ["cv.outer=kfold", "hparams_search=", "random_forest_optuna"]),
    (["-m", "hparams_search=svm_optuna", "cv.outer=kfold"], ["cv.outer=kfold", "-m"]),
])
def test_nested_mistakes_are_refused_in_one_line(run_cli, workdir, args, words):
    assert_refused_before_any_work(run_cli(*args), workdir, words)


def test_unset_nested_keys_and_n_jobs_leave_the_config_hash_alone():
    # `resume=true` finds a job by this digest: a job recorded before `cv.outer` existed, or
    # run with its folds in other processes, computed the same thing.
    before = {"seed": 42, "cv": {"name": "kfold", "n_splits": 5}}
    now = {"seed": 42, "cv": {"name": "kfold", "n_splits": 5, "n_jobs": 2, "outer": None,
                              "outer_splits": None}}
    assert tracking.config_hash(before) == tracking.config_hash(now)
    nested = {**now, "cv": {**now["cv"], "outer": "kfold"}}
    assert tracking.config_hash(nested) != tracking.config_hash(now)
    assert tracking.config_hash({**now, "cv": {**now["cv"], "n_splits": 3}}) != \
        tracking.config_hash(now)
