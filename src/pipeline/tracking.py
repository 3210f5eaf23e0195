"""MLflow tracking: one parent run per job, one child run per fold, metrics sent in batches."""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import logging
import math
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import STOP_SIGNALS, Interrupted, PipelineError, signal_of

PARENT_TAG = "mlflow.parentRunId"
# Tags of every run naming the process that made it (see `process_tags`).
HOST_TAG, PID_TAG, PID_START_TAG, PID_SPACE_TAG = "host", "pid", "pid_start", "pid_namespace"
# MLflow keeps param values up to this length.
MAX_PARAM_LENGTH = 6000
# The password in any `scheme://user:password@host` within a text (Hydra's listing of a
# sweep's overrides escapes the colons: `http\://user\:password@host`).
_CREDENTIALS = re.compile(
    r"(?P<start>[A-Za-z][A-Za-z0-9+.-]*\\?://[^\s:/@\\]*)(?P<colon>\\?:)[^\s/@]*@")
# Config keys that say where and how a job is recorded, not what it computes.
NOT_HASHED = ("hydra", "tracking", "resume")


def default_uri() -> str:
    """`MLFLOW_TRACKING_URI` if set, else a SQLite store under ./outputs."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path.cwd() / 'outputs' / 'mlflow.db'}"


def redact(uri: str) -> str:
    """The URI without a password, fit to print (the user name stays)."""
    return scrub(uri)


def scrub(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***`."""
    return _CREDENTIALS.sub(r"\g<start>\g<colon>***@", text)


def loggable(tree: Any) -> Any:
    """A resolved config fit to record or print: the password of every URI in it (the
    `tracking.uri`, whether typed or read from MLFLOW_TRACKING_URI, or any other) redacted."""
    if isinstance(tree, Mapping):
        return {key: loggable(value) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return [loggable(value) for value in tree]
    return scrub(tree) if isinstance(tree, str) else tree


def redact_logs() -> None:
    """Every log record from now on (Hydra's sweep listing, MLflow's warnings, ours) with
    credentials in URLs redacted; a record factory outlives Hydra's reconfiguring of handlers."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts", False):
        return

    def redacting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's to report, later
            return record
        if "@" in message:
            record.msg, record.args = scrub(message), None
        return record

    redacting.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"model": {"lr": 0.1}}` → `{"model.lr": "0.1"}`, as MLflow params."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat


def config_hash(resolved: Mapping[str, Any]) -> str:
    """A digest of what a job computes: its resolved config minus where it is recorded."""
    kept = {key: value for key, value in resolved.items() if key not in NOT_HASHED}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def quoted(value: str) -> str:
    """`value` as a string literal of an MLflow search filter (`tags.sweep = {quoted(dir)}`).

    MLflow's parser knows no escapes: it takes the tokens of a SQL lexer and trims the outer
    quotes (`SearchUtils._strip_quotes`), so `'it''s'` would match the text `it''s`. A value is
    written between the quotes it does not contain; one holding both kinds, or ending in a
    backslash (the lexer reads it as an escaped closing quote), cannot be written at all."""
    for quote in ("'", '"'):
        if quote not in value and not value.endswith("\\"):
            return f"{quote}{value}{quote}"
    raise PipelineError(
        f"{value!r} cannot be searched for in MLflow (its filters know no escapes for a text "
        "holding both ' and \", or ending in a backslash); rename it without one of them")


def process_tags() -> dict[str, str]:
    """What tells, later, whether the process making a run still lives: the host, the process
    id, and when the process started (a pid alone may since belong to another process)."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()),
            PID_START_TAG: process_start(os.getpid()) or "", PID_SPACE_TAG: pid_namespace()}


def pid_namespace() -> str:
    """Which process ids this process sees: containers sharing a host name may each have
    their own (Linux; "" elsewhere)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """When process `pid` of this host started, as `<boot id>:<clock ticks since boot>`; None
    if no such process lives. Without /proc (not Linux) only liveness is known: "" if alive."""
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, someone else's
        return ""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces: fields are counted after it.
    state, *fields = stat[stat.rindex(")") + 2:].split()
    if state in ("Z", "X"):
        return None  # ended, not yet reaped by its parent
    return f"{_boot_id()}:{fields[22 - 4]}"  # field 22 of proc(5), `starttime`


def _boot_id() -> str:
    """Tells this boot of the machine from the others: start ticks restart at each boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def finished_run(tracker: Tracker, digest: str) -> Any | None:
    """The latest parent run of the tracker's experiment that FINISHED with config hash
    `digest` (an `mlflow.entities.Run`), or None. Under torchrun every rank runs the job (they
    must agree, and only rank 0 reads the store)."""
    if not hasattr(tracker, "client") or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.config_hash = {quoted(digest)} and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    return runs[0] if runs else None


def global_rank() -> int:
    """This process's rank when torchrun or SLURM started several copies of the job, else 0."""
    for variable in ("RANK", "SLURM_PROCID"):
        if os.environ.get(variable, "").isdigit():
            return int(os.environ[variable])
    return 0


def connect(uri: str, experiment: str) -> Tracker:
    """The job's tracker. Under torchrun or SLURM every rank runs the job (each fit is
    distributed); only rank 0 talks to MLflow, so a job still makes one parent run. Runs of the
    experiment left RUNNING by a process that is gone are marked KILLED first."""
    if global_rank() != 0:
        return SilentTracker(uri, experiment)
    from pipeline.doctor import mark_orphans

    tracker = Tracker(uri, experiment)
    mark_orphans(tracker.client, [tracker.experiment_id])  # runs of jobs killed outright
    return tracker


class TrackingFailure(PipelineError):
    """The disk, the store or the tracking server failed during a job. The one line says
    what failed and what to do, which finished folds are kept, which runs were marked FAILED
    and which could not be ended (left RUNNING for `python -m pipeline.doctor`)."""

    def __init__(self, cause: str, advice: str, *, disk_full: bool = False,
                 server_lost: bool = False):
        super().__init__(cause)
        self.cause, self.advice = cause, advice
        self.disk_full, self.server_lost = disk_full, server_lost
        self.kept = ""
        self.failed: list[str] = []
        self.unended: list[str] = []

    def __str__(self) -> str:
        parts = [self.cause, self.advice] + ([self.kept] if self.kept else [])
        if self.failed:
            parts.append(f"marked FAILED: {', '.join(self.failed)}")
        if self.unended:
            until = "the server is back" if self.server_lost else "the store is writable again"
            parts.append(f"could not be ended, left RUNNING: {', '.join(self.unended)} "
                         f"(`python -m pipeline.doctor` marks them once {until})")
        return "; ".join(parts)


# Seconds between tries of a call that found the SQLite store locked (about 12 s in all).
LOCKED_RETRY_PAUSES = (0.1, 0.3, 1.0, 3.0, 8.0)


class _Recorded:
    """An MlflowClient whose calls raise a TrackingFailure when the disk, the store or the
    server fails; once the server is lost, later calls fail at once instead of each waiting
    out MLflow's retries."""

    def __init__(self, client: Any, uri: str):
        self._client, self._uri = client, uri
        self._lost: TrackingFailure | None = None
        self.artifacts = ""  # where the experiment's artifacts go, for the message

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            # SQLite answers "database is locked" at once, busy timeout or not, when a write
            # meets another process's snapshot (WAL); the call rolled back and is tried again.
            for pause in (*LOCKED_RETRY_PAUSES, None):
                try:
                    with self.failures():
                        return attribute(*args, **kwargs)
                except TrackingFailure as failure:
                    if pause is None or "database is locked" not in failure.cause:
                        raise
                    time.sleep(pause)

        return recorded

    @contextmanager
    def failures(self) -> Iterator[None]:
        if self._lost is not None:
            raise TrackingFailure(self._lost.cause, self._lost.advice, server_lost=True)
        try:
            yield
        except Exception as error:
            failure = _failure(error, self._uri, self.artifacts)
            if failure is None:
                raise
            if failure.server_lost:
                self._lost = failure
            raise failure from error


def _failure(error: BaseException, uri: str, artifacts: str = "") -> TrackingFailure | None:
    """`error` as the infrastructure failure it is (disk full, server gone, store failing),
    or None for anything else (a bug or a user's mistake, reported as it is)."""
    import requests
    from sqlalchemy.exc import OperationalError

    chain = [error]
    while (cause := chain[-1].__cause__ or chain[-1].__context__) and cause not in chain:
        chain.append(cause)
    store = redact(uri)
    for link in chain:
        in_store = "database or disk is full" in str(link)
        if in_store or isinstance(link, OSError) and link.errno in (errno.ENOSPC, errno.EDQUOT):
            # shutil names the copy's target second; a bare write names no file at all.
            where = (uri.removeprefix("sqlite:///") if in_store else
                     getattr(link, "filename2", None) or link.filename
                     or f"the run's artifacts under {artifacts.removeprefix('file://')}")
            return TrackingFailure(
                f"no space left on device writing {where}",
                "free space there or set tracking.uri=sqlite:///<a disk with room>/mlflow.db "
                "and run the job again", disk_full=True)
    for link in chain:
        if isinstance(link, requests.ConnectionError | requests.Timeout):
            return TrackingFailure(
                f"tracking server {store} stopped answering during the job "
                f"({type(link).__name__})",
                "check that it runs (docker compose ps), then run the job again",
                server_lost=True)
    for link in chain:
        if isinstance(link, OSError) and link.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            where = getattr(link, "filename2", None) or link.filename or "the store"
            return TrackingFailure(f"cannot write {where} ({link.strerror})",
                                   "fix the directory's permissions or set tracking.uri "
                                   "to a writable store, then run the job again")
        if isinstance(link, OperationalError):
            reason = " ".join(str(link.orig).split())[:200]
            return TrackingFailure(f"the MLflow store {store} failed during the job ({reason})",
                                   "check its disk and file, then run the job again")
    return None


def check_store(uri: str, *, reading: bool = False) -> None:
    """Refuse, before MLflow opens it, a store that MLflow would damage or misread: another
    application's SQLite database (MLflow would add its tables to it), a file that is not a
    database, a store written by a newer MLflow, a directory that is not an `mlruns` store.
    `reading`: a store that does not exist yet is an error too (a reader never creates one)."""
    if uri.startswith("sqlite:///"):
        _check_sqlite_store(uri, reading)
    elif "://" not in uri or uri.startswith("file:"):
        _check_file_store(uri, reading)


def _check_sqlite_store(uri: str, reading: bool) -> None:
    import sqlite3

    path = Path(uri.removeprefix("sqlite:///"))
    shown = redact(uri)
    if path.is_file() and path.stat().st_size > 0:
        try:
            # Read-only: looking must not change another application's file.
            with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
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
            _check_schema(shown, revision[0])
            return
    if reading:
        raise PipelineError(f"no MLflow store at {path}; run a job first, or pass --uri")


def _check_schema(shown: str, revision: str) -> None:
    """A store at a schema revision this MLflow does not know was written by a newer one:
    MLflow would refuse it with advice to 'upgrade' the store, which cannot work."""
    from importlib.metadata import version

    import mlflow.store

    folder = Path(mlflow.store.__file__).parent / "db_migrations"
    # MLflow names each migration `<revision>_<what>.py`: a listing answers in a millisecond
    # for every store this MLflow wrote, where alembic parses ~70 scripts for a second.
    if revision in {path.name.split("_", 1)[0] for path in folder.glob("versions/*.py")}:
        return
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(folder)).walk_revisions()
    if revision not in {script.revision for script in scripts}:
        raise PipelineError(
            f"tracking.uri={shown} was written by a newer MLflow (schema revision {revision}, "
            f"unknown to the installed MLflow {version('mlflow')}) and is left untouched; "
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


def _create_whole(uri: str) -> None:
    """A new SQLite store is built in a file beside it and appears complete, in one step: a
    reader that opens it meanwhile (compare, MLflow's UI, `mlflow.search_runs`) finds no store
    or a whole one, never a half-migrated one that it would try to finish under the job."""
    import sqlite3

    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    path = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    if path is None or path.exists():
        return
    building = path.with_name(f"{path.name}.creating-{os.getpid()}")
    engine = sqlalchemy.create_engine(f"sqlite:///{building}")
    try:
        _initialize_tables(engine)
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
    if not Path(uri.removeprefix("sqlite:///")).is_file():
        check_store(uri, reading=True)  # says there is no store, without making a lock file
    try:
        with _sqlite_guard(uri):
            check_store(uri, reading=True)
            return MlflowClient(tracking_uri=uri)
    except PermissionError:
        # A read-only directory: no lock file can be made there, nor can a job write there.
        return MlflowClient(tracking_uri=uri)


class Tracker:
    """The MLflow side of one job: an experiment, runs that always end, batched logging."""

    def __init__(self, uri: str, experiment: str):
        self.uri, self.experiment = uri, experiment
        # Per parent run, the folds that ended FINISHED: a failure says they are kept.
        self._finished: dict[str, list[str]] = {}
        _quiet_mlflow()
        if uri.startswith(("http://", "https://")):
            _check_reachable(uri)
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with _sqlite_guard(uri):
                check_store(uri)
                _create_whole(uri)
                self.client = _Recorded(MlflowClient(tracking_uri=uri), uri)
                self.experiment_id = self._experiment(experiment)
                self.client.artifacts = self.client.get_experiment(
                    self.experiment_id).artifact_location
        except PipelineError:
            raise
        except OSError as error:
            if (failure := _failure(error, uri)) is not None and failure.disk_full:
                raise failure from error
            store = Path(uri.removeprefix("sqlite:///"))
            reason = unwritable(store.parent) or f"{error.strerror}: {error.filename}"
            raise PipelineError(
                f"cannot create the MLflow store of tracking.uri={redact(uri)} ({reason}); run "
                "from a writable directory or set tracking.uri=sqlite:///<writable dir>/mlflow.db"
            ) from error
        except (MlflowException, SQLAlchemyError) as error:
            if (failure := _failure(error, uri)) is not None and failure.disk_full:
                raise failure from error
            message = scrub(" ".join(str(error).split()))[:300]
            raise PipelineError(f"tracking.uri={redact(uri)} cannot be used: {message}") from error

    def _experiment(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=self._artifact_root(name))
        except MlflowException:
            # Another job created it in the meantime.
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def _artifact_root(self, name: str) -> str | None:
        """Beside a local SQLite store, artifacts go to outputs/mlartifacts, not ./mlruns."""
        if not self.uri.startswith("sqlite:///"):
            return None
        root = Path(self.uri.removeprefix("sqlite:///")).parent / "mlartifacts"
        return (root / name.replace("/", "_")).resolve().as_uri()

    @contextmanager
    def run(
        self, name: str, *, parent: str | None = None, params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Iterator[str]:
        """A run that ends FINISHED, FAILED (error message as a tag) or KILLED, whatever happens.

        A stop signal (Ctrl-C, SIGTERM, SIGHUP) leaves a top-level run as an `Interrupted` that
        says where the partial results are. The run's tags name the process that made it, so
        that `pipeline.doctor` can tell if the run was orphaned by a process killed outright.
        """
        from mlflow.entities import Param

        run_tags = {**(tags or {}), **process_tags(),
                    **({PARENT_TAG: parent} if parent else {})}
        with _signals_deferred() as arrived:  # a run that exists is always ended below
            run = self.client.create_run(self.experiment_id, run_name=name, tags=run_tags)
        run_id = run.info.run_id
        try:
            if arrived:
                raise Interrupted(signum=arrived[0])
            if params:
                self.client.log_batch(
                    run_id, params=[Param(k, str(v)) for k, v in params.items()]
                )
            yield run_id
        except KeyboardInterrupt as interrupt:
            with _signals_deferred():  # a second signal must not leave the run RUNNING
                self.client.set_terminated(run_id, "KILLED")
            if parent or getattr(interrupt, "where", ""):
                raise
            raise Interrupted(
                f"partial results are in MLflow experiment {self.experiment!r}, run {run_id} "
                f"(KILLED; its finished fold runs are kept), store {redact(self.uri)}",
                signum=signal_of(interrupt),
            ) from None
        except BaseException as error:
            message = scrub(" ".join(str(error).split()))[:5000] or repr(error)
            failure = error if isinstance(error, TrackingFailure) else None
            try:
                self.client.set_tag(run_id, "error", message)
                self.client.set_terminated(run_id, "FAILED")
                if failure is not None:
                    failure.failed.append(f"{name} ({run_id})")
            except TrackingFailure as ending:
                # The store or server that failed the job cannot end its runs either: the
                # one line says so, instead of a second traceback.
                failure = failure or ending
                failure.unended.append(f"{name} ({run_id})")
            if failure is not None and parent is None:
                failure.kept = self._kept(run_id)
            if failure is not None and failure is not error:
                raise failure from error
            raise
        else:
            try:
                self.client.set_terminated(run_id, "FINISHED")
            except TrackingFailure as failure:
                failure.unended.append(f"{name} ({run_id})")
                raise
            if parent:
                self._finished.setdefault(parent, []).append(name)

    def _kept(self, parent: str) -> str:
        folds = self._finished.get(parent, [])
        if not folds:
            return "no fold had finished"
        where = f"experiment {self.experiment!r} of {redact(self.uri)}"
        verb = "is" if len(folds) == 1 else "are"
        return f"{', '.join(folds)} finished and {verb} kept in {where}"

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float],
        curves: Mapping[str, list[float]] | None = None,
    ) -> None:
        """Scores, plus per-epoch curves at step=epoch (1-based), in one request."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items() if math.isfinite(v)]
        for key, values in (curves or {}).items():
            batch += [Metric(key, float(v), now, epoch)
                      for epoch, v in enumerate(values, 1) if math.isfinite(v)]
        self.client.log_batch(run_id, metrics=batch)

    def log_table(self, run_id: str, table: pd.DataFrame, path: str) -> None:
        self.client.log_text(run_id, table.to_csv(), path)

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self.client.log_text(run_id, text, path)

    def log_figure(self, run_id: str, figure: Any, path: str) -> None:
        """A matplotlib figure as a PNG artifact, in one upload."""
        self.client.log_figure(run_id, figure, path, save_kwargs={"dpi": figure.dpi})

    def log_model(self, run_id: str, model: Any, X: pd.DataFrame) -> float:
        """A fitted scikit-learn pipeline as the run's MLflow model `model`, with a signature
        and an input example taken from `X` (its training rows); returns the seconds it took.

        Stored with cloudpickle: the safe "skops" format cannot hold a torch network, nor the
        functions of this package that the preprocessing calls. The `pipeline` package travels
        with the model (`code_paths`), so it loads where the package is not installed. Its pip
        requirements are named here: left to MLflow, inferring them would load the model in a
        subprocess, for seconds to minutes.
        """
        import warnings
        from importlib.metadata import version

        import mlflow
        import mlflow.sklearn
        from mlflow.models import ModelSignature, infer_signature

        from pipeline.models import requires
        from pipeline.predict import input_schema

        started = time.perf_counter()
        packages = ["scikit-learn", "cloudpickle", "pandas", "numpy", "omegaconf"]
        if "torch" in requires(model):
            packages.append("torch")
        # A local build tag (torch's "+cpu") is no pip requirement.
        requirements = [f"{name}=={version(name).split('+')[0]}" for name in packages]
        # The inputs from all rows, so that the model takes its own training data; the
        # output's type from a few predictions (it is the type of the labels, row by row).
        sample = X.head(5)
        signature = ModelSignature(input_schema(X), infer_signature(sample, model.predict(
            sample)).outputs)
        mlflow.set_tracking_uri(self.uri)
        saving = logging.getLogger("mlflow.sklearn")
        level = saving.level
        saving.setLevel(logging.ERROR)  # the cloudpickle caution, above, on every job
        try:
            # The fluent API logs to the active run: the parent, reopened here. Leaving the
            # block ends it FINISHED; `run` then sets its final status as for any run.
            with self.client.failures(), mlflow.start_run(run_id=run_id), \
                    warnings.catch_warnings():
                # MLflow's own deprecation warnings (pandas') are not the user's to act on.
                warnings.filterwarnings("ignore", module=r"mlflow\.")
                mlflow.sklearn.log_model(
                    sk_model=model, name="model", signature=signature, input_example=sample,
                    serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                    pip_requirements=requirements, code_paths=[str(Path(__file__).parent)])
        finally:
            saving.setLevel(level)
        return time.perf_counter() - started


def unwritable(directory: Path) -> str | None:
    """Why `directory` cannot be created or written to, or None if it can."""
    existing = directory.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


@contextmanager
def _signals_deferred() -> Iterator[list[int]]:
    """Stop signals (SIGINT, SIGTERM, SIGHUP) held back for the duration; the list holds those
    that came (main thread only: signal handlers cannot be set elsewhere)."""
    arrived: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield arrived
        return
    previous = {signum: signal.signal(signum, lambda signum, frame: arrived.append(signum))
                for signum in STOP_SIGNALS}
    try:
        yield arrived
    finally:
        for signum, handler in previous.items():
            # None: a handler set outside Python; the nearest Python equivalent is restored.
            default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
            signal.signal(signum, default if handler is None else handler)


@contextmanager
def _sqlite_guard(uri: str) -> Iterator[None]:
    """Make a local SQLite store safe for jobs running side by side (joblib launcher).

    Connections wait for a lock instead of failing with "database is locked", the store uses
    write-ahead logging so that readers do not block the writer, and creating the store (its
    schema migrations) happens in one process at a time.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    _wait_for_sqlite_locks()
    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _wait_for_sqlite_locks() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _sqlite_pragmas):
        event.listen(Engine, "connect", _sqlite_pragmas)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    import sqlite3

    if isinstance(connection, sqlite3.Connection):
        connection.execute("PRAGMA busy_timeout = 60000")
        connection.execute("PRAGMA journal_mode = WAL")


def _check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds with the URI, instead of MLflow's minutes of silent retries."""
    import requests

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except requests.RequestException as error:
        reason = type(error).__name__
        raise PipelineError(
            f"tracking server {redact(uri)} is unreachable ({reason}); start it "
            "(docker compose up -d) or drop tracking=server / tracking.uri to use the local store"
        ) from error
    # A server that dies during the job should not stall it for minutes either.
    # Two retries one and two seconds apart ride out a restart; a dead server is known in
    # about three seconds, and the tracker then stops asking (see _Recorded).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def _quiet_mlflow() -> None:
    """MLflow's first use of a SQLite store logs every schema migration at INFO; and a job
    reports to the user's tracking store only, so MLflow's usage telemetry is off unless the
    user turns it on."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # The job prints where its runs are once, at the end; not a link per run.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name in ("alembic", "mlflow.store.db.utils", "mlflow.tracking._tracking_service"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # MLflow logs a store's failure with its traceback, then raises it: the job reports it.
    store_log = logging.getLogger("mlflow.store.db.utils")
    if _reraised not in store_log.filters:
        store_log.addFilter(_reraised)


def _reraised(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("SQLAlchemy database error")


class SilentTracker(Tracker):
    """A rank other than 0: the same calls, nothing sent."""

    def __init__(self, uri: str, experiment: str):
        self.uri, self.experiment_id = uri, ""

    @contextmanager
    def run(self, name: str, **kwargs: Any) -> Iterator[str]:
        yield ""

    def log_metrics(self, run_id: str, metrics: Mapping[str, float],
                    curves: Mapping[str, list[float]] | None = None) -> None:
        pass

    def log_text(self, run_id: str, text: str, path: str) -> None:
        pass

    def log_table(self, run_id: str, table: pd.DataFrame, path: str) -> None:
        pass

    def log_figure(self, run_id: str, figure: Any, path: str) -> None:
        pass

    def log_model(self, run_id: str, model: Any, X: pd.DataFrame) -> float:
        return 0.0
