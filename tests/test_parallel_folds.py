"""`cv.n_jobs`: folds fit in joblib worker processes score exactly as one after another (and as
scikit-learn's `cross_validate`), and the job's process records the same runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn import datasets
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.entry import run
from tests.conftest import all_runs, assert_refused_before_any_work, children, parents, store_uri

QUICK = ["plots=false", "refit=false"]


@pytest.mark.parametrize(("data", "model", "reference", "metric"), [
    # A forest's own n_jobs=-1 is held to each worker's share of the cores: same trees.
    ("wine", ["model=random_forest", "model.n_jobs=-1"], RandomForestClassifier(random_state=42),
     "accuracy"),
    ("wine", ["model=knn"], KNeighborsClassifier(), "accuracy"),
    ("diabetes", ["model=ols"], LinearRegression(), "r2"),
], ids=["random_forest", "knn", "ols"])
def test_folds_in_two_workers_score_as_in_turn_and_as_cross_validate(make_cfg, data, model,
                                                                     reference, metric):
    in_turn = run(make_cfg(f"data={data}", *model, *QUICK))
    parallel = run(make_cfg(f"data={data}", *model, *QUICK, "cv.n_jobs=2"))
    scores = [c for c in in_turn.folds.columns if c != "fit_time"]
    pd.testing.assert_frame_equal(parallel.folds[scores], in_turn.folds[scores], check_exact=True)
    pd.testing.assert_frame_equal(parallel.summary[scores], in_turn.summary[scores],
                                  check_exact=True)

    X, y = getattr(datasets, f"load_{data}")(return_X_y=True)
    splitter = (StratifiedKFold if metric == "accuracy" else KFold)(5, shuffle=True,
                                                                    random_state=42)
    expected = cross_validate(Pipeline([("scale", StandardScaler()), ("model", reference)]),
                              X, y, cv=splitter, scoring=metric, n_jobs=2)["test_score"]
    # The pipeline's preprocessing (imputer, then scaler, by column) rounds as scaling alone
    # does up to the last bits of a regression's scores.
    np.testing.assert_allclose(parallel.folds[f"test_{metric}"].to_numpy(), expected,
                               rtol=0 if metric == "accuracy" else 1e-12)


def test_parallel_folds_record_the_same_runs(make_cfg, workdir):
    """One parent, five FINISHED fold runs in order, the same metrics, params and artifacts
    (figures drawn in the job's process included) as the folds run in turn."""
    common = ["data=iris", "model=decision_tree", "refit=false",
              "plots=[confusion_matrix,importance,tree]"]
    ids = {n_jobs: run(make_cfg(*common, f"cv.n_jobs={n_jobs}")).run_id for n_jobs in (1, 2)}
    runs = all_runs(workdir)
    assert "RUNNING" not in set(runs["status"])
    assert set(parents(runs)["run_id"]) == set(ids.values())
    client = MlflowClient(store_uri(workdir))

    def layout(run_id: str) -> tuple:
        parent = client.get_run(run_id)
        folds = children(runs, run_id)
        fold_runs = [client.get_run(fold) for fold in folds["run_id"]]
        return (parent.info.status, parent.info.run_name, sorted(parent.data.metrics),
                sorted(parent.data.params), _artifacts(client, run_id),
                [(r.info.run_name, r.info.status, sorted(r.data.metrics), r.data.params,
                  _artifacts(client, r.info.run_id)) for r in fold_runs])

    in_turn, parallel = layout(ids[1]), layout(ids[2])
    assert parallel == in_turn
    assert [name for name, *_ in parallel[-1]] == [f"fold-{i}" for i in range(1, 6)]
    assert "plots/confusion_matrix.png" in parallel[-1][0][-1]
    assert {"plots/feature_importance.png", "feature_importance.csv", "plots/tree.png",
            "folds.csv"} <= set(parallel[4])
    in_turn_table, parallel_table = (
        pd.read_csv(client.download_artifacts(ids[n], "folds.csv", str(workdir / str(n))),
                    index_col=0).drop(columns="fit_time") for n in (1, 2))
    pd.testing.assert_frame_equal(parallel_table, in_turn_table, check_exact=True)


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    found = []
    for item in client.list_artifacts(run_id, path):
        found += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return sorted(found)


@pytest.mark.parametrize("value", ["0", "two", "1.5", "-9", "true"])
def test_a_bad_n_jobs_is_refused_in_one_line_before_any_run(run_cli, workdir, value):
    done = run_cli("data=iris", "model=knn", f"cv.n_jobs={value}")
    assert_refused_before_any_work(done, workdir, ["cv.n_jobs=", "positive integer", "-1"])


def test_folds_in_workers_and_ddp_fits_are_refused_together(run_cli, workdir):
    done = run_cli("data=breast_cancer", "model=logistic", "trainer=ddp", "cv.batch_folds=false",
                   "cv.n_jobs=2")
    assert_refused_before_any_work(done, workdir, ["cv.n_jobs=2", "trainer.strategy=ddp_spawn",
                                                   "cv.n_jobs=1"])


def test_folds_already_fitting_when_the_store_fails_are_cancelled_quietly(run_cli, workdir):
    # The workers start fitting while the job opens its store; the store's error is still the
    # one line, with joblib's notice of the dropped tasks kept out of it.
    done = run_cli("data=breast_cancer", "model=random_forest", "model.n_estimators=5",
                   "cv.n_jobs=2", "tracking.uri=http://127.0.0.1:9")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(
        "error: tracking server http://127.0.0.1:9 is unreachable")
    assert "cancelled" not in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_more_jobs_than_folds_or_one_per_core_run_every_fold(make_cfg, workdir):
    few = run(make_cfg("data=iris", "model=knn", "cv=holdout", *QUICK, "cv.n_jobs=8"))
    every_core = run(make_cfg("data=iris", "model=knn", *QUICK, "cv.n_jobs=-1"))
    runs = all_runs(workdir)
    assert len(children(runs, few.run_id)) == len(few.folds) == 1
    assert len(children(runs, every_core.run_id)) == len(every_core.folds) == 5
    assert set(runs["status"]) == {"FINISHED"}


# Every KNN fit of folds 3 to 5, in whichever worker runs it, waits without using a CPU for
# the test's signal; folds 1 and 2 fit at once. A fold is known by a row its training part
# lacks (FAST_FOLDS: a test row of fold 1 and of fold 2), not by the order of the calls: under
# load one worker may finish fold 1 and take fold 3 before the other has started fold 2.
# A file per call counts them.
WAITING_FROM_FOLD_3 = '''
import os
import time
import sklearn.neighbors

_fit = sklearn.neighbors.KNeighborsClassifier.fit

def _waiting_from_fold_3(self, X, y, *args, **kwargs):
    calls, n = os.environ["FIT_CALLS"], 1
    while True:
        try:
            os.close(os.open(os.path.join(calls, str(n)), os.O_CREAT | os.O_EXCL))
            break
        except FileExistsError:
            n += 1
    fast = {int(row) for row in os.environ["FAST_FOLDS"].split(",")}
    if fast <= set(y.index):  # neither fold 1's nor fold 2's training part
        time.sleep(120)
    return _fit(self, X, y, *args, **kwargs)

sklearn.neighbors.KNeighborsClassifier.fit = _waiting_from_fold_3'''


@pytest.mark.slow  # a job in a fresh interpreter and two workers: seconds of imports each
@pytest.mark.parametrize(("signum", "to_group"), [(signal.SIGINT, True), (signal.SIGTERM, False)],
                         ids=["Ctrl-C", "SIGTERM-job"])
def test_stop_signal_during_parallel_folds_ends_every_run_and_worker(workdir, signum, to_group):
    """Folds 1-2 logged, folds 3-4 training in two workers: Ctrl-C in the terminal (to the whole
    process group) or SIGTERM to the job alone ends the job as in turn: folds 1-2 FINISHED, the
    parent KILLED, no traceback, the shell's status, and no worker left behind."""
    from tests.test_interrupts import job_env, stopped_cleanly

    hook, calls = workdir / "hook", workdir / "calls"
    hook.mkdir()
    calls.mkdir()
    (hook / "sitecustomize.py").write_text(WAITING_FROM_FOLD_3)
    X, y = datasets.load_digits(return_X_y=True)  # the job's folds: cv=kfold, seed 42
    tests = [test for _, test in StratifiedKFold(5, shuffle=True, random_state=42).split(X, y)]
    env = {**job_env(hook), "FIT_CALLS": str(calls),
           "FAST_FOLDS": f"{tests[0][0]},{tests[1][0]}"}
    job = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "model=knn", "data=digits", "++plots=false",
         "++refit=false", "cv.n_jobs=2"],
        cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        _wait_for_finished(workdir, "fold-2", job)
        while len(list(calls.iterdir())) < 4:  # folds 3 and 4 are in their fits
            time.sleep(0.05)
        workers = _children(job.pid)
        assert len(workers) >= 2
        if to_group:
            os.killpg(job.pid, signum)
        else:
            job.send_signal(signum)
        _, stderr = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    line, runs = stopped_cleanly(workdir, job.returncode, stderr, signum)
    assert "KILLED" in line
    [parent] = parents(runs).itertuples()
    assert parent.status == "KILLED"
    folds = children(runs, parent.run_id)
    assert list(folds["tags.mlflow.runName"]) == ["fold-1", "fold-2"]
    assert list(folds["status"]) == ["FINISHED", "FINISHED"]
    deadline = time.monotonic() + 10
    while (alive := [pid for pid in workers if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive, f"processes of the job still running: {alive}"


def _wait_for_finished(workdir: Path, name: str, job: subprocess.Popen) -> None:
    """Polls the job's store (under its lock) until run `name` has FINISHED."""
    from pipeline.tracking.store import sqlite_guard

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        with sqlite_guard(store_uri(workdir)):
            runs = all_runs(workdir)
        named = runs[runs["tags.mlflow.runName"] == name] if len(runs) else runs
        if "FINISHED" in set(named["status"]):
            return
        time.sleep(0.05)
    pytest.fail(f"run {name} did not finish (job exit status: {job.poll()})")


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (its joblib workers and their resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent to read its status."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow  # Lightning imported in two worker processes
def test_torch_folds_in_two_workers_train_as_in_turn(make_cfg, workdir):
    """A Lightning model's folds, not batched, trained in two workers: the scores of training
    them in turn, and each fold's run keeps its per-epoch curves."""
    common = ["data=breast_cancer", "model=logistic", "trainer.max_epochs=2",
              "cv.batch_folds=false", *QUICK]
    in_turn = run(make_cfg(*common))
    parallel = run(make_cfg(*common, "cv.n_jobs=2"))
    scores = [c for c in in_turn.folds.columns if c != "fit_time"]
    pd.testing.assert_frame_equal(parallel.folds[scores], in_turn.folds[scores], rtol=1e-6)
    client = MlflowClient(store_uri(workdir))
    folds = children(all_runs(workdir), parallel.run_id)
    assert list(folds["status"]) == ["FINISHED"] * 5
    for fold in folds["run_id"]:
        assert [m.step for m in client.get_metric_history(fold, "train_loss")] == [1, 2]


@pytest.mark.slow  # a job in a fresh interpreter and two workers
def test_an_error_in_a_worker_fails_its_fold_run_and_the_parent(workdir):
    """A bug in the model's fit, raised in a worker: the fold's run and the parent end FAILED
    with its message, as when the folds run in turn, and nothing is left RUNNING."""
    from tests.test_interrupts import BUG, job_env

    hook = workdir / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(BUG)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "data=diabetes", "model=decision_tree",
         "++plots=false", "++refit=false", "cv.n_jobs=2"],
        cwd=workdir, env=job_env(hook), capture_output=True, text=True, timeout=300)
    # A defect of ours, not the user's mistake: said so, the traceback kept beside the run.
    assert done.returncode == 2, done.stderr
    assert "internal error: RuntimeError: bug in fit" in done.stderr
    kept = re.search(r"traceback is in (\S+traceback\.txt)", done.stderr)
    assert kept and "_broken_fit" in Path(kept.group(1)).read_text()
    runs = all_runs(workdir)
    [parent] = parents(runs).itertuples()
    assert parent.status == "FAILED"
    # ...and with the run, as its artifact, for whoever reads the store.
    from mlflow.artifacts import download_artifacts

    artifact = download_artifacts(run_id=parent.run_id, artifact_path="traceback.txt",
                                  tracking_uri=store_uri(workdir), dst_path=str(workdir / "dl"))
    assert "_broken_fit" in Path(artifact).read_text()
    folds = children(runs, parent.run_id)
    assert list(folds["tags.mlflow.runName"]) == ["fold-1"]
    assert list(folds["status"]) == ["FAILED"]
    assert folds["tags.error"].item() == "bug in fit"
    assert "RUNNING" not in set(runs["status"])
