"""The MLflow client as a job uses it: a store or server fault is one `TrackingFailure` line
(disk full, server lost, store failing), a locked SQLite store is tried again, a server is
checked before the job, MLflow's own chatter is kept off the console."""

from __future__ import annotations

import errno
import functools
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipeline.errors import PipelineError
from pipeline.tracking.secrets import redact

# Seconds between tries of a call that found the SQLite store locked (about 12 s in all).
LOCKED_RETRY_PAUSES = (0.1, 0.3, 1.0, 3.0, 8.0)


class TrackingFailure(PipelineError):
    """The disk, the store or the tracking server failed during a job (or, as the engine's
    `WorkerKilled`, a fold's worker process was killed). The one line says
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


class RecordedClient:
    """An MlflowClient whose calls raise a TrackingFailure when the disk, the store or the
    server fails; once the server is lost, later calls fail at once instead of each waiting
    out MLflow's retries."""

    def __init__(self, client: Any, uri: str):
        self.wrapped, self._uri = client, uri  # the MlflowClient whose calls are recorded
        self._lost: TrackingFailure | None = None
        self.artifacts = ""  # where the experiment's artifacts go, for the message

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.wrapped, name)
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
        """Any fault of the disk, the store or the server inside the block as a
        TrackingFailure (anything else passes as it is)."""
        if self._lost is not None:
            raise TrackingFailure(self._lost.cause, self._lost.advice, server_lost=True)
        try:
            yield
        except Exception as error:
            failure = failure_of(error, self._uri, self.artifacts)
            if failure is None:
                raise
            if failure.server_lost:
                self._lost = failure
            raise failure from error


def store_faults() -> tuple[type[BaseException], ...]:
    """What opening or reading a store can raise besides our own one-line errors: MLflow's,
    SQLAlchemy's and the operating system's. For `except store_faults():`, which evaluates it
    only once an exception is on its way, so that MLflow is imported only then."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    return PipelineError, MlflowException, SQLAlchemyError, OSError


def failure_of(error: BaseException, uri: str, artifacts: str = "") -> TrackingFailure | None:
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
            # urllib3 names a read that timed out in the error it gives up with (retried, a
            # requests.ConnectionError); a server that accepts and never answers says no more.
            hung = isinstance(link, requests.ReadTimeout) or "Read timed out" in str(link)
            how = (f"stopped answering during the job: no answer in {_waited()}" if hung
                   else f"stopped answering during the job ({type(link).__name__})")
            return TrackingFailure(
                f"tracking server {store} {how}",
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


# Seconds the check before a job waits for the server's answer, unless the user set MLflow's own
# MLFLOW_HTTP_REQUEST_TIMEOUT: a server that accepts connections and never answers (hung, or
# another service on its port) is told in seconds, not after MLflow's two minutes.
REACHABLE_TIMEOUT = 5.0
# MLflow's HTTP settings for the job's own requests where the user set none: two retries one
# and two seconds apart ride out a restart; a request waits 30 s for an answer, time for the
# server to take in a model's artifacts. A dead server is known in about three seconds, a hung
# one in about a minute and a half (3 tries), and the tracker then stops asking (RecordedClient).
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
_set_here: dict[str, str] = {}  # those of HTTP_DEFAULTS that check_reachable set, not the user


def check_reachable(uri: str) -> None:
    """Fail in seconds with the URI, instead of MLflow's minutes of silent retries: a server
    that refuses, or one that does not answer within `REACHABLE_TIMEOUT` seconds (or the
    user's MLFLOW_HTTP_REQUEST_TIMEOUT).

    What it touches besides: MLflow's HTTP retry settings, environment variables of this
    process (`HTTP_DEFAULTS`, read by MLflow at each request), set only where the user set
    none, so that a server that dies or hangs during the job does not stall it for minutes."""
    import requests

    timeout = _user_timeout() or REACHABLE_TIMEOUT
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except requests.Timeout as error:
        set_by = " (MLFLOW_HTTP_REQUEST_TIMEOUT)" if _user_timeout() else ""
        raise PipelineError(
            f"tracking server {redact(uri)} did not answer within {timeout:g} s{set_by}: it "
            "accepts connections but sends nothing (hung, or another service on that port); "
            "restart it (docker compose restart) or check tracking.uri") from error
    except requests.RequestException as error:
        reason = type(error).__name__
        raise PipelineError(
            f"tracking server {redact(uri)} is unreachable ({reason}); start it "
            "(docker compose up -d) or drop tracking=server / tracking.uri to use the local store"
        ) from error
    for name, value in HTTP_DEFAULTS.items():
        if name not in os.environ:
            os.environ[name] = _set_here[name] = value


def _user_timeout() -> float | None:
    """MLFLOW_HTTP_REQUEST_TIMEOUT as the user set it (not check_reachable), in seconds."""
    value = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT")
    if not value or _set_here.get("MLFLOW_HTTP_REQUEST_TIMEOUT") == value:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # MLflow refuses it at its first request, naming it


def _waited() -> str:
    """How long a job's request waited for a server that never answered: MLflow's timeout
    per try and its tries, as set now."""
    timeout = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")  # MLflow's own defaults
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    tries = int(retries) + 1 if retries.isdigit() else retries
    return (f"{tries} tries of {timeout} s each (MLFLOW_HTTP_REQUEST_TIMEOUT={timeout}, "
            f"MLFLOW_HTTP_REQUEST_MAX_RETRIES={retries})")


# MLflow's loggers that quiet_mlflow turns to WARNING: a new SQLite store's schema migrations
# (alembic's and MLflow's INFO lines, one per migration) and the link printed per run.
_CHATTY = ("alembic", "mlflow.store.db.utils", "mlflow.tracking._tracking_service")


def quiet_mlflow() -> None:
    """MLflow as a job uses it: no line per schema migration or per run, no traceback for a
    store failure that the job reports in one line, no usage telemetry.

    What it touches, and nothing else: the loggers in `_CHATTY` (level WARNING), a filter on
    `mlflow.store.db.utils` that drops its "SQLAlchemy database error" record (MLflow logs it,
    then raises the error, which the job reports), and two of MLflow's environment variables
    of this process, set only where the user set none (`MLFLOW_DISABLE_TELEMETRY`: a job
    reports to the user's tracking store only; `MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT`: the
    job prints where its runs are once, at the end). Calling it again changes nothing."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    store_log = logging.getLogger("mlflow.store.db.utils")
    if _reraised not in store_log.filters:
        store_log.addFilter(_reraised)


def _reraised(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("SQLAlchemy database error")
