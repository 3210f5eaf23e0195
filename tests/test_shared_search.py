"""The project's Optuna sweeper (`hydra/sweeper=optuna`, hydra_plugins.pipeline_optuna_sweeper):
its params parsed into Optuna's current distributions, a failed job told as a FAILED trial, an
interrupted one not left RUNNING, and two worker processes sharing one study in PostgreSQL,
each trial a job in one MLflow experiment."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

# Imported before any command runs in this process: SQLAlchemy sets its loggers to WARNING at
# import, and `pipeline_in_process` puts loggers first made during a command back to NOTSET.
from sqlalchemy.engine import make_url

from hydra_plugins.pipeline_optuna_sweeper.params import grid, search_space
from tests.conftest import ROOT, all_runs, parents, pipeline_in_process

# Each sweep override, as the presets and the Hydra Optuna sweeper write them, and the
# distribution it means (a range's stop excluded, as Hydra's range excludes it).
PARSED = {
    "tag(log, interval(1e-4, 3e-2))": FloatDistribution(1e-4, 3e-2, log=True),
    "interval(0.0, 0.5)": FloatDistribution(0.0, 0.5),
    "interval(0, 1)": FloatDistribution(0.0, 1.0),  # Hydra reads interval bounds as floats
    "int(interval(1, 10))": IntDistribution(1, 10),
    "int(tag(log, interval(50, 400)))": IntDistribution(50, 400, log=True),
    "range(1, 9, 2)": IntDistribution(1, 7, step=2),
    "range(5, 1, -1)": IntDistribution(2, 5),
    "range(0, 1, 0.25)": FloatDistribution(0.0, 0.75, step=0.25),
    "choice(relu, tanh, gelu)": CategoricalDistribution(["relu", "tanh", "gelu"]),
    "choice([32], [64,32])": CategoricalDistribution(["[32]", "[64,32]"]),
    "4,8,16": CategoricalDistribution([4, 8, 16]),
    "shuffle(range(3))": IntDistribution(0, 2),
    "shuffle(a, b, c)": CategoricalDistribution(["a", "b", "c"]),
}


@pytest.mark.parametrize("written", PARSED)
def test_sweep_syntax_becomes_optunas_distribution(written):
    space, fixed = search_space([f"model.x={written}"])
    assert space == {"model.x": PARSED[written]} and fixed == {}


@pytest.mark.parametrize("written", ["range(1, 9, 2)", "range(5, 1, -1)", "range(0, 1, 0.25)",
                                     "choice([32], [64,32])", "4,8,16"])
def test_grid_holds_the_values_hydra_enumerates(written):
    """The grid sampler visits exactly the values a plain Hydra sweep over the override runs."""
    [override] = OverridesParser.create().parse_overrides([f"x={written}"])
    from hydra.core.override_parser.types import Transformer

    hydra_values = list(override.sweep_iterator(Transformer.encode))
    space, _ = search_space([f"x={written}"])
    assert sorted(map(str, grid(space["x"]))) == sorted(map(str, hydra_values))


def test_fixed_params_and_refusals():
    space, fixed = search_space(["model.kernel=rbf", "model.hidden_sizes=[64, 32]",
                                 "model.C=interval(1, 2)"])
    assert fixed == {"model.kernel": "rbf", "model.hidden_sizes": "[64,32]"}
    assert list(space) == ["model.C"]
    for written in ["glob(*)", "range(3, 3)"]:
        with pytest.raises(ValueError, match="x="):
            search_space([f"x={written}"])
    with pytest.raises(ValueError, match="grid sampler needs discrete"):
        grid(FloatDistribution(0.0, 1.0))


def test_every_presets_space_parses():
    from omegaconf import OmegaConf

    for preset in sorted((ROOT / "conf" / "hparams_search").glob("*.yaml")):
        params = OmegaConf.load(preset).hydra.sweeper.params
        space, fixed = search_space([f"{key}={value}" for key, value in params.items()])
        assert set(space) == set(params) and not fixed, preset.name
        for distribution in space.values():
            assert type(distribution) in (FloatDistribution, IntDistribution,
                                          CategoricalDistribution)


def study_in(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


@pytest.mark.slow
def test_failed_job_is_a_failed_trial_and_the_grid_is_walked(workdir):
    """`cv.n_splits=1000` fails on iris's 150 rows: the job's NaN is told as FAIL, the sweep
    lists the failure and exits 1, and the best is the trial that ran."""
    storage = f"sqlite:///{workdir / 'study.db'}"
    done = pipeline_in_process(
        "-m", "hparams_search=svm_optuna", "data=iris", "plots=false", "refit=false",
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.params={model.C:'1.0',model.gamma:'0.1',model.kernel:linear}",
        "cv.n_splits=2,1000",  # a sweep on the command line joins the params
        f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=grid")
    assert done.returncode == 1, done.stderr
    assert "error: 1 of 2 jobs failed:" in done.stderr
    trials = {t.params["cv.n_splits"]: t for t in study_in(storage, "grid").trials}
    assert trials[1000].state == TrialState.FAIL and trials[1000].value is None
    assert trials[2].state == TrialState.COMPLETE
    [(_, run)] = parents(all_runs(workdir)).iterrows()
    assert run["params.model.kernel"] == "linear" and run["params.cv.n_splits"] == "2"
    assert trials[2].value == run["metrics.test_accuracy_mean"]
    assert "Best value: " in done.stdout + done.stderr


@pytest.mark.slow
def test_max_failure_rate_stops_the_search(workdir):
    """At max_failure_rate=0 the first failed batch (one trial, n_jobs=1) ends the search."""
    storage = f"sqlite:///{workdir / 'study.db'}"
    done = pipeline_in_process(
        "-m", "hparams_search=svm_optuna", "data=iris", "hydra/sweeper/sampler=random",
        "hydra.sweeper.n_jobs=1", "hydra.sweeper.max_failure_rate=0", "cv.n_splits=999,1000",
        f"hydra.sweeper.storage={storage}")
    assert done.returncode == 1 and "error: 1 of 1 jobs failed:" in done.stderr, done.stderr
    assert "Stopping the search: 1 of 1 trials failed" in done.stdout + done.stderr
    assert [t.state for t in study_in(storage, "svm").trials] == [TrialState.FAIL]


@pytest.mark.slow
def test_interrupted_trial_is_failed_not_left_running(workdir, monkeypatch):
    """Ctrl-C during a trial's job (KeyboardInterrupt, what Python's SIGINT handler raises):
    the trials run so far keep their values, the interrupted one is FAIL, none RUNNING."""
    from pipeline import entry

    run, calls = entry.run, []

    def interrupted_second(cfg):
        calls.append(cfg)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run(cfg)

    monkeypatch.setattr(entry, "run", interrupted_second)
    storage = f"sqlite:///{workdir / 'study.db'}"
    done = pipeline_in_process("hparams_search=svm_optuna", "data=iris", "plots=false",
                               "refit=false", "cv.n_splits=2", "hydra.sweeper.n_trials=3",
                               f"hydra.sweeper.storage={storage}")
    assert done.returncode == 130, done.stderr
    states = [t.state for t in study_in(storage, "svm").trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL]


def test_storage_that_cannot_hold_a_study_is_one_line(workdir):
    # MLflow's own database: its alembic_version table is not Optuna's.
    from mlflow import MlflowClient

    MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}").search_experiments()
    done = pipeline_in_process("hparams_search=svm_optuna", "data=iris",
                               f"hydra.sweeper.storage=sqlite:///{workdir / 'mlflow.db'}")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    [line] = lines
    assert line.startswith("error: hydra.sweeper.storage=sqlite:///") and "of its own" in line


# --- Two workers, one study in PostgreSQL -------------------------------------------------

TRIALS = 3  # per worker


def worker(number: int, storage: str, tracking: str, home: Path,
           env: dict[str, str]) -> subprocess.Popen:
    """`python -m pipeline hparams_search=svm_optuna ...` as a user starts it in a terminal,
    its own seed and sweep directory, the shared storage, study and experiment."""
    args = ["hparams_search=svm_optuna", "data=iris", "cv.n_splits=2", "plots=false",
            "refit=false",
            f"hydra.sweeper.n_trials={TRIALS}", f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.study_name=shared", f"hydra.sweeper.sampler.seed={number}",
            f"tracking.uri={tracking}", "tracking.experiment=shared",
            f"hydra.sweep.dir={home / f'worker-{number}'}"]
    return subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=home, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_workers_share_one_study_in_postgres(tmp_path):
    import psycopg2
    from mlflow import MlflowClient

    from tests.services import postgres_cluster

    with postgres_cluster() as mlflow_uri:
        url = make_url(mlflow_uri)
        password = url.password
        connection = psycopg2.connect(host=url.host, port=url.port, user=url.username,
                                      password=password, dbname=url.database)
        connection.autocommit = True
        connection.cursor().execute("CREATE DATABASE optuna")  # not MLflow's: docs/how-to/sweeps
        connection.close()
        with_password = url.set(database="optuna").render_as_string(hide_password=False)
        without_password = f"{url.drivername}://{url.username}@{url.host}:{url.port}/optuna"
        env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
               "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get(
                   "PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
        MlflowClient(mlflow_uri).search_experiments()  # MLflow's schema, made once
        # One worker has the password in its URL (the logs must hide it), the other gives
        # it as libpq reads it, in PGPASSWORD, so that no file holds it.
        workers = [worker(1, with_password, mlflow_uri, tmp_path, env),
                   worker(2, without_password, mlflow_uri, tmp_path,
                          {**env, "PGPASSWORD": password})]
        outputs = [process.communicate(timeout=300) for process in workers]
        for process, (out, err) in zip(workers, outputs, strict=True):
            assert process.returncode == 0, err[-3000:]
            assert password not in out + err
        study = optuna.load_study(study_name="shared", storage=with_password)
        trials, best = study.trials, study.best_trial
        client = MlflowClient(mlflow_uri)
        [experiment] = [e for e in client.search_experiments() if e.name == "shared"]
        runs = client.search_runs([experiment.experiment_id])

    assert sorted(t.number for t in trials) == list(range(2 * TRIALS))
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    # Seeds 1 and 2: the workers' configurations differ (same seeds would repeat them).
    configurations = {tuple(sorted(t.params.items())) for t in trials}
    assert len(configurations) == 2 * TRIALS

    jobs = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(jobs) == 2 * TRIALS and {run.info.status for run in jobs} == {"FINISHED"}
    for run in runs:
        for value in [*run.data.params.values(), *run.data.tags.values()]:
            assert password not in value

    def job_of(trial: optuna.trial.FrozenTrial):
        [found] = [run for run in jobs if all(
            run.data.params[key] == str(value) for key, value in trial.params.items())]
        return found

    for trial in trials:
        assert trial.value == job_of(trial).data.metrics["test_accuracy_mean"]
    best_mean = max(run.data.metrics["test_accuracy_mean"] for run in jobs)
    assert best.value == best_mean
    assert job_of(best).data.metrics["test_accuracy_mean"] == best_mean
    assert math.isfinite(best_mean)
