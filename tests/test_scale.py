"""Big tables: data held once as float32, Parquet as CSV, and the stages that would run for hours
refused or sampled, saying so."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.datasets import make_classification
from sklearn.impute import SimpleImputer

from pipeline import cv, data, plots, preprocessing, tasks
from pipeline.entry import run
from pipeline.errors import PipelineError
from tests.conftest import all_runs, store_uri

QUICK = ("plots=false", "refit=false")


def table_file(workdir: Path, rows: int = 120) -> pd.DataFrame:
    """A generated classification table with a float, an integer and a timestamp column."""
    X, y = make_classification(n_samples=rows, n_features=4, n_informative=3, n_redundant=0,
                               random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame["count"] = np.arange(rows) % 7  # integers: kept as such
    # Seconds since 1970 within one hour: float32 steps by 128 s there.
    frame["seen"] = 1.7e9 + np.random.default_rng(0).uniform(0, 3600, rows)
    frame["label"] = np.where(y == 1, "yes", "no")
    return frame


def test_generated_data_is_held_as_one_float32_block_unless_asked_for_float64():
    dataset = data.synthetic(n_samples=60, n_features=5, random_state=0)
    assert set(dataset.X.dtypes) == {np.dtype("float32")}
    X, _ = make_classification(n_samples=60, n_features=5, n_informative=5, n_redundant=0,
                               flip_y=0.0, random_state=0)
    np.testing.assert_array_equal(dataset.X.to_numpy(), X.astype(np.float32))
    wide = data.synthetic(n_samples=60, n_features=5, random_state=0, dtype="float64")
    np.testing.assert_array_equal(wide.X.to_numpy(), X)
    with pytest.raises(PipelineError, match="data.dtype='float16' is not one of"):
        data.synthetic(dtype="float16")


def test_preprocessing_and_the_torch_model_keep_float32_without_copying():
    import torch

    from pipeline.models.tensors import as_tensor

    dataset = data.synthetic(n_samples=80, n_features=6, random_state=0)
    task = tasks.of(dataset.task)
    columns = preprocessing.build(dataset, task=task).fit_transform(dataset.X)
    assert columns.dtype == np.float32
    tensor = as_tensor(columns, torch.float32)
    assert tensor.data_ptr() == columns.ctypes.data  # the same memory, not a copy


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_floats_become_float32_integers_and_coarse_floats_stay(workdir, suffix):
    frame = table_file(workdir)
    path = workdir / f"t{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    dataset = data.table(str(path), "label")
    dtypes = dataset.X.dtypes.astype(str).to_dict()
    assert dtypes == {"a": "float32", "b": "float32", "c": "float32", "d": "float32",
                      "count": "int64", "seen": "float64"}
    assert list(dataset.X.columns) == ["a", "b", "c", "d", "count", "seen"]
    assert any("kept as float64" in note and "seen" in note for note in dataset.notes)
    np.testing.assert_array_equal(dataset.X["a"].to_numpy(), frame["a"].to_numpy(np.float32))
    assert data.table(str(path), "label", dtype="float64").X["a"].dtype == np.float64


def test_parquet_reads_into_the_same_dataset_as_the_csv_of_the_same_table(workdir):
    # Parquet is handed from Arrow to pandas column by column (no consolidated float64 frame
    # beside the Arrow table): the Dataset, its dtypes and the loader's notes are those of
    # the CSV path, blanks included.
    frame = table_file(workdir)
    frame.loc[[3, 40], "b"] = np.nan  # blanks in a float feature: imputed later
    frame.loc[[5, 77], "label"] = None  # rows without a target: dropped, with a note
    frame["colour"] = np.where(frame["a"] > 0, "red", "blue")  # text: a category
    frame.to_csv(workdir / "same.csv", index=False)
    frame.to_parquet(workdir / "same.parquet")
    from_csv = data.table(str(workdir / "same.csv"), "label")
    from_parquet = data.table(str(workdir / "same.parquet"), "label")
    assert from_parquet.X.dtypes.astype(str).to_dict() == {
        "a": "float32", "b": "float32", "c": "float32", "d": "float32", "count": "int64",
        "seen": "float64", "colour": "object"}
    pd.testing.assert_frame_equal(from_parquet.X, from_csv.X)
    pd.testing.assert_series_equal(from_parquet.y, from_csv.y)
    assert from_parquet.notes == from_csv.notes
    assert any("dropped 2 row(s)" in note for note in from_parquet.notes)
    assert from_parquet.categorical == from_csv.categorical == ("colour",)
    np.testing.assert_array_equal(from_parquet.X["b"].to_numpy(),
                                  frame["b"].drop(index=[5, 77]).to_numpy(np.float32))


def test_parquet_through_data_csv_scores_as_the_csv_of_the_same_table(make_cfg, workdir):
    frame = table_file(workdir).drop(columns=["seen"])
    frame.to_csv(workdir / "same.csv", index=False)
    frame.to_parquet(workdir / "same.parquet")
    common = ("data=csv", "data.target=label", "model=naive_bayes", "cv.n_splits=3", *QUICK)
    from_csv = run(make_cfg(*common, "data.path=same.csv"))
    from_parquet = run(make_cfg(*common, "data.path=same.parquet"))
    scores = [c for c in from_csv.folds.columns if c.startswith(("test_", "train_", "val_"))]
    pd.testing.assert_frame_equal(from_csv.folds[scores], from_parquet.folds[scores])
    assert from_csv.folds[scores].notna().all().all() and from_csv.score > 0.7


def test_leave_one_out_on_a_big_table_is_refused_before_any_fit(make_cfg, workdir,
                                                                 monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("a fold was fitted")

    monkeypatch.setattr(tasks.Task, "fit", no_fit)
    rows = cv.MAX_FOLDS + 1
    cfg = make_cfg("data=synthetic", f"data.n_samples={rows}", "model=knn", "cv=loocv")
    with pytest.raises(PipelineError) as refused:
        run(cfg)
    message = str(refused.value)
    assert f"cv=loocv on synthetic's {rows} rows would run {rows} folds" in message
    assert "cv=kfold cv.n_splits=10" in message
    assert all_runs(workdir).empty


def test_a_kernel_svm_on_a_big_table_is_refused_and_a_slow_one_warned(make_cfg, workdir):
    refused_cfg = make_cfg("data=synthetic", "data.n_samples=90000", "data.n_features=50",
                           "model=svm")
    with pytest.raises(PipelineError, match=r"model=svm \(SVC\) on training parts of up to "
                                            r"72000 rows: .* 3 hours .*model=logistic"):
        run(refused_cfg)
    assert all_runs(workdir).empty

    from sklearn.svm import SVC

    dataset = data.synthetic(n_samples=20000, n_features=50, random_state=0)
    folds = cv.Folds([cv.Fold(np.arange(16000), np.arange(16000, 20000))] * 5)
    cv.check_cost(SVC(), dataset, folds, "svm")  # about 7 minutes: warned, noted
    [note] = folds.notes
    assert note.startswith("warning: model=svm (SVC)") and "minutes" in note


def test_sampled_importance_and_figures_say_they_sampled(make_cfg, workdir, monkeypatch,
                                                         caplog):
    monkeypatch.setattr(plots.figure_data, "PERMUTATION_ROWS", 20)
    monkeypatch.setattr(plots.draw, "CURVE_POINTS", 5)
    caplog.set_level(logging.INFO, logger="pipeline")
    result = run(make_cfg("data=synthetic", "data.n_samples=200", "model=naive_bayes",
                          "plots=[importance,roc]", "refit=false", "cv.n_splits=2"))
    sampled = Path(MlflowClient(store_uri(workdir)).download_artifacts(
        result.run_id, "plots/sampled.txt", str(workdir))).read_text()
    assert "permutation importance on a seeded sample of 20 of each fold's 100 test rows" in sampled
    assert "curves drawn through 5 of their up to" in sampled
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("figures:")]
    assert len(logged) == 2  # once a job, not once a fold
    figure = plots.importance_figure(pd.DataFrame([{"a": 0.1}]), "permutation", 20)
    assert "20 sampled rows" in figure.axes[0].get_xlabel()


def test_regression_scatter_draws_a_sample_of_the_points(make_cfg, workdir, monkeypatch):
    monkeypatch.setattr(plots.figures, "FIGURE_POINTS", 30)
    drawn = []
    original = plots.predicted_vs_actual_figure
    monkeypatch.setattr(plots.draw, "predicted_vs_actual_figure",
                        lambda y, p, shown="": drawn.append((len(y), shown)) or original(y, p,
                                                                                         shown))
    result = run(make_cfg("data=synthetic", "data.task=regression", "data.n_samples=100",
                          "model=knn", "plots=[regression]", "refit=false", "cv.n_splits=2"))
    assert drawn == [(30, ", 30 of 50 rows")] * 2
    sampled = Path(MlflowClient(store_uri(workdir)).download_artifacts(
        result.run_id, "plots/sampled.txt", str(workdir))).read_text()
    assert "seeded sample of 30 of each fold's 50 test rows" in sampled


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_median_imputer_matches_scikit_learn(dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(101, 5)).astype(dtype)
    X[rng.random(X.shape) < 0.2] = np.nan
    X[:, 2] = np.nan  # missing in every row
    for keep in (True, False):
        ours = preprocessing.SimpleImputer(strategy="median", keep_empty_features=keep)
        reference = SimpleImputer(strategy="median", keep_empty_features=keep)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # keep=False: the column is dropped
            np.testing.assert_array_equal(ours.fit_transform(X), reference.fit_transform(X))
        np.testing.assert_array_equal(ours.statistics_, reference.statistics_)
        assert ours.statistics_.dtype == reference.statistics_.dtype
    for rows in (100, 101):  # nothing missing: one partition per column, and no mask
        complete = rng.normal(size=(rows, 4)).astype(dtype)
        ours = preprocessing.SimpleImputer(strategy="median").fit(complete[::2])
        reference = SimpleImputer(strategy="median").fit(complete[::2])
        np.testing.assert_array_equal(ours.statistics_, reference.statistics_)
        np.testing.assert_array_equal(ours.transform(X[:, :4]), reference.transform(X[:, :4]))
        copied = ours.transform(complete)
        np.testing.assert_array_equal(copied, complete)
        assert not np.shares_memory(copied, complete)



def test_the_standard_scaler_matches_scikit_learn_bit_for_bit(monkeypatch):
    from sklearn.preprocessing import StandardScaler

    monkeypatch.setattr(preprocessing, "CHUNK_BYTES", 64)  # chunks of a few rows
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for width in (1, 2, 7):  # a single column is summed pairwise: scikit-learn's own fit
            X = (rng.normal(size=(203, width)) * rng.uniform(0.1, 1e3, width)
                 + rng.uniform(-1e4, 1e4, width)).astype(dtype)
            X[:, 0] = 3.0  # a constant column: scale 1
            with_nan = X.copy()
            with_nan[5, -1] = np.nan
            for table in (X, np.asfortranarray(X), with_nan):
                ours = preprocessing.StandardScaler().fit(table)
                reference = StandardScaler().fit(table)
                for name in ("mean_", "var_", "scale_", "n_samples_seen_"):
                    np.testing.assert_array_equal(getattr(ours, name), getattr(reference, name))
                    assert type(getattr(ours, name)) is type(getattr(reference, name))
                np.testing.assert_array_equal(ours.transform(table), reference.transform(table))
