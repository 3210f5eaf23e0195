"""MLflow tracking: one parent run per job, one child run per fold, metrics sent in batches.

The package's face is what the runner uses: `connect` gives the job's tracker, a `Tracker`
(`tracker`) on rank 0 and a `NullTracker` (same calls, nothing sent) on the other ranks, both
`BaseTracker`s (`base`). Each job behind it has its module: `secrets` (no password shown), `params`
(a config as params, and its hash), `processes` (the tags naming a run's process), `client`
(MLflow's client with faults as one line), `store` (which store, checked, SQLite shared
safely); ranks come from `pipeline.distributed`.
"""

from __future__ import annotations

from pipeline.distributed import global_rank
from pipeline.tracking.base import BaseTracker, NullTracker
from pipeline.tracking.client import TrackingFailure, quoted
from pipeline.tracking.params import config_hash, flatten, loggable
from pipeline.tracking.processes import process_tags
from pipeline.tracking.secrets import redact, redact_logs, scrub
from pipeline.tracking.store import check_store, default_uri, reader, unwritable
from pipeline.tracking.tracker import PARENT_TAG, Tracker
from pipeline.tracking.tracker import _signals_deferred as _signals_deferred

__all__ = [
    "PARENT_TAG", "BaseTracker", "NullTracker", "Tracker", "TrackingFailure", "check_store",
    "config_hash", "connect", "default_uri", "flatten", "global_rank", "loggable",
    "process_tags", "quoted", "reader", "redact", "redact_logs", "scrub", "unwritable",
]


def connect(uri: str, experiment: str, *, migrate: bool = False) -> BaseTracker:
    """The job's tracker. Under torchrun or SLURM every rank runs the job (each fit is
    distributed); only rank 0 talks to MLflow, so a job still makes one parent run. Runs of the
    experiment left RUNNING by a process that is gone are marked KILLED first. `migrate`: a
    store of an older MLflow is migrated rather than refused."""
    if global_rank() != 0:
        return NullTracker(uri, experiment)
    from pipeline.tracking.orphans import mark_orphans

    tracker = Tracker(uri, experiment, migrate=migrate)
    mark_orphans(tracker.client, [tracker.experiment_id])  # runs of jobs killed outright
    return tracker
