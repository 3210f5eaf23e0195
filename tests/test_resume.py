"""`resume=true`: a job whose parent run already FINISHED with the same resolved config is
skipped and returns the recorded objective, so an interrupted sweep is not started over."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys

import pytest

from pipeline.entry import run
from tests.conftest import all_runs, parents
from tests.test_interrupts import wait_for_run

QUICK = ["++plots=false", "++refit=false"]  # `++`: whether or not the keys exist


def test_finished_config_is_skipped_other_configs_run(make_cfg, workdir, caplog):
    caplog.set_level(logging.INFO, logger="pipeline")
    first = run(make_cfg("model=knn", "cv.n_splits=3", *QUICK))
    caplog.clear()
    again = run(make_cfg("model=knn", "cv.n_splits=3", "resume=true", *QUICK))
    assert again.run_id == first.run_id and again.score == first.score
    assert again.spread == first.spread
    assert f"skipped: knn-kfold already FINISHED with this config as MLflow run {first.run_id}" \
        in caplog.text
    assert len(all_runs(workdir)) == 1 + 3  # nothing new

    other_seed = run(make_cfg("model=knn", "cv.n_splits=3", "resume=true", "seed=1", *QUICK))
    without_resume = run(make_cfg("model=knn", "cv.n_splits=3", *QUICK))
    assert len({first.run_id, other_seed.run_id, without_resume.run_id}) == 3
    top = parents(all_runs(workdir))
    assert top["tags.config_hash"].nunique() == 2  # seed=1 differs; resume does not count


@pytest.mark.slow
def test_rerun_of_an_interrupted_sweep_skips_its_finished_jobs(workdir):
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
           "PYTHONUNBUFFERED": "1"}
    sweep = [sys.executable, "-m", "pipeline", "-m", "data=digits",
             "model=knn,mlp,naive_bayes", "trainer.max_epochs=20", "cv.n_splits=3",
             "seed=3",
             *QUICK]
    # Ctrl-C during the second job (mlp): knn FINISHED, mlp KILLED, naive_bayes not started.
    job = subprocess.Popen(sweep, cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        wait_for_run(workdir, "mlp-kfold", job)
        job.send_signal(signal.SIGINT)
        _, stderr = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 130, stderr
    first = parents(all_runs(workdir)).set_index("tags.model")
    assert first.loc["knn", "status"] == "FINISHED"
    assert first.loc["mlp", "status"] == "KILLED"
    assert "naive_bayes" not in first.index

    done = subprocess.run([*sweep, "resume=true"], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    knn_id = first.loc["knn", "run_id"]
    knn_mean = first.loc["knn", "metrics.test_accuracy_mean"]
    skipped = re.search(rf"skipped: knn-kfold already FINISHED with this config as MLflow run "
                        rf"{knn_id}, test_accuracy_mean=([0-9.]+)", done.stdout)
    assert skipped and float(skipped.group(1)) == pytest.approx(knn_mean, abs=5e-5)
    assert "best of 3 job(s)" in done.stdout  # the reused knn run is ranked with the others

    top = parents(all_runs(workdir))
    finished = top[top["status"] == "FINISHED"]
    assert sorted(finished["tags.model"]) == ["knn", "mlp", "naive_bayes"]
    assert list(top.loc[top["tags.model"] == "knn", "run_id"]) == [knn_id]  # not run again
    assert sorted(top.loc[top["tags.model"] == "mlp", "status"]) == [
        "FINISHED", "KILLED"]
