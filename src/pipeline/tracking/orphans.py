"""Orphaned runs: a job killed outright (SIGKILL, the OOM killer, a power cut) cannot end its
MLflow runs, which stay RUNNING. This finds them and marks them KILLED, with the reason (the
command is `python -m pipeline.doctor`).

Every run records the host, process namespace, process id and process start time of the job
that made it. A RUNNING run is an orphan when it was made on this host (and namespace) and
that process is gone: no process has its id, or the one that has it started at another time
(the id was reused). A run made on another host or in another container cannot be judged
from here and is left as it is: run the doctor there. Each
job does the same for its experiment when it connects to the store, and `pipeline.compare`
for the whole store.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.tracking.processes import (
    HOST_TAG,
    PID_SPACE_TAG,
    PID_START_TAG,
    PID_TAG,
    pid_namespace,
    process_start,
)

log = logging.getLogger("pipeline")
REASON_TAG = "killed_reason"


@dataclass
class Finding:
    """A RUNNING run and what can be said of its process: `orphan` True with the reason, or
    None with why it cannot be told from here."""

    run: Any  # mlflow.entities.Run
    orphan: bool | None
    reason: str

    def describe(self) -> str:
        info = self.run.info
        return f"{info.run_name} {info.run_id} (experiment {info.experiment_id}): {self.reason}"


def judge(tags: dict[str, str], host: str | None = None) -> tuple[bool | None, str]:
    """(True, why) if the process that made a run with these tags is gone; (False, "") if it
    lives; (None, why) if that cannot be told on this host."""
    host = host or socket.gethostname()
    if PID_TAG not in tags or HOST_TAG not in tags:
        return None, "recorded without its process (made before runs named it)"
    pid, recorded = tags[PID_TAG], tags.get(PID_START_TAG, "")
    if tags[HOST_TAG] != host:
        return None, f"made on host {tags[HOST_TAG]}, not this one: run the doctor there"
    if tags.get(PID_SPACE_TAG, pid_namespace()) != pid_namespace():
        return None, (f"made in another container of host {host} (process namespace "
                      f"{tags[PID_SPACE_TAG]}): run the doctor there")
    now = process_start(int(pid))
    where = f"process {pid} on host {host}"
    if now is None:
        return True, f"{where} is gone"
    if recorded and now and now != recorded:
        return True, f"{where} is gone (its id now belongs to a later process)"
    return False, ""


def examine(client: Any, experiment_ids: Iterable[str] | None = None) -> list[Finding]:
    """The RUNNING runs of the experiments (default: all) that are orphans or cannot be judged
    here; runs whose process lives are left out."""
    ids = list(experiment_ids) if experiment_ids is not None else _all_experiments(client)
    host = socket.gethostname()
    findings = []
    for run in _running(client, ids):
        orphan, reason = judge(run.data.tags, host)
        if orphan is not False:
            findings.append(Finding(run, orphan, reason))
    return findings


def mark_orphans(client: Any, experiment_ids: Iterable[str] | None = None, *,
                 dry_run: bool = False) -> list[Finding]:
    """Mark the orphans among the RUNNING runs of the experiments (default: all) KILLED, the
    reason in their `killed_reason` tag; every finding, those marked and those not judged."""
    findings = examine(client, experiment_ids)
    orphans = [finding for finding in findings if finding.orphan]
    for finding in orphans if not dry_run else []:
        client.set_tag(finding.run.info.run_id, REASON_TAG, finding.reason)
        client.set_terminated(finding.run.info.run_id, "KILLED")
    if orphans and not dry_run:
        log.warning("marked %d orphaned run(s) KILLED, their process ended without ending "
                    "them: %s", len(orphans), "; ".join(o.describe() for o in orphans))
    return findings


def mark_store(uri: str, *, dry_run: bool = False) -> list[Finding]:
    """`mark_orphans` over every experiment of the store at `uri`; a store that does not exist
    (or is not MLflow's) is a PipelineError, and none is ever created here."""
    from pipeline.tracking.client import quiet_mlflow
    from pipeline.tracking.store import read_only_store, reader

    quiet_mlflow()  # no "View run" line on stdout per run ended: a reader's stdout is its report
    if not dry_run and read_only_store(uri):
        findings = mark_orphans(reader(uri), dry_run=True)
        if orphans := [finding for finding in findings if finding.orphan]:
            log.warning("%d orphaned run(s) left RUNNING: the store is read-only here",
                        len(orphans))
        return findings
    return mark_orphans(reader(uri), dry_run=dry_run)


def end_sweep(client: Any, sweep: str, wait: float = 10.0) -> list[Finding]:
    """After an interrupted sweep: its jobs' RUNNING runs whose process the launcher stopped
    (joblib kills its workers) marked KILLED, once those processes are gone (at most `wait`
    seconds); the orphans marked."""
    parents = [run for run in _running(client, _all_experiments(client))
               if run.data.tags.get("sweep") == sweep]
    deadline = time.monotonic() + wait
    while (alive := [run for run in parents if judge(run.data.tags)[0] is False]) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive:
        log.warning("%d run(s) of sweep %s left RUNNING: their process still runs (%s)",
                    len(alive), sweep, ", ".join(run.data.tags[PID_TAG] for run in alive))
    experiments = {run.info.experiment_id for run in parents}
    return [finding for finding in mark_orphans(client, experiments) if finding.orphan] \
        if experiments else []


def stopped_jobs(client: Any, sweep: str) -> list[Any]:
    """The parent runs of `sweep` that ended KILLED."""
    from pipeline.tracking.client import quoted

    return client.search_runs(
        _all_experiments(client),
        filter_string=f"tags.sweep = {quoted(sweep)} and attributes.status = 'KILLED'")


def _all_experiments(client: Any) -> list[str]:
    ids, token = [], None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        ids += [experiment.experiment_id for experiment in page]
        token = page.token
        if not token:
            return ids


def _running(client: Any, experiment_ids: list[str]) -> list[Any]:
    runs, token = [], None
    while experiment_ids:
        page = client.search_runs(experiment_ids, "attributes.status = 'RUNNING'",
                                  max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    return runs
