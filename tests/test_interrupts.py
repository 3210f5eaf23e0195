"""Stop signals and failures: nothing recorded is lost, no run is left RUNNING, and the user is
told where the partial results are. A real subprocess receives a real SIGINT, SIGTERM or SIGHUP
during fold 3 of 5; a sweep under the joblib launcher receives one in its process or group."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import all_runs, children, parents, store_uri

# Folds that take a second or more each, so that the signal lands inside fold 3's training.
SLOW_FOLDS = {
    # folds one after another (cv.batch_folds=false), each long enough (no early stopping,
    # small batches) for the signal to land in fold 3's own training
    "mlp": ["model=mlp", "data=digits", "trainer.max_epochs=150", "cv.batch_folds=false",
            "model.batch_size=64", "model.early_stopping=false"],
    "random_forest": ["model=random_forest", "data=digits", "model.n_estimators=600"],
}


def interrupt_during_fold_3(workdir: Path, args: list[str], signum: int = signal.SIGINT,
                            env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Starts the job, sends it `signum` once fold 2 has ended and fold 3's run exists; exit
    status, stderr and the seconds from the signal to the exit."""
    stderr_path = workdir / "stderr.txt"
    with stderr_path.open("w") as stderr:
        job = subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=workdir,
                               env=env or job_env(), stdout=subprocess.PIPE, stderr=stderr,
                               text=True)
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
            job.send_signal(signum)
            sent = time.perf_counter()
            job.stdout.read()
            status = job.wait(timeout=60)
            elapsed = time.perf_counter() - sent
        finally:
            if job.poll() is None:
                job.kill()
    return status, stderr_path.read_text(), elapsed


def stopped_cleanly(workdir: Path, status: int, stderr: str,
                    signum: int) -> tuple[str, pd.DataFrame]:
    """What every job stopped by `signum` shows: the shell's status for it, no traceback, one
    `interrupted: ` line (returned, with the store's runs) and no run left RUNNING."""
    assert status == 128 + signum, stderr
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("interrupted: ")]
    runs = all_runs(workdir)
    assert "RUNNING" not in set(runs["status"])
    return line, runs


def job_env(hook: Path | None = None) -> dict[str, str]:
    """The test's environment, with the job's store in its working directory; `hook`: a
    directory whose sitecustomize.py every Python process of the job runs first."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    if hook is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")]))
    return {**env, "PYTHONUNBUFFERED": "1"}


# Fold 3 of a knn job waits (without using a CPU) for the test's signal; folds 1-2 are quick.
WAITING_FOLD_3 = '''
import time
import sklearn.neighbors

_fit = sklearn.neighbors.KNeighborsClassifier.fit
_calls = []

def _waiting_from_fold_3(self, *args, **kwargs):
    _calls.append(self)
    if len(_calls) >= 3:
        time.sleep(120)
    return _fit(self, *args, **kwargs)

sklearn.neighbors.KNeighborsClassifier.fit = _waiting_from_fold_3
'''
CHEAP = ["model=knn", "data=digits", "++plots=false", "++refit=false"]


def cheap_env(workdir: Path) -> dict[str, str]:
    """The environment of a CHEAP job whose fold 3 waits for a signal."""
    hook = workdir / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(WAITING_FOLD_3)
    return job_env(hook)


def wait_for_run(workdir: Path, name: str, job: subprocess.Popen, timeout: float = 300) -> None:
    """Polls the job's store until a run `name` exists; under the job's own store lock, so that
    reading never races the job's creating the store. The timeout only bounds a failure: on a
    loaded machine (CI beside other work) a sweep's first job alone has taken over a minute."""
    from pipeline.tracking.store import sqlite_guard

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and job.poll() is None:
        with sqlite_guard(store_uri(workdir)):
            runs = all_runs(workdir)
        if name in set(runs.get("tags.mlflow.runName", [])):
            return
        time.sleep(0.05)
    pytest.fail(f"no run {name} appeared (job exit status: {job.poll()})")


@pytest.mark.parametrize(("model", "signum"), [
    ("mlp", signal.SIGINT), ("random_forest", signal.SIGINT),
    ("cheap", signal.SIGTERM), ("cheap", signal.SIGHUP),
], ids=["mlp-SIGINT", "random_forest-SIGINT", "SIGTERM", "SIGHUP"])
def test_stop_signal_during_fold_3_keeps_folds_1_and_2(workdir, model, signum):
    """Ctrl-C, `timeout`, systemd, SLURM, `docker stop` and a closed terminal alike: folds 1-2
    FINISHED, fold 3 and the parent KILLED, where to find them, and the shell's status."""
    if model == "cheap":  # what every signal must do, on a job that uses no CPU meanwhile
        status, stderr, elapsed = interrupt_during_fold_3(workdir, CHEAP, signum,
                                                          cheap_env(workdir))
    else:  # real training loops, Lightning's and scikit-learn's, stop on Ctrl-C
        status, stderr, elapsed = interrupt_during_fold_3(workdir, SLOW_FOLDS[model])
    print(f"{model}: {elapsed:.2f} s from {signal.Signals(signum).name} to exit")
    line, runs = stopped_cleanly(workdir, status, stderr, signum)
    [parent] = parents(runs).itertuples()
    assert parent.status == "KILLED"
    assert f"experiment 'digits', run {parent.run_id} (KILLED" in line
    assert re.search(r"store sqlite:///\S+/outputs/mlflow\.db$", line), line

    folds = children(runs, parent.run_id)
    assert list(folds["tags.mlflow.runName"]) == ["fold-1", "fold-2", "fold-3"]
    assert list(folds["status"]) == ["FINISHED", "FINISHED", "KILLED"]
    assert folds["metrics.test_accuracy"].iloc[:2].notna().all()  # what finished is kept


def test_signals_during_run_creation_are_held_until_it_can_end():
    """A stop signal while a run is being created or ended is held back, not lost: the run
    that exists is always ended before the interrupt goes on."""
    from pipeline.errors import STOP_SIGNALS
    from pipeline.tracking import _signals_deferred

    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    with _signals_deferred() as arrived:
        for signum in STOP_SIGNALS:
            os.kill(os.getpid(), signum)
        time.sleep(0.05)  # handlers run between bytecodes; this process is still alive
    assert sorted(arrived) == sorted(STOP_SIGNALS)
    assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == before


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

    from pipeline.entry import run

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
    # The defect decides the status: 2, as for a single job's internal error.
    assert done.returncode == 2, done.stderr
    assert "error: 2 of 3 jobs failed (1 by an internal error" in done.stderr
    assert re.search(r"#1 \S* ?model=naive_bayes \S+: model=naive_bayes is a \w* ?classifier",
                     done.stderr), done.stderr
    assert re.search(r"#2 \S* ?model=decision_tree \S+: internal error: RuntimeError: bug in fit",
                     done.stderr), done.stderr
    assert "Traceback" in done.stderr and "_broken_fit" in done.stderr  # the bug's, to fix it
    assert "best of 1 job(s): knn-kfold" in done.stdout

    runs = all_runs(workdir)
    top = parents(runs).set_index("tags.model")
    assert sorted(top.index) == ["decision_tree", "knn"]
    assert top.loc["knn", "status"] == "FINISHED"
    assert top.loc["decision_tree", "status"] == "FAILED"
    assert top.loc["decision_tree", "tags.error"] == "bug in fit"
    assert "RUNNING" not in set(runs["status"])


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "to_group"), [
    (signal.SIGTERM, True), (signal.SIGINT, False), (signal.SIGHUP, True),
], ids=["SIGTERM-group", "SIGINT-main", "SIGHUP-group"])
def test_stop_signal_ends_a_joblib_sweep_with_no_run_left_running(workdir, signum, to_group):
    """Two jobs in joblib workers, both in fold 3, and a signal to the sweep's process alone
    (the launcher kills its workers outright) or to its whole process group (Ctrl-C in a
    terminal, `timeout`, systemd): every run ends, the finished folds FINISHED."""
    job = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-m", "hydra/launcher=joblib",
         "hydra.launcher.n_jobs=2", "seed=1,2", *CHEAP],
        cwd=workdir, env=cheap_env(workdir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    try:
        wait_for_runs(workdir, "fold-3", 2, job)
        sent = time.perf_counter()
        if to_group:
            os.killpg(job.pid, signum)
        else:
            job.send_signal(signum)
        _, stderr = job.communicate(timeout=60)
        elapsed = time.perf_counter() - sent
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    print(f"joblib sweep: {elapsed:.2f} s from {signal.Signals(signum).name} to exit")
    line, runs = stopped_cleanly(workdir, job.returncode, stderr, signum)
    assert "KILLED" in line
    top = parents(runs)
    assert list(top["status"]) == ["KILLED", "KILLED"]
    for parent in top["run_id"]:
        folds = children(runs, parent)
        assert list(folds["status"]) == ["FINISHED", "FINISHED", "KILLED"]


def wait_for_runs(workdir: Path, name: str, count: int, job: subprocess.Popen,
                  timeout: float = 120) -> None:
    """Polls the job's store until `count` runs `name` exist (see wait_for_run)."""
    from pipeline.tracking.store import sqlite_guard

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and job.poll() is None:
        with sqlite_guard(store_uri(workdir)):
            runs = all_runs(workdir)
        if list(runs.get("tags.mlflow.runName", [])).count(name) >= count:
            return
        time.sleep(0.2)
    pytest.fail(f"fewer than {count} runs {name} appeared (job exit status: {job.poll()})")
