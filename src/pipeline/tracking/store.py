"""The MLflow store a job records to: which one (`default_uri`), whether MLflow may open it
(`check_store`), creating a SQLite store whole, and SQLite shared safely by jobs side by side
(`sqlite_guard`, `open_client`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.tracking.secrets import redact


def default_uri() -> str:
    """`MLFLOW_TRACKING_URI` if set, else a SQLite store under ./outputs."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path.cwd() / 'outputs' / 'mlflow.db'}"


def check_store(uri: str, *, reading: bool = False, migrate: bool = False) -> None:
    """Refuse, before MLflow opens it, a store that MLflow would damage or misread: another
    application's SQLite database (MLflow would add its tables to it), a file that is not a
    database, a store written by a newer MLflow, one written by an older MLflow (opening it
    migrates it in place, for good; with `migrate` it is migrated now), a directory that is not
    an `mlruns` store. `reading`: a store that does not exist yet is an error too (a reader
    never creates one), and an older one is refused whatever `migrate` says (a reader never
    migrates one)."""
    if uri.startswith("sqlite:///"):
        _refuse_a_directory(uri)
        _check_sqlite_store(uri, reading, migrate)
    elif "://" not in uri or uri.startswith("file:"):
        _check_file_store(uri, reading)
    elif uri.split(":", 1)[0].split("+", 1)[0] in DATABASES:
        _check_driver(uri)


# The databases MLflow keeps a store in through SQLAlchemy (`<database>[+<driver>]://…`).
DATABASES = ("postgresql", "mysql", "mssql")


def _check_driver(uri: str) -> None:
    """The database's Python driver is installed: SQLAlchemy picks one by the URI
    (`postgresql://` means psycopg 3 since SQLAlchemy 2.1, `postgresql+psycopg2://`
    psycopg2), and MLflow would fail on its import with a traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(uri).get_dialect()
        dialect.import_dbapi()
    except (ArgumentError, NoSuchModuleError) as error:
        raise PipelineError(f"tracking.uri={redact(uri)} is not a database URL SQLAlchemy "
                            f"knows ({error})") from None
    except ImportError as error:
        other = " (postgresql+psycopg2:// takes psycopg2)" if uri.startswith("postgresql:") else ""
        raise PipelineError(
            f"tracking.uri={redact(uri)} needs the {dialect.driver} driver, which is not "
            f"installed ({error}); pip install it, or name an installed driver in the "
            f"URI{other}") from None


def _refuse_a_directory(uri: str) -> None:
    """A directory where the SQLite file should be: MLflow would retry opening it for about
    two minutes before failing with "unable to open database file"."""
    path = Path(uri.removeprefix("sqlite:///"))
    if path.is_dir():
        raise PipelineError(
            f"tracking.uri={redact(uri)} names a directory, {path}, not an SQLite file: point "
            f"it to a file, e.g. sqlite:///{path / 'mlflow.db'}")


def _check_sqlite_store(uri: str, reading: bool, migrate: bool = False) -> None:
    import sqlite3

    path = Path(uri.removeprefix("sqlite:///"))
    shown = redact(uri)
    if path.is_file() and path.stat().st_size > 0:
        try:
            # Read-only: looking must not change another application's file.
            with sqlite3.connect(_looking(path), uri=True) as db:
                tables = {row[0] for row in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                revision = (db.execute("SELECT version_num FROM alembic_version").fetchone()
                            if "alembic_version" in tables else None)
        except sqlite3.DatabaseError as error:
            raise PipelineError(
                f"tracking.uri={shown} is not an MLflow store: {path} is not an SQLite database "
                f"({error}) and is left untouched; point tracking.uri to a new file, e.g. "
                "sqlite:///outputs/mlflow.db") from error
        # None of MLflow's tables (some of them: a store that MLflow is creating right now).
        if tables and not tables & {"alembic_version", "experiments", "runs"}:
            listed = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise PipelineError(
                f"tracking.uri={shown} is not an MLflow store: {path} is another application's "
                f"SQLite database (tables: {listed}) and is left untouched; point "
                "tracking.uri to a new file, e.g. sqlite:///outputs/mlflow.db")
        if revision is not None:
            _check_schema(uri, revision[0], migrate and not reading, reading)
            return
    if reading:
        raise PipelineError(f"no MLflow store at {path}; run a job first, or pass --uri")


def _looking(path: Path) -> str:
    """The SQLite URI that reads the store at `path` without writing a byte: read-only, and
    immutable where its directory is (a read-only mount), which is the only way SQLite opens
    a write-ahead-logged database that it cannot add its shared-memory file beside."""
    return f"{path.resolve().as_uri()}?{'immutable=1' if read_only(path) else 'mode=ro'}"


def read_only_store(uri: str) -> bool:
    """Whether `uri` is a local SQLite store in a directory that cannot be written."""
    return uri.startswith("sqlite:///") and read_only(Path(uri.removeprefix("sqlite:///")))


def read_only(path: Path) -> bool:
    """Whether the directory of the store at `path` cannot be written (a read-only mount or
    directory): readers read it without the lock file, which cannot be made there, and no
    job can write to it, so there is nothing to wait for."""
    return not os.access(path.absolute().parent, os.W_OK | os.X_OK)


def _check_schema(uri: str, revision: str, migrate: bool, reading: bool) -> None:
    """A store at a schema revision this MLflow does not know was written by a newer one:
    MLflow would refuse it with advice to 'upgrade' the store, which cannot work. One at an
    earlier revision was written by an older MLflow: opening it would migrate it in place (an
    MLflow store is migrated when it lacks a table of the newer schema), after which the older
    MLflow could no longer open it: refused, or with `migrate` migrated now."""
    from importlib.metadata import version

    from pipeline.compat.mlflow import schema_revisions, upgrade_schema

    shown = redact(uri)
    known = schema_revisions()
    if revision == known[0]:
        return
    if revision in known and migrate:
        # Migrated now, whole: MLflow itself migrates only a store that lacks a table of its
        # schema, and refuses one that lacks only columns.
        upgrade_schema(uri)
        return
    installed = f"MLflow {version('mlflow')}"
    if revision in known:
        behind = known.index(revision)
        if reading:
            how = ("back it up, then migrate it (mlflow db upgrade "
                   f"{shown}, or run a job on it with tracking.migrate=true), or read it with "
                   "the MLflow that made it")
        else:
            how = "back it up, then rerun with tracking.migrate=true"
        raise PipelineError(
            f"the store {shown} was made by an older MLflow (schema revision {revision}, "
            f"{behind} migration(s) behind {installed}'s {known[0]}); {installed} would "
            "migrate it in place and the older MLflow could no longer open it: " + how)
    raise PipelineError(
        f"tracking.uri={shown} was written by a newer MLflow (schema revision {revision}, "
        f"unknown to the installed {installed}) and is left untouched; "
        "upgrade mlflow (pip install -U mlflow) or use another store")


def _check_file_store(uri: str, reading: bool) -> None:
    path = Path(uri.removeprefix("file://")) if uri.startswith("file:") else Path(uri)
    if not path.is_dir() or not any(path.iterdir()):
        if reading:
            raise PipelineError(f"no MLflow store at {path}; run a job first, or pass --uri")
        return
    if not ((path / ".trash").is_dir() or any(path.glob("*/meta.yaml"))):
        raise PipelineError(
            f"tracking.uri={redact(uri)} is not an MLflow store: {path} is a directory of "
            "other files (no mlruns layout) and is left untouched; point tracking.uri to a "
            "new or empty directory, or to sqlite:///outputs/mlflow.db")


def create_whole(uri: str) -> None:
    """A new SQLite store is built in a file beside it and appears complete, in one step: a
    reader that opens it meanwhile (compare, MLflow's UI, `mlflow.search_runs`) finds no store
    or a whole one, never a half-migrated one that it would try to finish under the job."""
    import sqlite3

    import sqlalchemy

    from pipeline.compat.mlflow import initialize_tables

    path = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    if path is None or path.exists():
        return
    building = path.with_name(f"{path.name}.creating-{os.getpid()}")
    engine = sqlalchemy.create_engine(f"sqlite:///{building}")
    try:
        initialize_tables(engine)
        engine.dispose()
        with sqlite3.connect(building) as db:  # one self-contained file: no log beside it
            db.execute("PRAGMA journal_mode = DELETE")
        os.link(building, path)  # never over a store that appeared meanwhile
    except OSError:
        pass  # a store appeared meanwhile, or no hard links here: MLflow creates it in place
    finally:
        engine.dispose()
        for leftover in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
            leftover.unlink(missing_ok=True)


def reader(uri: str) -> Any:
    """An MlflowClient on an existing store that never creates or migrates it: a reader
    (compare, report) waits while a job creates the store, instead of racing its schema
    migrations and breaking that job."""
    from mlflow import MlflowClient

    if not uri.startswith("sqlite:///"):
        check_store(uri, reading=True)
        return MlflowClient(tracking_uri=uri)
    path = Path(uri.removeprefix("sqlite:///"))
    if not path.is_file() or read_only(path):
        check_store(uri, reading=True)  # says there is no store, without making a lock file
        # SQLAlchemy hands a `file:` URI to SQLite as it is (`uri=true`): read-only, immutable.
        return MlflowClient(tracking_uri=f"sqlite:///{_looking(path)}&uri=true")
    with sqlite_guard(uri):
        check_store(uri, reading=True)
        return open_client(uri)


@contextmanager
def sqlite_guard(uri: str) -> Iterator[None]:
    """Creating or opening a local SQLite store (its schema migrations) happens in one process
    at a time: jobs side by side (joblib launcher) and readers (compare) wait for each other
    on a lock file beside the store (`mlflow.db.lock`). Any other URI passes at once."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def open_client(uri: str) -> Any:
    """An MlflowClient on `uri`; on a local SQLite store, the connections of the store's
    engine wait for a lock instead of failing with "database is locked", and the store uses
    write-ahead logging so that readers do not block the writer, syncing the log to disk at
    checkpoints rather than at every commit (`sqlite_pragmas`).

    What it touches: the SQLAlchemy engine(s) of this store only, which MLflow keeps one per
    URI for the process (the client's store, and the fluent API's for the same URI, share
    it). Connections MLflow opened while building the store, before the hook was on, are
    closed and reopened with it. Another engine of the process, another store's included,
    is left as it is."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    if uri.startswith("sqlite:///"):
        for engine in store_engines(client):
            _wait_for_locks(engine)
    return client


def store_engines(client: Any) -> list[Any]:
    """The SQLAlchemy engines behind an MlflowClient's tracking store (its `engine`, and a
    read replica's where one is set); none for a server or a file store."""
    from pipeline.compat.mlflow import tracking_store

    store = tracking_store(client)
    return [engine for engine in (getattr(store, "engine", None),
                                  getattr(store, "read_engine", None)) if engine is not None]


def _wait_for_locks(engine: Any) -> None:
    from sqlalchemy import event

    if event.contains(engine, "connect", sqlite_pragmas):
        return
    event.listen(engine, "connect", sqlite_pragmas)
    engine.dispose()  # pooled connections opened without the pragmas: reopened with them


def sqlite_pragmas(connection: Any, _record: Any) -> None:
    import sqlite3

    if isinstance(connection, sqlite3.Connection):
        connection.execute("PRAGMA busy_timeout = 60000")
        connection.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL syncs the log at checkpoints, not at every commit (each of a job's
        # dozens of commits would wait for the disk): a crash of any process loses no
        # committed run, a power cut may lose the last ones, and never corrupts the store.
        connection.execute("PRAGMA synchronous = NORMAL")


# Less room than this on a run directory's file system is a full disk: Hydra's saved config, the
# job's log and the store's first writes would fail on it, each with its own traceback.
MIN_FREE_BYTES = 1 << 20


def unwritable(directory: Path) -> str | None:
    """Why `directory` cannot be created or written to (a file in the way, no permission, a
    read-only mount, a full disk), or None if it can."""
    import shutil

    existing = directory.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        return (f"no space left on device ({free // 1024} KiB free on the file system of "
                f"{existing}); free space there")
    return None
