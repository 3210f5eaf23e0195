"""No silent wrong answers: data that would make a score meaningless (the target among the
features, a row number, a training part of one class) is refused before any run with one line
naming the column or fold and the fix; what only weakens a score (blank labels dropped, a
score undefined in some folds) is warned about; and what the loader decided is printed and
recorded on the parent run."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets
from sklearn.model_selection import TimeSeriesSplit

from pipeline import cv
from pipeline.data import BUNDLED, bundled, table
from pipeline.entry import describe, run
from pipeline.errors import PipelineError
from tests.conftest import all_runs, assert_refused_before_any_work, store_uri

N = 60


def people(n: int = N, seed: int = 0) -> pd.DataFrame:
    """A numeric and a text feature, a two-class text label."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.choice(["u", "v", "w"], n),
                         "label": rng.choice(["yes", "no"], n)})


def write(frame: pd.DataFrame, workdir: Path, name: str = "t.csv", index: bool = False) -> str:
    frame.to_csv(workdir / name, index=index)
    return name


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "pipeline" and r.levelno == logging.WARNING]


def three_classes(frame: pd.DataFrame) -> pd.DataFrame:
    labels = np.array(["red", "green", "blue"])[np.arange(len(frame)) * 7 % 3]
    return frame.assign(label=labels, code=pd.factorize(labels)[0])


COPIES = {  # the leaking column, and the table that holds it
    "exact copy of a text label": ("copy", lambda f: f.assign(copy=f["label"])),
    "'yes'/'no' as 1/0": ("yes", lambda f: f.assign(yes=(f["label"] == "yes").astype(int))),
    "label-encoded copy of 3 classes": ("code", three_classes),
    "copy of a continuous target": ("again", lambda f: f.assign(label=f["a"] * 3 + 1,
                                                                again=f["a"] * 3 + 1)),
}


@pytest.mark.parametrize("case", COPIES)
def test_target_copy_or_recoding_among_the_features_is_refused(workdir, case):
    column, make = COPIES[case]
    frame = make(people())
    features = [c for c in frame.columns if c not in ("label", column)]
    with pytest.raises(PipelineError) as refused:
        table(write(frame, workdir), "label")
    message = str(refused.value)
    assert f"feature {column!r}" in message and "target 'label'" in message
    assert f"data.features=[{','.join(features)}]" in message


def test_near_copies_and_continuous_look_alikes_are_kept(workdir):
    """One cell off is a feature (however telling); a continuous target and a feature with a
    distinct value in every row are one-to-one without one being a copy of the other."""
    frame = people()
    near = frame["label"].copy()
    near.iloc[0] = "no" if near.iloc[0] == "yes" else "yes"
    assert table(write(frame.assign(near=near), workdir), "label").X.shape == (N, 3)
    regression = frame.assign(label=frame["a"] * 3 + 1, scaled=frame["a"] * 3 + 2)
    dataset = table(write(regression, workdir), "label")
    assert dataset.task == "regression" and "scaled" in dataset.X.columns


def test_integer_class_target_with_blanks_stays_classification(workdir, caplog):
    frame = people().drop(columns="label")
    grade = np.arange(N) % 4 + 1.0
    blanks = [3, 17, 40]
    grade[blanks] = np.nan
    caplog.set_level(logging.INFO, logger="pipeline")
    dataset = table(write(frame.assign(grade=grade), workdir), "grade")
    assert dataset.task == "classification"
    assert pd.api.types.is_integer_dtype(dataset.y) and list(dataset.classes) == [1, 2, 3, 4]
    assert len(dataset.y) == len(dataset.X) == N - len(blanks)
    line = "dropped 3 row(s) with no value in target 'grade'"
    assert any(line in message for message in warnings_logged(caplog))
    assert any(line in note for note in dataset.notes)


IDENTIFIERS = {  # the column, its kind's words, how the table is written
    "pandas' index (to_csv index=True)": ("Unnamed: 0", "row number", True),
    "row numbers 1..n in any order": ("x", "row number", False),
    "a timestamp rising row by row": ("seconds", "counter or timestamp", False),
    "distinct integers named as an identifier": ("customerId", "identifier", False),
}


def with_identifier(column: str) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    values = {"x": rng.permutation(N) + 1, "seconds": np.cumsum(rng.integers(1, 600, N)),
              "customerId": rng.choice(10**9, N, replace=False)}
    frame = people()
    return frame if column not in values else frame.assign(**{column: values[column]})


@pytest.mark.parametrize("case", IDENTIFIERS)
def test_numeric_identifier_among_the_features_is_refused(workdir, case):
    column, kind, index = IDENTIFIERS[case]
    path = write(with_identifier(column), workdir, index=index)
    with pytest.raises(PipelineError) as refused:
        table(path, "label")
    message = str(refused.value)
    assert f"column {column!r}" in message and kind in message
    assert "data.features=[a,b]" in message and "list it in data.features to keep it" in message


def test_identifier_listed_in_data_features_is_kept_with_a_warning(workdir, caplog):
    path = write(with_identifier("customerId"), workdir)
    dataset = table(path, "label", features=["a", "b", "customerId"])
    assert "customerId" in dataset.X.columns
    [warning] = warnings_logged(caplog)
    assert "'customerId'" in warning and "kept because data.features lists it" in warning


def test_integer_columns_that_are_not_identifiers_are_kept(workdir):
    rng = np.random.default_rng(2)
    frame = people().assign(count=rng.choice(10**6, N, replace=False),  # distinct, unordered
                            level=rng.integers(0, 5, N),  # repeated codes
                            price=np.linspace(1.5, 99.5, N))  # rising, but not integers
    dataset = table(write(frame, workdir), "label")
    assert {"count", "level", "price"} <= set(dataset.X.columns)
    assert not [note for note in dataset.notes if note.startswith("warning:")]


def test_cli_refuses_pandas_index_column_before_any_run(run_cli, workdir):
    write(people(), workdir, "indexed.csv", index=True)
    done = run_cli("data=csv", "data.path=indexed.csv", "data.target=label", "model=knn")
    assert_refused_before_any_work(done, workdir, ["'Unnamed: 0'", "row number",
                                                   "index=False", "data.features=[a,b]"])


def sorted_labels(workdir: Path) -> str:
    return write(people().sort_values("label", ignore_index=True), workdir)


def one_group_holds_a_class(workdir: Path) -> str:
    frame = people()
    frame["plot"] = np.where(frame["label"] == "no", 0, np.arange(N) % 4 + 1)
    return write(frame, workdir)


ONE_CLASS_SPLITS = {
    "timeseries on rows sorted by label": (sorted_labels, ["cv=timeseries"],
                                           ["fold 1", "sorted by the target", "cv=kfold"]),
    "group_kfold with a group holding a class": (
        one_group_holds_a_class, ["cv=group_kfold", "data.groups=plot"],
        ["fold", "'yes'", "data.groups", "cv=kfold"]),
}


@pytest.mark.parametrize("case", ONE_CLASS_SPLITS)
def test_training_part_of_one_class_is_refused_before_any_run(make_cfg, workdir, case):
    setup, overrides, words = ONE_CLASS_SPLITS[case]
    cfg = make_cfg("data=csv", f"data.path={setup(workdir)}", "data.target=label", "model=knn",
                   *overrides)
    with pytest.raises(PipelineError, match="training part of fold .* single class") as refused:
        run(cfg)
    assert all(word in str(refused.value) for word in words), refused.value
    assert all_runs(workdir).empty


def test_leave_one_out_warns_once_that_roc_auc_is_undefined_in_every_fold(make_cfg):
    dataset = bundled("iris")
    folds = cv.split(describe(make_cfg("cv=loocv"))[0].scheme, dataset)
    [note] = folds.notes
    assert "test part of every fold (150)" in note and "test_roc_auc is undefined" in note


def test_undefined_roc_auc_is_warned_and_decisions_are_recorded(make_cfg, workdir, caplog):
    """Under cv=timeseries, a test part of one class leaves roc_auc undefined there: a warning
    before the run names the folds, one after it says how many folds the mean covers, and what
    was decided (dropped rows, task, the warning) is on the parent run as decisions.txt."""
    frame = people()
    frame.loc[15:29, "label"] = "yes"  # the test part of timeseries' fold 1 (3 splits of 60)
    blank = frame.iloc[:2].assign(label=np.nan)
    path = write(pd.concat([frame, blank], ignore_index=True), workdir)
    caplog.set_level(logging.INFO, logger="pipeline")
    result = run(make_cfg("data=csv", f"data.path={path}", "data.target=label", "model=knn",
                          "cv=timeseries", "cv.n_splits=3", "plots=false", "refit=false"))

    one_class = [len(set(frame["label"].iloc[test])) < 2
                 for _, test in TimeSeriesSplit(n_splits=3).split(frame)]
    assert result.folds["test_roc_auc"].isna().tolist() == one_class and any(one_class)
    undefined = [i for i, lacking in enumerate(one_class, 1) if lacking]
    listed = ", ".join(map(str, undefined))
    warnings = warnings_logged(caplog)
    planned = f"test part of {len(undefined)} of 3 folds ({listed})"
    assert any(planned in w for w in warnings), warnings
    assert any(f"test_roc_auc is undefined (NaN) in {len(undefined)} of 3 folds" in w
               for w in warnings), warnings

    from mlflow import MlflowClient

    recorded = Path(MlflowClient(store_uri(workdir)).download_artifacts(
        result.run_id, "decisions.txt", str(workdir))).read_text()
    assert "dropped 2 row(s) with no value in target 'label'" in recorded
    assert "task classification, inferred from target 'label'" in recorded
    assert planned in recorded


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_data_sets_trip_no_check(make_cfg, workdir, name):
    """Each bundled set, as a CSV file, loads with no warning and its own task, and its
    default folds (stratified 5-fold) give no warning either."""
    frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
    dataset = table(write(frame, workdir, f"{name}.csv"), "target")
    assert dataset.task == BUNDLED[name][1]
    assert dataset.X.shape == (len(frame), frame.shape[1] - 1)
    assert not [note for note in dataset.notes if note.startswith("warning:")]
    scheme = describe(make_cfg())[0].scheme
    assert cv.split(scheme, dataset).notes == ()
    assert cv.split(scheme, bundled(name)).notes == ()
