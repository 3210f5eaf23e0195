"""Sweeps and the leaderboard that ranks their jobs."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from pipeline import compare
from tests.conftest import all_runs, parents, store_uri


def test_grid_sweep_and_leaderboard(run_cli, workdir):
    done = run_cli("-m", "data=wine", "model=knn,decision_tree", "cv.n_splits=3,4", "plots=false")
    assert done.returncode == 0, done.stderr
    top = parents(all_runs(workdir))
    assert len(top) == 4 and set(top["status"]) == {"FINISHED"}
    assert top["tags.sweep"].nunique() == 1
    assert sorted(top["tags.job"].astype(int)) == [0, 1, 2, 3]

    experiment, table = compare.leaderboard(store_uri(workdir), sweep="latest")
    assert experiment == "wine" and len(table) == 4
    means = table["accuracy_mean"].tolist()
    assert means == sorted(means, reverse=True)
    assert set(table["params"]) == {"cv.n_splits=3", "cv.n_splits=4"}
    expected_best = top["metrics.test_accuracy_mean"].max()
    assert table.iloc[0]["accuracy_mean"] == expected_best

    printed = compare.main(["--uri", store_uri(workdir), "--format", "csv"])
    assert printed == 0


def test_leaderboard_command_formats(run_cli, workdir, capsys):
    quick = ["data=diabetes", "plots=false", "refit=false"]
    assert run_cli(*quick, "model=ols").returncode == 0
    assert run_cli(*quick, "model=knn").returncode == 0
    assert compare.main(["--uri", store_uri(workdir), "-e", "diabetes",
                         "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model | cv | params | r2 |")
    assert lines[2].startswith("| ols |")  # OLS beats KNN on diabetes' R²
    assert compare.main(["--uri", store_uri(workdir), "-e", "diabetes", "--metric", "mse",
                         "--format", "csv"]) == 0
    from io import StringIO

    table = pd.read_csv(StringIO(capsys.readouterr().out))
    assert table["mse_mean"].is_monotonic_increasing  # lower error first
    assert compare.main(["--uri", store_uri(workdir), "-e", "nope"]) == 1
    assert "no experiment 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_parallel_jobs_share_the_sqlite_store(cli, workdir):
    # Figures are files beside the store, not writes to it; drawing them is beside the point.
    done = cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "data=breast_cancer",
               "model=knn,decision_tree,svm,naive_bayes", "plots=false")
    assert done.returncode == 0, done.stderr
    assert "locked" not in done.stderr + done.stdout
    runs = all_runs(workdir)
    top = parents(runs)
    assert len(top) == 4 and set(top["status"]) == {"FINISHED"}
    assert top["tags.sweep"].nunique() == 1
    for run_id in top["run_id"]:
        folds = runs[runs["tags.mlflow.parentRunId"] == run_id]
        assert len(folds) == 5 and set(folds["status"]) == {"FINISHED"}


@pytest.mark.slow
def test_optuna_preset_best_value_is_the_best_parent_run(run_cli, workdir):
    done = run_cli("hparams_search=svm_optuna", "hydra.sweeper.n_trials=3", "data=wine")
    assert done.returncode == 0, done.stderr
    best_value = float(re.search(r"Best value: ([0-9.]+)", done.stdout + done.stderr).group(1))
    top = parents(all_runs(workdir))
    assert len(top) == 3 and top["tags.sweep"].nunique() == 1
    assert best_value == pytest.approx(top["metrics.test_accuracy_mean"].max(), abs=1e-12)
    best = top[top["tags.best_in_sweep"] == "true"]
    assert len(best) == 1
    assert best["metrics.test_accuracy_mean"].iloc[0] == top["metrics.test_accuracy_mean"].max()


def test_minimising_objective_flips_the_sweep_direction(make_cfg):
    from hydra import compose, initialize_config_dir

    from pipeline.config import config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        default = compose("config", ["hparams_search=mlp_optuna", "data=csv"],
                          return_hydra_config=True)
        error = compose("config", ["hparams_search=mlp_optuna", "objective=mse"],
                        return_hydra_config=True)
    assert default.hydra.sweeper.direction == "maximize"
    assert error.hydra.sweeper.direction == "minimize"


@pytest.mark.slow
def test_compare_regressors_preset_is_one_command(run_cli, workdir):
    done = run_cli("experiment=compare_regressors", "trainer.max_epochs=5", "cv.n_splits=3")
    assert done.returncode == 0, done.stderr
    top = parents(all_runs(workdir))
    assert sorted(top["tags.model"]) == sorted(
        ["ols", "linear", "mlp", "decision_tree", "random_forest", "knn", "svm"])
    assert "best of 7 job(s)" in done.stdout


# A sweep's exit status is the truth: non-zero whenever a job failed, whatever the sweep
# directory is called, wherever its jobs write, and whatever an earlier sweep left there.
FAST = ("data=iris", "model=knn", "plots=false", "resume=true")


@pytest.mark.slow
def test_sweep_status_in_a_reused_directory_with_an_awkward_name(run_cli, workdir):
    # A quote broke the MLflow filter that tags the best job, and Hydra turned that error
    # into a warning, failures unreported: exit 0. Reused, the directory's earlier outcomes
    # counted as this sweep's.
    sweep = 'hydra.sweep.dir="sweeps/it\'s [a]*"'
    failed = run_cli("-m", sweep, *FAST, "cv.n_splits=2,1000")
    assert failed.returncode == 1, failed.stderr
    assert "error: 1 of 2 jobs failed:\n  #1 " in failed.stderr
    again = run_cli("-m", sweep, *FAST, "cv.n_splits=2")  # job 0 again, resumed
    assert again.returncode == 0, again.stderr
    assert "failed" not in again.stderr


@pytest.mark.slow
def test_sweep_status_counts_jobs_written_outside_the_sweep_directory(run_cli, workdir):
    # Job directories outside hydra.sweep.dir held outcomes that nobody read: exit 0. A job
    # run in its own directory (hydra.job.chdir) still records where the sweep reads.
    done = run_cli("-m", "hydra.sweep.dir=sweeps/s", "hydra.sweep.subdir=../jobs/${hydra.job.num}",
               "hydra.job.chdir=true", f"tracking.uri={store_uri(workdir)}", *FAST,
               "cv.n_splits=2,1000")
    assert done.returncode == 1, done.stderr
    assert "error: 1 of 2 jobs failed:\n  #1 " in done.stderr
    assert (workdir / "sweeps" / "jobs" / "1").is_dir()


def sweep_job(sweep_dir, number: int, *overrides: str):
    """The config job `number` of a sweep into `sweep_dir` sees, as Hydra's launcher makes it."""
    from hydra import compose, initialize_config_dir
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    from pipeline.config import config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        config = compose("config", list(overrides), return_hydra_config=True)
    with read_write(config), open_dict(config):
        config.hydra.mode = RunMode.MULTIRUN
        config.hydra.sweep.dir = str(sweep_dir)
        config.hydra.job.num = number
        config.hydra.overrides.task = list(overrides)
    return config


def test_a_job_that_records_no_outcome_fails_the_sweep(workdir, monkeypatch, capsys):
    from hydra.core.utils import JobReturn, JobStatus

    from pipeline import sweeps

    monkeypatch.setattr(sweeps, "mark_best", lambda uri, sweep: None)
    outcomes = workdir / "s" / sweeps.OUTCOMES
    outcomes.mkdir(parents=True)
    (outcomes / "1.txt").write_text(sweeps.OK)  # an earlier sweep's job 1 went well
    (outcomes / "2.txt").write_text("  #2 model=svm: an earlier failure")
    jobs = [sweep_job(workdir / "s", number, f"cv.n_splits={number + 2}") for number in (0, 1)]
    summary = sweeps.SweepSummary()
    summary.on_multirun_start(jobs[0])
    for job in jobs:
        summary.on_job_start(job)
    summary.on_job_end(jobs[0], JobReturn(status=JobStatus.COMPLETED, _return_value=0.9))
    # Job 1 is killed outright: no on_job_end.
    with pytest.raises(SystemExit) as ended:
        summary.on_multirun_end(jobs[0])
    assert ended.value.code == 1
    err = capsys.readouterr().err
    assert "error: 1 of 2 jobs failed:\n  #1 cv.n_splits=3: ended without recording" in err
    assert "#2" not in err


def test_a_failure_that_cannot_be_recorded_stays_a_failure(workdir, monkeypatch, capsys):
    from hydra.core.utils import JobReturn, JobStatus

    from pipeline import sweeps
    from pipeline.errors import PipelineError

    monkeypatch.setattr(sweeps, "mark_best", lambda uri, sweep: None)
    (workdir / "s").mkdir()
    (workdir / "s" / sweeps.OUTCOMES).write_text("")  # a file where the folder goes: no room
    job = sweep_job(workdir / "s", 0)
    failed = JobReturn(status=JobStatus.FAILED, _return_value=PipelineError("bad input"))
    with pytest.raises(OSError):
        sweeps.SweepSummary().on_job_end(job, failed)
    # Hydra makes a callback's error a warning; the job stays FAILED, so the sweep stops.
    assert failed.status == JobStatus.FAILED
    with pytest.raises(SystemExit) as ended:
        sweeps.SweepSummary().on_multirun_end(job)
    assert ended.value.code == 1
    assert "no job of the sweep recorded an outcome" in capsys.readouterr().err
