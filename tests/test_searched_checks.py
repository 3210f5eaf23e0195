"""A search's values checked before any run: every bound of every searched range and every
choice, built as a trial builds it, against the smallest part it will be fitted on (the inner
training parts in nested CV). And a search whose every trial is NaN says so in one line,
without numpy's warnings before it."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import StratifiedKFold

from hydra_plugins.pipeline_optuna_sweeper.params import search_space
from pipeline import nested
from pipeline.entry import describe
from pipeline.errors import PipelineError
from pipeline.spec import Search
from tests.conftest import all_runs, assert_refused_before_any_work, parents

# 20 rows, 2 outer folds of 10 training rows, 2 inner folds of 5: the issue's case.
SMALL = ["data=synthetic", "data.n_samples=20", "plots=false"]
TWO_FOLDS = ("cv.n_splits=2",)
KNN_PRESET = """\
# @package _global_
defaults:
  - override /model: knn
  - override /hydra/sweeper: optuna
  - override /hydra/sweeper/sampler: tpe

hydra:
  mode: MULTIRUN
  sweeper:
    direction: ${direction:}
    study_name: knn
    n_trials: 3
    n_jobs: 1
    sampler:
      seed: ${seed}
    params:
      model.n_neighbors: int(interval(6, 9))
"""


def smallest_inner_part(n_samples: int) -> int:
    """The smallest inner training part of the synthetic data's 2 x 2 nested folds, as
    scikit-learn's stratified splitters (seed 42) make them."""
    X, y = make_classification(n_samples=n_samples, n_features=20, n_informative=10,
                               n_classes=2, random_state=42)
    splitter = StratifiedKFold(2, shuffle=True, random_state=42)
    return min(len(inner) for train, _ in splitter.split(X, y)
               for inner, _ in splitter.split(X[train], y[train]))


def nested_job(make_cfg, params: dict[str, str], *overrides: str, n_trials: int = 3,
               inner: tuple[str, ...] = TWO_FOLDS):
    """A nested job (2 outer kfold folds, each split by the job's cv: `inner`) whose search is
    `params` (the preset's syntax), with its data and task: what `cv.outer=kfold` and an
    `hparams_search` preset describe."""
    outer = describe(make_cfg(*SMALL, *TWO_FOLDS))[0].scheme
    job, dataset, task = describe(make_cfg(*SMALL, *overrides, *inner))
    space, fixed = search_space([f"{key}={value}" for key, value in params.items()])
    search = Search(space, fixed, n_trials, {"_target_": "optuna.samplers.RandomSampler",
                                             "seed": 0}, params)
    return dataclasses.replace(job, outer=outer, search=search), dataset, task


def test_the_issues_case_is_one_line_before_any_run(run_cli, workdir):
    """n_neighbors searched in 6..9 on inner training parts of 5 rows: one line naming the key,
    its range, the value, the part and the fix, exit 1, and no MLflow run (it crashed with
    scikit-learn's traceback and 3 FAILED runs)."""
    presets = workdir / "presets" / "hparams_search"
    presets.mkdir(parents=True)
    (presets / "knn_small.yaml").write_text(KNN_PRESET)
    rows = smallest_inner_part(20)
    assert rows == 5
    done = run_cli(f"hydra.searchpath=[file://{presets.parent}]", "hparams_search=knn_small",
                   "cv.outer=kfold", "cv.outer_splits=2", *SMALL, *TWO_FOLDS)
    assert_refused_before_any_work(done, workdir, [
        "hparams_search: model.n_neighbors may be 9 (range 6..9)",
        f"more than the {rows} rows of the smallest inner training part (2 inner folds of "
        "cv=kfold within 2 outer folds)", f"narrow the range to at most {rows}",
        "fewer inner folds"])


@pytest.mark.parametrize("params, overrides, words", [
    # a categorical choice too large for the inner parts
    ({"model.n_neighbors": "choice(3, 12)"}, ["model=knn"],
     ["model.n_neighbors may be 12 (choices 3, 12)", "5 rows of the smallest inner training",
      "keep only choices of at most 5"]),
    # a choice the model's constructor refuses, found as a trial would build it
    ({"model.weights": "choice(uniform, banana)"}, ["model=knn"],
     ["model.weights may be banana (choices uniform, banana)", "refused", "weights"]),
    # a reducer's count, bounded by the inner part's rows (20 columns, 5 rows)
    ({"preprocess.n_components": "int(interval(2, 8))"},
     ["model=knn", "model.n_neighbors=3", "preprocess.reduce=pca"],
     ["preprocess.n_components may be 8 (range 2..8)", "min(rows, columns) = 5",
      "smallest inner training part", "narrow the range to at most 5"]),
    # a searched choice that brings in another key's count the part cannot hold
    ({"preprocess.reduce": "choice(none, pca)"},
     ["model=knn", "model.n_neighbors=3", "preprocess.n_components=8"],
     ["preprocess.reduce may be pca (choices none, pca)",
      "and then preprocess.n_components=8 is more than PCA can keep"]),
])
def test_an_impossible_searched_value_is_refused_before_any_run(make_cfg, workdir, params,
                                                                overrides, words):
    job, dataset, task = nested_job(make_cfg, params, *overrides)
    with pytest.raises(PipelineError) as refused:
        nested.run(job, dataset, task)
    message = str(refused.value)
    assert message.startswith("hparams_search: ") and "\n" not in message, message
    assert all(word in message for word in words), message
    assert not (Path(workdir) / "outputs").exists()  # no store, so no run


def test_a_value_no_trial_changes_is_refused_in_the_jobs_own_words(make_cfg, workdir):
    """preprocess.n_components=8 is too many for inner parts of 5 rows whatever n_neighbors the
    search tries: the line is about that key, not about the search."""
    job, dataset, task = nested_job(make_cfg, {"model.n_neighbors": "range(1, 3)"},
                                    "model=knn", "preprocess.reduce=pca",
                                    "preprocess.n_components=8")
    with pytest.raises(PipelineError) as refused:
        nested.run(job, dataset, task)
    message = str(refused.value)
    assert message.startswith("preprocess.n_components=8 is more than PCA can keep"), message
    assert "smallest inner training part" in message and "or fewer" in message
    assert not (Path(workdir) / "outputs").exists()


def test_a_possible_range_runs_and_values_no_trial_fits_are_not_refused(make_cfg, workdir):
    """n_neighbors in 1..3 on inner parts of 3 rows runs. The untuned n_neighbors (7, more
    than the 6 rows of an outer training part) and n_components (8, more than PCA keeps of 3
    rows) are never fitted, the search sets them in every trial (the second as the preset's
    fixed value, 2), so neither is refused."""
    rows = smallest_inner_part(12)
    assert rows == 3
    job, dataset, task = nested_job(
        make_cfg, {"model.n_neighbors": f"range(1, {rows + 1})", "preprocess.n_components": "2"},
        "model=knn", "model.n_neighbors=7", "preprocess.reduce=pca", "preprocess.n_components=8",
        "data.n_samples=12", n_trials=2)
    result = nested.run(job, dataset, task)
    assert np.isfinite(result.score)
    runs = all_runs(workdir)
    assert set(runs["status"]) == {"FINISHED"} and len(runs) == 1 + 2 + 2 * 2
    chosen = runs["params.best.model.n_neighbors"].dropna().astype(int)
    assert len(chosen) == 2 and chosen.between(1, rows).all()
    assert set(runs["params.best.preprocess.n_components"].dropna()) == {"2"}


def test_every_trial_nan_is_one_error_and_no_numpy_warning(make_cfg, workdir):
    """r2 is undefined on leave-one-out's one-row test parts: every trial is NaN, and the job
    ends with its one line, with no "Mean of empty slice" before it."""
    job, dataset, task = nested_job(
        make_cfg, {"model.n_neighbors": "range(1, 3)"}, "model=knn", "data.task=regression",
        "data.n_samples=8", "objective=r2", n_trials=2, inner=("cv=loocv",))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(PipelineError, match="no trial gave a finite inner r2"):
            nested.run(job, dataset, task)
    numpy_noise = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not numpy_noise, [str(w.message) for w in numpy_noise]
    assert list(parents(all_runs(workdir))["status"]) == ["FAILED"]
