"""A store made by an older MLflow is not migrated in place unasked (after which the older MLflow
could no longer open it): a job refuses it, naming the revisions, unless `tracking.migrate=true`;
the readers (compare, doctor, predict) refuse it."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from pipeline.compat.mlflow import schema_revisions
from pipeline.errors import PipelineError
from pipeline.tracking.store import check_store, reader
from tests.conftest import all_runs, command_in_process

# The newest schema revision of MLflow 2.22.0 (the head of the migrations in its wheel,
# mlflow/store/db_migrations/versions/0584bdc529eb_add_cascading_deletion_to_datasets_from_
# experiments.py): the store such an MLflow makes, built from the installed migrations.
MLFLOW_2_22_SCHEMA = "0584bdc529eb"


def make_older_store(path: Path, revision: str = MLFLOW_2_22_SCHEMA) -> str:
    """A store as an older MLflow makes it: its first tables, migrated up to `revision` (not
    to the installed MLflow's newest) by the installed MLflow's own migration scripts."""
    import sqlalchemy
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as FirstSchema

    uri = f"sqlite:///{path}"
    engine = sqlalchemy.create_engine(uri)
    try:
        FirstSchema.metadata.create_all(engine)
        config = _get_alembic_config(uri)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
    return uri


def schema_of(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def older_store(tmp_path_factory) -> Path:
    """Built once (a few seconds of migrations); each test works on a copy."""
    path = tmp_path_factory.mktemp("older") / "mlflow.db"
    make_older_store(path)
    return path


@pytest.fixture
def store(older_store: Path, workdir: Path) -> Path:
    copy = workdir / "old.db"
    copy.write_bytes(older_store.read_bytes())
    return copy


def test_the_2_22_schema_is_an_older_revision_of_the_installed_chain():
    revisions = schema_revisions()
    assert MLFLOW_2_22_SCHEMA in revisions[1:]
    from mlflow.store.db.utils import _get_latest_schema_revision

    assert revisions[0] == _get_latest_schema_revision()  # what alembic says, in a millisecond


def test_a_job_refuses_an_older_store_before_any_run(store: Path, workdir: Path, run_cli):
    from importlib.metadata import version

    before = digest(store)
    done = run_cli("data=iris", "model=knn", "cv.n_splits=2", "plots=false",
                   f"tracking.uri=sqlite:///{store}")

    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    behind = schema_revisions().index(MLFLOW_2_22_SCHEMA)
    assert line == (
        f"error: the store sqlite:///{store} was made by an older MLflow (schema revision "
        f"{MLFLOW_2_22_SCHEMA}, {behind} migration(s) behind MLflow {version('mlflow')}'s "
        f"{schema_revisions()[0]}); MLflow {version('mlflow')} would migrate it in place and "
        "the older MLflow could no longer open it: back it up, then rerun with "
        "tracking.migrate=true")
    assert digest(store) == before  # not migrated, not written


def test_readers_refuse_an_older_store_and_leave_it_as_it_was(store: Path):
    from pipeline.doctor import main as doctor
    from pipeline.predict import load

    before = digest(store)
    uri = f"sqlite:///{store}"
    for read in (lambda: reader(uri), lambda: load("0" * 32, uri)):
        with pytest.raises(PipelineError, match=r"older MLflow .*\(mlflow db upgrade sqlite:///"):
            read()
    done = command_in_process(lambda: doctor(["--uri", uri]), "pipeline.doctor")
    assert done.returncode == 1 and "older MLflow" in done.stderr, done.stderr
    assert digest(store) == before
    # The store check with `migrate` is a job's: a reader refuses whatever it says.
    with pytest.raises(PipelineError, match="older MLflow"):
        check_store(uri, reading=True, migrate=True)


def test_with_tracking_migrate_a_job_migrates_it_and_runs(store: Path, workdir: Path, run_cli):
    done = run_cli("data=iris", "model=knn", "cv.n_splits=2", "plots=false", "refit=false",
                   f"tracking.uri=sqlite:///{store}", "tracking.migrate=true")

    assert done.returncode == 0, done.stderr
    assert schema_of(store) == schema_revisions()[0]
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    [experiment] = [e for e in client.search_experiments() if e.name == "iris"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.status for run in runs) == ["FINISHED"] * 3  # parent and 2 folds
    assert all_runs(workdir).empty  # the default store was not used
