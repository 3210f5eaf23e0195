"""Tracking touches only what the job opened: the SQLite pragmas of a job's store reach that
store's engine and no other engine of the process; a rank other than 0 gets a tracker with
the same calls that sends nothing."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy
from mlflow import MlflowClient
from sqlalchemy.engine import Engine

from pipeline import tracking
from pipeline.tracking.store import store_engines
from tests.conftest import store_uri

JOB_PRAGMAS = (60000, "wal")  # busy timeout (ms), journal mode: what a job's store gets


def pragmas(engine: Engine) -> tuple[int, str]:
    """What a new connection of `engine` runs with."""
    engine.dispose()  # a connection opened now, not one kept in the pool
    with engine.connect() as connection:
        return (connection.exec_driver_sql("PRAGMA busy_timeout").scalar(),
                connection.exec_driver_sql("PRAGMA journal_mode").scalar().lower())


def test_job_store_pragmas_stay_on_the_job_store(workdir: Path) -> None:
    before = sqlalchemy.create_engine(f"sqlite:///{workdir / 'before.db'}")
    tracker = tracking.Tracker(store_uri(workdir), "scoped")
    after = sqlalchemy.create_engine(f"sqlite:///{workdir / 'after.db'}")
    # Another MLflow store, opened in the same process as a notebook would, not by the job.
    notebook = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'notebook.db'}")

    [job_engine] = store_engines(tracker.client)
    assert pragmas(job_engine) == JOB_PRAGMAS
    with tracker.run("r") as run_id:  # the job writes through it as usual
        tracker.log_metrics(run_id, {"test_accuracy": 0.5})
    [notebook_engine] = store_engines(notebook)
    for unrelated in (before, after, notebook_engine):
        # sqlite3's own default timeout (5 s), its default rollback journal.
        assert pragmas(unrelated) == (5000, "delete"), unrelated.url
    assert not sqlalchemy.event.contains(Engine, "connect",
                                         tracking.store.sqlite_pragmas)


def test_a_rank_other_than_0_gets_a_tracker_that_sends_nothing(workdir: Path,
                                                               monkeypatch) -> None:
    monkeypatch.setenv("RANK", "1")
    tracker = tracking.connect(store_uri(workdir), "ranks")
    assert isinstance(tracker, tracking.NullTracker)
    assert isinstance(tracker, tracking.BaseTracker)
    with tracker.run("parent", params={"a": "1"}) as run_id:
        tracker.log_metrics(run_id, {"test_accuracy": 1.0})
        tracker.log_text(run_id, "x", "x.txt")
    assert run_id == ""
    assert tracker.finished_run("0123456789abcdef") is None
    assert not (workdir / "outputs").exists()  # no store was created, nor read


def test_a_logged_model_carries_the_whole_pipeline_package(workdir: Path) -> None:
    """`code_paths` is the `pipeline` package (the tracker now lives one folder down in it),
    so that a model loads where the package is not installed."""
    from sklearn.datasets import load_iris
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), KNeighborsClassifier()).fit(X, y)
    tracker = tracking.Tracker(store_uri(workdir), "models")
    with tracker.run("r") as run_id:
        tracker.log_model(run_id, model, X)
    [code] = (workdir / "outputs" / "mlartifacts").glob("models/**/artifacts/code")
    assert {path.name for path in code.iterdir()} == {"pipeline"}
    shipped = {path.relative_to(code).as_posix() for path in code.rglob("*.py")}
    assert {"pipeline/__init__.py", "pipeline/runner.py", "pipeline/tracking/__init__.py",
            "pipeline/tracking/store.py", "pipeline/distributed.py"} <= shipped
