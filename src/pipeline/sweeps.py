"""Hydra callbacks for multirun bookkeeping: a failing job does not stop the sweep, and the
sweep ends by naming its best job (tagged in MLflow) and the jobs that failed; a sweep
interrupted or run by Ray or submitit ends its runs and processes. (What is checked before a
job or sweep starts is `guards`.)"""

from __future__ import annotations

import contextlib
import math
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pipeline.compat.hydra import job_error
from pipeline.errors import JobStopped, PipelineError
from pipeline.tracking.client import store_faults

# Each job of a sweep records its outcome in one file per job number under the sweep's
# directory: launchers that run jobs in other processes (joblib, SLURM) keep no callback
# state, files are seen from anywhere. Keyed by the sweep's own job numbers rather than
# searched for: a reused sweep directory, job directories named by `hydra.sweep.subdir` (or
# put outside the sweep's) and names with glob characters neither add outcomes that are not
# this sweep's nor hide any that are.
OUTCOMES = ".outcomes"
# How a job's outcome marks a defect of ours (not the user's mistake): the sweep then exits 2.
INTERNAL = "internal error: "
OK = "ok"
# The directory a Ray sweep was started from, given to its worker processes (see
# conf/hydra/launcher/ray.yaml and `enter_sweep_cwd`).
SWEEP_CWD = "PIPELINE_SWEEP_CWD"
# This process's sweep, (tracking URI, sweep dir, launcher), once it has started.
_sweep: tuple[str | None, str, str] | None = None
# The module submitit_local runs each job's controller as: the controller outlives the sweep's
# process, and its job (a child of it) with it.
LOCAL_CONTROLLER = b"submitit.local._local"


class SweepSummary(Callback):
    """Turns a failed job into a NaN objective (a failed trial for optimising sweepers), so that
    the other jobs run: a user mistake (PipelineError) with its one line, any other exception
    with its traceback. Once the sweep is over, tags its best parent run `best_in_sweep=true`
    and prints it, then lists the failed jobs and exits non-zero if there were any: a job
    that started and recorded no outcome (killed outright) counts as failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Outcomes left by an earlier sweep into the same directory are not this one's.
        for path in _outcome_files(config):
            path.unlink()
        global _sweep
        launcher = str(config.hydra.launcher.get("_target_", ""))
        _sweep = (config.tracking.uri, str(config.hydra.sweep.dir), launcher)
        if "joblib" in launcher:
            # Jobs in worker processes leave MLflow unloaded here, and loading it and the store
            # takes seconds: spent now (the sweep's summary needs it anyway), not when an
            # interrupted sweep must end its runs.
            _open_store(config.tracking.uri, config.tracking.get("migrate") is True)
            _start_resource_trackers_deaf_to_sighup()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if _multirun(config):
            # A failure until the job's end says otherwise: a job killed outright stays one.
            _record(config, f"{_job(config)}: ended without recording an outcome (killed, "
                            "or its end could not be recorded)")

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        from pipeline.tracking.secrets import scrub

        if not _multirun(config):
            return  # a single job's failure is the command's own
        if job_return.status != JobStatus.FAILED:
            _record(config, OK)
            return
        error = job_error(job_return)
        kind = ""
        if not isinstance(error, PipelineError | JobStopped):
            traceback.print_exception(error, file=sys.stderr)  # a defect of ours: show where
            kind = f"{INTERNAL}{type(error).__name__}: "
        message = " ".join(str(error).split())
        # Recorded before the failure becomes a NaN: should recording fail, the job stays
        # FAILED and Hydra stops the sweep with its error rather than count it a success.
        _record(config, scrub(f"{_job(config)}: {kind}{message}"))
        job_return.status = JobStatus.COMPLETED
        job_return.return_value = math.nan

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from pipeline.tracking.secrets import scrub

        try:
            outcomes = _read_outcomes(config)
        except OSError as error:  # not knowing is not success
            print(f"error: the sweep's job outcomes cannot be read: {error}", file=sys.stderr)
            sys.exit(1)
        if not outcomes:  # every sweep runs a job, and every job records its start
            print(f"error: no job of the sweep recorded an outcome in {_outcomes(config)}",
                  file=sys.stderr)
            sys.exit(1)
        failures = [outcome for outcome in outcomes.values() if outcome != OK]
        try:
            best = mark_best(config.tracking.uri, str(config.hydra.sweep.dir))
        except store_faults() as error:  # Hydra would make it a warning and hide the failures
            best = None
            print(scrub(f"warning: the sweep's best job could not be tagged in MLflow: "
                        f"{type(error).__name__}: {' '.join(str(error).split())}"),
                  file=sys.stderr)
        if best:
            print(best)
        if failures:
            defects = sum(INTERNAL in failure for failure in failures)
            print(f"error: {len(failures)} of {len(outcomes)} jobs failed"
                  + (f" ({defects} by an internal error, a defect of pipeline: its traceback "
                     "is above)" if defects else "") + ":", file=sys.stderr)
            print("\n".join(failures), file=sys.stderr)
            sys.exit(2 if defects else 1)


def _multirun(config: DictConfig) -> bool:
    from hydra.types import RunMode

    return config.hydra.mode == RunMode.MULTIRUN


def _outcomes(config: DictConfig) -> Path:
    """The sweep's outcome folder, absolute: a job may run in another directory
    (`hydra.job.chdir=true`) than the one a relative `hydra.sweep.dir` was given from."""
    return Path(config.hydra.runtime.cwd, str(config.hydra.sweep.dir), OUTCOMES)


def _job(config: DictConfig) -> str:
    overrides = " ".join(config.hydra.overrides.task or [])
    return f"  #{config.hydra.job.num} {overrides}"


def _record(config: DictConfig, outcome: str) -> None:
    folder = _outcomes(config)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{config.hydra.job.num}.txt").write_text(outcome)


def _outcome_files(config: DictConfig) -> list[Path]:
    folder = _outcomes(config)
    return [path for path in folder.iterdir() if path.suffix == ".txt" and path.stem.isdigit()
            ] if folder.is_dir() else []


def _read_outcomes(config: DictConfig) -> dict[int, str]:
    """Every job's outcome by job number; a number below the highest with no file is a job
    that never recorded even its start."""
    found = {int(path.stem): path.read_text() for path in _outcome_files(config)}
    for number in range(max(found, default=-1) + 1):
        found.setdefault(number, f"  #{number}: recorded no outcome, not even its start")
    return dict(sorted(found.items()))


def _start_resource_trackers_deaf_to_sighup() -> None:
    """joblib's resource trackers ignore SIGINT and SIGTERM, not SIGHUP: a SIGHUP to the
    sweep's process group kills them, and the sweep's clean-up starts new ones that print a
    traceback per resource. Started now with SIGHUP ignored (a setting the trackers inherit),
    they outlive every stop signal; the sweep's own handler is set back at once."""
    import signal
    from multiprocessing import resource_tracker

    from joblib.externals.loky.backend import resource_tracker as loky_resource_tracker

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        loky_resource_tracker.ensure_running()
        resource_tracker.ensure_running()
    finally:
        signal.signal(signal.SIGHUP, previous)


def _open_store(uri: str | None, migrate: bool) -> None:
    from pipeline.tracking.client import quiet_mlflow
    from pipeline.tracking.store import check_store, default_uri, open_client, sqlite_guard

    quiet_mlflow()
    uri = uri or default_uri()
    try:
        with sqlite_guard(uri):  # the store may be new: one process at a time creates it
            check_store(uri, migrate=migrate)  # opening a store of an older MLflow migrates it
            open_client(uri)
    except store_faults():  # only a head start: each job reports its store's faults in one line
        pass


def end_interrupted_sweep() -> str | None:
    """After a stop signal in a sweep's own process: the jobs that submitit_local left running
    are stopped, and the runs that its jobs' processes could not end (the joblib launcher kills
    its workers) are marked KILLED. Says so, or None. The jobs of a SLURM sweep are the
    cluster's: they go on, and the line says so."""
    from pipeline.tracking.secrets import redact
    from pipeline.tracking.store import check_store, default_uri, open_client, sqlite_guard

    if _sweep is None:
        return None
    _leave_ray()
    uri, directory, launcher = _sweep[0] or default_uri(), _sweep[1], _sweep[2]
    if launcher.endswith("submitit_launcher.SlurmLauncher"):
        return (f"sweep {directory}: its SLURM jobs go on (submitit leaves them queued and "
                "running); stop them with scancel, their job ids are the folders of "
                f"{directory}/.submitit")
    if launcher.endswith("submitit_launcher.LocalLauncher"):
        stop_local_jobs()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None  # no job got as far as its store
    from pipeline.tracking.orphans import end_sweep, stopped_jobs

    try:
        with sqlite_guard(uri):
            check_store(uri)  # a store of an older MLflow that the jobs refused stays as it is
            client = open_client(uri)
            marked = end_sweep(client, directory)
            # Jobs that heard the signal too (sent to the whole group) ended their runs
            # themselves, before or while the sweep looked.
            killed = len(stopped_jobs(client, directory))
    except store_faults() as error:  # the interrupt is what the user must hear of
        return (f"the runs of sweep {directory} could not be checked ({type(error).__name__}); "
                "python -m pipeline.doctor marks those left RUNNING")
    if not marked and not killed:
        return None
    if marked:
        what = f"{len(marked)} run(s) of the jobs it stopped marked KILLED"
    else:
        what = f"{killed} job(s) it stopped ended KILLED"
    return f"sweep {directory}: {what} (their finished fold runs are kept), store {redact(uri)}"


def enter_sweep_cwd() -> None:
    """Ray's hook for each worker process of a sweep (conf/hydra/launcher/ray.yaml): Ray starts
    its workers in the directory their node was started from; the jobs belong in the one the
    sweep was started from, for a relative `hydra.sweep.dir`, the default store and relative
    data paths. A node without that directory (another machine, no shared file system) stays
    where it is, and each job there refuses to run (`check_sweep_cwd`)."""
    import os

    directory = os.environ.get(SWEEP_CWD)
    if directory and os.path.isdir(directory):
        os.chdir(directory)


def _leave_ray() -> None:
    """A Ray task runs on after its driver's Ctrl-C, until the driver leaves the cluster: then
    Ray kills the workers of the driver's job. Left now (when the Ray launcher connected this
    process), so that the runs of the jobs it stopped are marked KILLED here rather than left
    RUNNING, and no job finishes or starts runs after the sweep said it stopped."""
    ray = sys.modules.get("ray")  # never imported here for a sweep that did not use it
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def check_sweep_cwd() -> None:
    """A job of a Ray sweep on a node without the sweep's directory would leave its outputs
    and the default store where nobody looks for them: it stops with a user mistake."""
    import os
    import socket

    directory = os.environ.get(SWEEP_CWD)
    if directory and not os.path.isdir(directory):
        raise PipelineError(
            f"this job runs on host {socket.gethostname()}, which has no directory {directory} "
            "(where the sweep was started): share it with every Ray node, or run the sweep "
            "with tracking.uri=http://<tracking server> and an absolute hydra.sweep.dir that "
            "every node has")


def stop_local_jobs(wait: float = 30.0) -> list[int]:
    """submitit_local's job controllers outlive the sweep's process: a stop signal sent to it
    alone (`kill`, `timeout`), not to its process group as Ctrl-C is, would leave its jobs
    running unattended. Each job still running gets SIGINT, as Ctrl-C would give it (its runs
    end KILLED, its controller exits quietly), and is waited for (at most `wait` seconds).
    Their process ids; none where /proc does not list a process's children (not Linux)."""
    import os
    import signal
    import time

    from pipeline.tracking.processes import process_start

    jobs = [job for controller in _children(os.getpid())
            if LOCAL_CONTROLLER in _command_line(controller) for job in _children(controller)]
    for job in jobs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(job, signal.SIGINT)
    deadline = time.monotonic() + wait
    while any(process_start(job) is not None for job in jobs) and time.monotonic() < deadline:
        time.sleep(0.1)
    return jobs


def _children(pid: int) -> list[int]:
    """The processes that `pid` started, as Linux's /proc lists them."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in children.read_text().split()]
    return found


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


def mark_best(uri: str | None, sweep: str) -> str | None:
    """Tag the best parent run of `sweep` by its objective (runs that `resume=true` reused in
    it included); a line describing it, or None."""
    from mlflow import MlflowClient

    from pipeline.compare.runs import sweep_runs
    from pipeline.metrics import lower_is_better
    from pipeline.tracking.client import quoted
    from pipeline.tracking.store import check_store, default_uri

    try:
        quoted(sweep)  # before the client, which would make a store that is not there
    except PipelineError:
        return None  # no job of such a sweep ran: each refused the name before any run
    uri = uri or default_uri()
    check_store(uri)  # opening a store of an older MLflow that the jobs refused would migrate it
    client = MlflowClient(tracking_uri=uri)
    runs = sweep_runs(client, None, sweep)  # in every experiment
    if runs.empty or "tags.objective" not in runs:
        return None
    objective = runs["tags.objective"].mode().iloc[0]
    column = f"metrics.{objective}_mean"
    scored = runs.dropna(subset=[column])
    if scored.empty:
        return None
    order = scored[column].sort_values(ascending=lower_is_better(objective))
    best = scored.loc[order.index[0]]
    client.set_tag(best["run_id"], "best_in_sweep", "true")
    return (f"best of {len(runs)} job(s): {best['tags.mlflow.runName']} #{best['tags.job']} "
            f"{objective}_mean={best[column]:.4f} (MLflow run {best['run_id']})")
