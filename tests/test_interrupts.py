"""Ctrl-C and failures: nothing recorded is lost, no run is left RUNNING, and the user is told
where the partial results are. A real subprocess receives a real SIGINT during fold 3 of 5."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import all_runs, children, parents, store_uri

# Folds that take a second or more each, so that the signal lands inside fold 3's training.
SLOW_FOLDS = {
    "mlp": ["model=mlp", "data=digits", "trainer.max_epochs=150"],
    "random_forest": ["model=random_forest", "data=digits", "model.n_estimators=600"],
}


def interrupt_during_fold_3(workdir: Path, args: list[str]) -> tuple[int, str, float]:
    """Starts the job, sends SIGINT once fold 2 has ended and fold 3's run exists; exit status,
    stderr and the seconds from the signal to the exit."""
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
           "PYTHONUNBUFFERED": "1"}
    stderr_path = workdir / "stderr.txt"
    with stderr_path.open("w") as stderr:
        job = subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=workdir, env=env,
                               stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            seen = []
            for line in job.stdout:
                seen.append(line)
                if line.startswith("fold 2:"):
                    break
            else:
                pytest.fail("the job ended before fold 2:\n" + "".join(seen)
                            + stderr_path.read_text())
            wait_for_run(workdir, "fold-3", job)
            job.send_signal(signal.SIGINT)
            sent = time.perf_counter()
            job.stdout.read()
            status = job.wait(timeout=60)
            elapsed = time.perf_counter() - sent
        finally:
            if job.poll() is None:
                job.kill()
    return status, stderr_path.read_text(), elapsed


def wait_for_run(workdir: Path, name: str, job: subprocess.Popen, timeout: float = 60) -> None:
    """Polls the job's store until a run `name` exists; under the job's own store lock, so that
    reading never races the job's creating the store."""
    from pipeline.tracking import _sqlite_guard

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and job.poll() is None:
        with _sqlite_guard(store_uri(workdir)):
            runs = all_runs(workdir)
        if name in set(runs.get("tags.mlflow.runName", [])):
            return
        time.sleep(0.05)
    pytest.fail(f"no run {name} appeared (job exit status: {job.poll()})")


@pytest.mark.parametrize("model", SLOW_FOLDS)
def test_sigint_during_fold_3_keeps_folds_1_and_2(workdir, model):
    status, stderr, elapsed = interrupt_during_fold_3(workdir, SLOW_FOLDS[model])
    print(f"{model}: {elapsed:.2f} s from SIGINT to exit")
    assert status == 130, stderr
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("interrupted: ")]
    runs = all_runs(workdir)
    [parent] = parents(runs).itertuples()
    assert parent.status == "KILLED"
    assert f"experiment 'digits', run {parent.run_id} (KILLED" in line
    assert re.search(r"store sqlite:///\S+/outputs/mlflow\.db$", line), line

    folds = children(runs, parent.run_id)
    assert list(folds["tags.mlflow.runName"]) == ["fold-1", "fold-2", "fold-3"]
    assert list(folds["status"]) == ["FINISHED", "FINISHED", "KILLED"]
    assert folds["metrics.test_accuracy"].iloc[:2].notna().all()  # what finished is kept
    assert "RUNNING" not in set(runs["status"])
    assert elapsed < 15


def test_interrupt_before_any_run_says_so(make_cfg, workdir, monkeypatch):
    """Ctrl-C while the data loads: no run exists, and the message says nothing was recorded."""
    from pipeline import __main__ as entry
    from pipeline import data

    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "load", interrupted)
    monkeypatch.setattr(sys, "argv", ["pipeline", "model=knn"])
    with pytest.raises(SystemExit) as exit_:
        entry.main()
    assert exit_.value.code == 130
    assert all_runs(workdir).empty


def test_exception_in_a_fold_fails_it_and_the_parent_keeps_the_rest(make_cfg, workdir,
                                                                    monkeypatch):
    """A bug (not a user mistake) in fold 3: folds 1-2 FINISHED and kept, fold 3 and the parent
    FAILED with the message recorded on both, no fold 4."""
    from sklearn.neighbors import KNeighborsClassifier

    from pipeline.runner import run

    calls = {"n": 0}
    fit = KNeighborsClassifier.fit

    def failing_third_fit(self, X, y, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("out of memory in fold 3")
        return fit(self, X, y, **kwargs)

    monkeypatch.setattr(KNeighborsClassifier, "fit", failing_third_fit)
    with pytest.raises(RuntimeError, match="out of memory in fold 3"):
        run(make_cfg("model=knn"))
    runs = all_runs(workdir)
    [parent] = parents(runs).itertuples()
    folds = children(runs, parent.run_id)
    assert parent.status == "FAILED"
    assert runs.loc[runs["run_id"] == parent.run_id, "tags.error"].item() == (
        "out of memory in fold 3")
    assert list(folds["status"]) == ["FINISHED", "FINISHED", "FAILED"]
    assert folds["tags.error"].iloc[2] == "out of memory in fold 3"
    assert folds["metrics.test_accuracy"].iloc[:2].notna().all()


BUG = '''
import sklearn.tree

def _broken_fit(self, *args, **kwargs):
    raise RuntimeError("bug in fit")

sklearn.tree.DecisionTreeRegressor.fit = _broken_fit
'''


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=3"]],
                         ids=["basic", "joblib"])
def test_multirun_goes_on_and_lists_every_failed_job(workdir, launcher):
    """A user mistake (#1) and a bug (#2, injected through sitecustomize) do not stop the sweep;
    the summary names both, the bug with its traceback, whatever the launcher."""
    hook = workdir / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(BUG)
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
           "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "pipeline", "-m", *launcher, "data=diabetes",
                           "model=knn,naive_bayes,decision_tree", "cv.n_splits=3"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "error: 2 of 3 jobs failed:" in done.stderr
    assert re.search(r"#1 \S* ?model=naive_bayes \S+: model=naive_bayes is a \w* ?classifier",
                     done.stderr), done.stderr
    assert re.search(r"#2 \S* ?model=decision_tree \S+: RuntimeError: bug in fit", done.stderr)
    assert "Traceback" in done.stderr and "_broken_fit" in done.stderr  # the bug's, to fix it
    assert "best of 1 job(s): knn-kfold" in done.stdout

    runs = all_runs(workdir)
    top = parents(runs).set_index("tags.model")
    assert sorted(top.index) == ["decision_tree", "knn"]
    assert top.loc["knn", "status"] == "FINISHED"
    assert top.loc["decision_tree", "status"] == "FAILED"
    assert top.loc["decision_tree", "tags.error"] == "bug in fit"
    assert "RUNNING" not in set(runs["status"])
