"""MLflow tracking: one parent run per job, one child run per fold, metrics sent in batches."""

from __future__ import annotations

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
        filter_string=f"tags.config_hash = '{digest}' and attributes.status = 'FINISHED'",
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


class Tracker:
    """The MLflow side of one job: an experiment, runs that always end, batched logging."""

    def __init__(self, uri: str, experiment: str):
        self.uri, self.experiment = uri, experiment
        _quiet_mlflow()
        if uri.startswith(("http://", "https://")):
            _check_reachable(uri)
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with _sqlite_guard(uri):
                self.client = MlflowClient(tracking_uri=uri)
                self.experiment_id = self._experiment(experiment)
        except OSError as error:
            store = Path(uri.removeprefix("sqlite:///"))
            reason = unwritable(store.parent) or f"{error.strerror}: {error.filename}"
            raise PipelineError(
                f"cannot create the MLflow store of tracking.uri={redact(uri)} ({reason}); run "
                "from a writable directory or set tracking.uri=sqlite:///<writable dir>/mlflow.db"
            ) from error
        except (MlflowException, SQLAlchemyError) as error:
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
            self.client.set_tag(run_id, "error", message)
            self.client.set_terminated(run_id, "FAILED")
            raise
        else:
            self.client.set_terminated(run_id, "FINISHED")

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
        and an input example taken from `X`; returns the seconds it took.

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
        from mlflow.models import infer_signature

        started = time.perf_counter()
        packages = ["scikit-learn", "cloudpickle", "pandas", "numpy", "omegaconf"]
        if type(model[-1]).__module__.startswith("pipeline."):
            packages.append("torch")
        # A local build tag (torch's "+cpu") is no pip requirement.
        requirements = [f"{name}=={version(name).split('+')[0]}" for name in packages]
        sample = X.head(100)
        signature = infer_signature(sample, model.predict(sample))
        mlflow.set_tracking_uri(self.uri)
        saving = logging.getLogger("mlflow.sklearn")
        level = saving.level
        saving.setLevel(logging.ERROR)  # the cloudpickle caution, above, on every job
        try:
            # The fluent API logs to the active run: the parent, reopened here. Leaving the
            # block ends it FINISHED; `run` then sets its final status as for any run.
            with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
                # MLflow's own deprecation warnings (pandas') are not the user's to act on.
                warnings.filterwarnings("ignore", module=r"mlflow\.")
                mlflow.sklearn.log_model(
                    sk_model=model, name="model", signature=signature, input_example=X.head(5),
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
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
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
