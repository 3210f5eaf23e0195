"""Sweeps under submitit's local launcher (`hydra/launcher=submitit_local`), the launcher that
becomes SLURM's with `submitit_slurm`: each job a process of its own, started by a controller
that outlives the sweep's process, its result handed back through files in the sweep's folder.
The same store, summary and stop signals as under the other launchers."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import all_runs, children, parents

LOCAL = "hydra/launcher=submitit_local"
QUICK = ["plots=false", "refit=false"]


def sweep(workdir: Path, *args: str) -> subprocess.Popen:
    """`python -m pipeline -m ARGS` under submitit_local, in a session of its own: a signal the
    test sends reaches the sweep's process alone, as `kill` would (Ctrl-C reaches the group)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.Popen([sys.executable, "-m", "pipeline", "-m", LOCAL, *args], cwd=workdir,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(driver: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    """The sweep's exit status, stdout and stderr; whatever is left of it killed."""
    try:
        out, err = driver.communicate(timeout=timeout)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    return driver.returncode, out, err


def alive(pid: int) -> bool:
    from pipeline.tracking.processes import process_start

    return process_start(pid) is not None


@pytest.mark.slow
def test_submitit_local_sweep_runs_each_job_in_its_own_process(workdir):
    # data=csv without a path is a user mistake of that job alone: the others run.
    driver = sweep(workdir, "data=iris,wine,csv", "model=knn", "cv.n_splits=3", *QUICK)
    status, out, err = finish(driver)
    assert status == 1, err
    assert "error: 1 of 3 jobs failed:\n  #2 data=csv model=knn" in err
    assert "data.path" in err.split("jobs failed:", 1)[1]  # the job's own one-line reason

    runs = all_runs(workdir)
    top = parents(runs)
    assert len(top) == 2 and set(top["status"]) == {"FINISHED"}
    assert top["tags.sweep"].nunique() == 1
    # Relative to where the command ran, as the store is: the job ran in that directory too.
    assert not Path(top["tags.sweep"].iloc[0]).is_absolute()
    assert (workdir / top["tags.sweep"].iloc[0] / ".submitit").is_dir()
    pids = set(top["tags.pid"].astype(int))
    assert len(pids) == 2 and driver.pid not in pids
    for run_id, pid in zip(top["run_id"], top["tags.pid"], strict=True):
        folds = children(runs, run_id)
        assert len(folds) == 3 and set(folds["status"]) == {"FINISHED"}
        assert set(folds["tags.pid"]) == {pid}  # a job's folds ran in its process

    best = top[top["tags.best_in_sweep"] == "true"]
    assert len(best) == 1
    assert best["metrics.test_accuracy_mean"].iloc[0] == top["metrics.test_accuracy_mean"].max()
    assert f"MLflow run {best['run_id'].iloc[0]}" in out


def running_jobs(workdir: Path, count: int, driver: subprocess.Popen) -> list[int]:
    """The process ids of the sweep's jobs by job number, once `count` of them have a RUNNING
    parent run. Read with sqlite3: MLflow's search, polled, would take a core of its own."""
    query = ("SELECT job.value, pid.value FROM runs "
             "JOIN tags job ON job.run_uuid = runs.run_uuid AND job.key = 'job' "
             "JOIN tags pid ON pid.run_uuid = runs.run_uuid AND pid.key = 'pid' "
             "WHERE runs.status = 'RUNNING' ORDER BY CAST(job.value AS INTEGER)")
    store = workdir / "outputs" / "mlflow.db"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error), \
                contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
            found = db.execute(query).fetchall()
            if len(found) == count:
                return [int(pid) for _, pid in found]
        if driver.poll() is not None:
            pytest.fail("the sweep ended before its jobs ran: " + driver.stderr.read()[-3000:])
        time.sleep(0.5)
    pytest.fail(f"{count} jobs never ran at once")


@pytest.mark.slow
def test_stop_signals_under_submitit_local(workdir):
    # Jobs far longer than the test: only the signals end them.
    driver = sweep(workdir, "data=digits", "model=mlp", "trainer=cpu",
                   "trainer.max_epochs=5000", "model.early_stopping=false", "cv.n_splits=3",
                   "seed=1,2", *QUICK)
    try:
        first, second = running_jobs(workdir, 2, driver)
        # SLURM's scancel or a preemption stops one job: that job's failure, the sweep goes on.
        os.kill(first, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while alive(first) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(first) and alive(second) and driver.poll() is None
        # The sweep's process alone is stopped (`kill -INT`): its controllers would outlive
        # it and run the job on, unattended; it stops the job instead.
        driver.send_signal(signal.SIGINT)
        status, _, err = finish(driver, timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert status == 130, err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("interrupted: ")]
    assert "2 job(s) it stopped ended KILLED" in line
    assert not alive(second)

    runs = all_runs(workdir)
    assert "RUNNING" not in set(runs["status"])
    assert set(parents(runs)["status"]) == {"KILLED"}
    outcomes = Path(workdir, parents(runs)["tags.sweep"].iloc[0], ".outcomes")
    assert (outcomes / "0.txt").read_text().startswith(
        "  #0 data=digits model=mlp") and "stopped by SIGTERM: partial results are in" in (
        outcomes / "0.txt").read_text()


def test_an_interrupted_slurm_sweep_says_its_jobs_go_on(monkeypatch, tmp_path):
    from hydra import compose, initialize_config_dir

    from pipeline import sweeps
    from pipeline.config import config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", ["hydra/launcher=submitit_slurm"], return_hydra_config=True)
    # What the sweep's process knows once it started (OutputGuard), with no store at all:
    # the SLURM jobs are the cluster's, and none of them is stopped or marked from here.
    monkeypatch.setattr(sweeps, "_sweep", (f"sqlite:///{tmp_path / 'none.db'}", "multirun/x",
                                           cfg.hydra.launcher._target_))
    told = sweeps.end_interrupted_sweep()
    assert told.startswith("sweep multirun/x: its SLURM jobs go on") and "scancel" in told
    assert "multirun/x/.submitit" in told
    assert not (tmp_path / "none.db").exists()
