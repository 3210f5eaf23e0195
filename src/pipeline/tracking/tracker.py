"""The MLflow side of one job (`Tracker`): its experiment, runs that always end whatever
happens (signals held back while a run is created or ended), batched logging, artifacts
uploaded straight to the run's location, the refitted model logged."""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.distributed import world_size
from pipeline.errors import STOP_SIGNALS, Interrupted, PipelineError, signal_of
from pipeline.tracking.base import BaseTracker
from pipeline.tracking.client import (
    RecordedClient,
    TrackingFailure,
    check_reachable,
    failure_of,
    quiet_mlflow,
    quoted,
)
from pipeline.tracking.processes import process_tags
from pipeline.tracking.secrets import redact, scrub
from pipeline.tracking.store import check_store, create_whole, open_client, sqlite_guard, unwritable

if TYPE_CHECKING:
    import pandas as pd

PARENT_TAG = "mlflow.parentRunId"


class Tracker(BaseTracker):
    """The MLflow side of one job: an experiment, runs that always end, batched logging."""

    def __init__(self, uri: str, experiment: str, *, migrate: bool = False):
        self.uri, self.experiment = uri, experiment
        # Per parent run, the folds that ended FINISHED: a failure says they are kept.
        self._finished: dict[str, list[str]] = {}
        # Where each open run's artifacts go, as `create_run` answered (see `_upload`).
        self._artifact_uris: dict[str, str] = {}
        self._repositories: dict[str, Any] = {}
        quiet_mlflow()
        if uri.startswith(("http://", "https://")):
            check_reachable(uri)
        from mlflow.exceptions import MlflowException
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with sqlite_guard(uri):
                check_store(uri, migrate=migrate)
                create_whole(uri)
                self.client = RecordedClient(open_client(uri), uri)
                found = self._experiment(experiment)
                self.experiment_id = found.experiment_id
                self.client.artifacts = found.artifact_location
        except PipelineError:
            raise
        except OSError as error:
            if (failure := failure_of(error, uri)) is not None and failure.disk_full:
                raise failure from error
            store = Path(uri.removeprefix("sqlite:///"))
            reason = unwritable(store.parent) or f"{error.strerror}: {error.filename}"
            raise PipelineError(
                f"cannot create the MLflow store of tracking.uri={redact(uri)} ({reason}); run "
                "from a writable directory or set tracking.uri=sqlite:///<writable dir>/mlflow.db"
            ) from error
        except (MlflowException, SQLAlchemyError) as error:
            if (failure := failure_of(error, uri)) is not None and failure.disk_full:
                raise failure from error
            message = scrub(" ".join(str(error).split()))[:300]
            raise PipelineError(f"tracking.uri={redact(uri)} cannot be used: {message}") from error

    def _experiment(self, name: str) -> Any:
        """The experiment `name` (an `mlflow.entities.Experiment`), created if need be."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found
        try:
            return self.client.get_experiment(self.client.create_experiment(
                name, artifact_location=self._artifact_root(name)))
        except MlflowException:
            # Another job created it in the meantime.
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found

    def finished_run(self, digest: str) -> Any | None:
        """Under torchrun every rank runs the job (they must agree, and only rank 0 reads the
        store): none there."""
        if world_size() > 1:
            return None
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.config_hash = {quoted(digest)} and "
                          "attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"], max_results=1,
        )
        return runs[0] if runs else None

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
        self._artifact_uris[run_id] = run.info.artifact_uri
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
                if parent is None and _is_defect(error):
                    # A defect of ours: its traceback goes with the run, to be reported.
                    self.log_text(run_id, "".join(traceback.format_exception(error)),
                                  "traceback.txt")
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
        finally:
            self._artifact_uris.pop(run_id, None)
            self._repositories.pop(run_id, None)

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
        params: Mapping[str, Any] | None = None,
    ) -> None:
        """Scores, plus per-epoch curves at step=epoch (1-based), and `params` not yet logged,
        in one request."""
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items() if math.isfinite(v)]
        for key, values in (curves or {}).items():
            batch += [Metric(key, float(v), now, epoch)
                      for epoch, v in enumerate(values, 1) if math.isfinite(v)]
        self.client.log_batch(run_id, metrics=batch,
                              params=[Param(k, str(v)) for k, v in (params or {}).items()])

    def log_table(self, run_id: str, table: pd.DataFrame, path: str) -> None:
        self.log_text(run_id, table.to_csv(), path)

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self._upload(run_id, path, lambda local: Path(local).write_text(text, encoding="utf-8"))

    def log_figure(self, run_id: str, figure: Any, path: str) -> None:
        """A matplotlib figure as a PNG artifact, in one upload."""
        self._upload(run_id, path, lambda local: figure.savefig(local, dpi=figure.dpi))

    def _upload(self, run_id: str, path: str, write: Any) -> None:
        """`write(local_path)` makes a file, uploaded as the run's artifact `path`.

        A run this tracker opened uploads straight to the artifact location that creating it
        answered: MLflow's `log_text`/`log_figure` would first read the whole run back from
        the store (every param, tag and metric) to find it."""
        import posixpath
        import tempfile

        folder = posixpath.dirname(posixpath.normpath(path)) or None
        with self.client.failures(), tempfile.TemporaryDirectory() as scratch:
            local = Path(scratch) / posixpath.basename(path)
            write(local)
            self._repository(run_id).log_artifact(str(local), folder)

    def _repository(self, run_id: str) -> Any:
        """The run's artifact repository: made once per open run; for any other run, from
        its record in the store."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        if run_id in self._repositories:
            return self._repositories[run_id]
        uri = self._artifact_uris.get(run_id) or self.client.get_run(run_id).info.artifact_uri
        repository = get_artifact_repository(uri, tracking_uri=self.uri)
        if run_id in self._artifact_uris:
            self._repositories[run_id] = repository
        return repository

    def log_model(self, run_id: str, model: Any, X: pd.DataFrame,
                  packages: tuple[str, ...] = ()) -> float:
        """A fitted scikit-learn pipeline as the run's MLflow model `model`, with a signature
        and an input example taken from `X` (its training rows); returns the seconds it took.

        Stored with cloudpickle: the safe "skops" format cannot hold a torch network, nor the
        functions of this package that the preprocessing calls. The `pipeline` package travels
        with the model (`code_paths`), so it loads where the package is not installed. Its pip
        requirements are named here: left to MLflow, inferring them would load the model in a
        subprocess, for seconds to minutes. A served model refuses numbers in a text column
        (`signature.TextColumns`, the logged pipeline's first step).
        """
        import warnings
        from importlib.metadata import version

        import mlflow
        import mlflow.sklearn
        from mlflow.models import ModelSignature, infer_signature

        from pipeline.compat.mlflow import tracking_uri
        from pipeline.tracking.signature import guarded, input_schema

        started = time.perf_counter()
        needed = ["scikit-learn", "cloudpickle", "pandas", "numpy", "omegaconf", *packages]
        # A local build tag (torch's "+cpu") is no pip requirement.
        requirements = [f"{name}=={version(name).split('+')[0]}" for name in needed]
        # The inputs from all rows, so that the model takes its own training data; the
        # output's type from a few predictions (it is the type of the labels, row by row).
        sample = X.head(5)
        with warnings.catch_warnings():
            # MLflow's hint on integer columns that cannot hold blanks is about the inferred
            # input schema, which is discarded here: `input_schema` is the one logged.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.types\.utils",
                                    message=r"Hint: Inferred schema contains integer column")
            outputs = infer_signature(sample, model.predict(sample)).outputs
        signature = ModelSignature(input_schema(X), outputs)
        saving = logging.getLogger("mlflow.sklearn")
        level = saving.level
        saving.setLevel(logging.ERROR)  # the cloudpickle caution, above, on every job
        try:
            # The fluent API logs to the active run: the parent, reopened here. Leaving the
            # block ends it FINISHED; `run` then sets its final status as for any run.
            with self.client.failures(), tracking_uri(self.uri), \
                    mlflow.start_run(run_id=run_id), warnings.catch_warnings():
                # MLflow's own deprecation warnings (pandas') are not the user's to act on.
                warnings.filterwarnings("ignore", module=r"mlflow\.")
                mlflow.sklearn.log_model(
                    sk_model=guarded(model, signature.inputs), name="model",
                    signature=signature, input_example=sample,
                    serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                    pip_requirements=requirements, code_paths=[str(Path(__file__).parent.parent)])
        finally:
            saving.setLevel(level)
        return time.perf_counter() - started


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


def _is_defect(error: BaseException) -> bool:
    """Whether `error` is a defect of ours rather than the user's mistake (PipelineError), a
    stop signal or the store's failure, each of which says what happened in its own line."""
    return isinstance(error, Exception) and not isinstance(error, PipelineError | TrackingFailure)
