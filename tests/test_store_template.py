"""The suite's template store is the store MLflow builds (so that tests on a copy test what a
user gets), and what a job asks of MLflow's schema logger still holds without migrations."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy


def schema(path: Path) -> tuple[dict[str, list[str]], str, list[tuple]]:
    """A SQLite store's tables and indexes (each its SQL's clauses, in any order: MLflow's own
    builds list a table's constraints in varying order), schema revision and experiments."""
    with sqlite3.connect(path) as db:
        objects = {name: sorted(line.strip().rstrip(",") for line in (sql or "").splitlines())
                   for name, sql in db.execute("SELECT name, sql FROM sqlite_master "
                                               "WHERE name NOT LIKE 'sqlite_%'")}
        [revision] = db.execute("SELECT version_num FROM alembic_version").fetchone()
        experiments = db.execute("SELECT * FROM experiments").fetchall()
    return objects, revision, experiments


@pytest.mark.store_creation
def test_a_store_from_the_template_is_the_store_mlflow_builds(tmp_path: Path,
                                                               store_from_template):
    from pipeline.compat.mlflow import initialize_tables  # MLflow's own: not patched here

    built, copied = tmp_path / "built.db", tmp_path / "copied.db"
    for path, initialize in ((built, initialize_tables), (copied, store_from_template)):
        engine = sqlalchemy.create_engine(f"sqlite:///{path}")
        initialize(engine)
        engine.dispose()
    assert schema(copied) == schema(built)
    assert schema(copied)[2] == []  # no experiment: MLflow adds Default where the store opens


def test_a_job_store_is_a_whole_mlflow_store(tmp_path: Path):
    from mlflow import MlflowClient

    from pipeline.tracking.store import create_whole

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    create_whole(uri)
    client = MlflowClient(tracking_uri=uri)
    [default] = client.search_experiments()
    assert default.name == "Default"
    assert client.get_experiment(client.create_experiment("job")).name == "job"


def test_quiet_mlflow_drops_only_the_store_error_record_the_job_reports(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    from pipeline.tracking.client import quiet_mlflow

    for variable in ("MLFLOW_DISABLE_TELEMETRY", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):
        monkeypatch.delenv(variable, raising=False)
    quiet_mlflow()
    store_log = logging.getLogger("mlflow.store.db.utils")
    with caplog.at_level(logging.ERROR, logger="mlflow.store.db.utils"):
        store_log.error("SQLAlchemy database error. The following exception is caught.\nlocked")
        store_log.error("Something MLflow says once")
    assert [record.getMessage() for record in caplog.records] == ["Something MLflow says once"]
    assert store_log.getEffectiveLevel() == logging.WARNING
