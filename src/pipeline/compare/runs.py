"""Run queries, the one home of what the comparisons (and the sweep's summary) read from an
MLflow store: experiments, finished jobs as a table, a sweep's jobs, the newest job, a job's
fold runs. Each takes a client or a URI; none sets MLflow's process-wide tracking URI."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from pipeline.errors import PipelineError

# The tag that marks a run which is not a job (a comparison's figure and table): whatever
# lists jobs skips runs tagged kind=comparison.
KIND_TAG, COMPARISON = "kind", "comparison"
FINISHED = "attributes.status = 'FINISHED'"
# Runs read per request while looking for the newest job (its folds come first).
NEWEST_PAGE = 100
# Runs read per request into a table: mlflow.search_runs's own page for pandas output.
TABLE_PAGE = 10_000
# Runs of a sweep: the jobs it ran (tag `sweep`) and the finished ones `resume=true` reused in
# it (tag `resumed_in`).
SWEEP_TAGS = ("sweep", "resumed_in")
# The columns that mlflow.search_runs puts first, which a table of no runs has alone.
INFO_COLUMNS = ("run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time")


def reader(uri: str) -> Any:
    """An MlflowClient on the existing store at `uri` (see pipeline.tracking.store.reader)."""
    from pipeline.tracking.store import reader as store_reader

    return store_reader(uri)


def runs_table(client: Any, experiment_ids: list[str], filter_string: str = "") -> pd.DataFrame:
    """The runs that match, one row each, as `mlflow.search_runs(output_format="pandas")` gives
    them (`run_id`, ..., `start_time`, then `metrics.*`, `params.*`, `tags.*`), read through
    `client` rather than the process-wide tracking URI."""
    runs, token = [], None
    while experiment_ids:
        page = client.search_runs(experiment_ids, filter_string, max_results=TABLE_PAGE,
                                  page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    columns: dict[str, list] = {name: [] for name in INFO_COLUMNS}
    keyed: dict[str, dict[str, list]] = {"metrics": {}, "params": {}, "tags": {}}
    for i, run in enumerate(runs):
        for name in INFO_COLUMNS:
            value = getattr(run.info, name)
            if name.endswith("_time"):
                value = pd.to_datetime(value, unit="ms", utc=True)
            columns[name].append(value)
        missing = {"metrics": float("nan"), "params": None, "tags": None}
        for kind, values in (("metrics", run.data.metrics), ("params", run.data.params),
                             ("tags", run.data.tags)):
            found = keyed[kind]
            for key in [key for key in values if key not in found]:
                found[key] = [missing[kind]] * i  # absent from the runs before
            for key, column in found.items():
                column.append(values.get(key, missing[kind]))
    for kind, found in keyed.items():
        columns.update({f"{kind}.{key}": column for key, column in found.items()})
    return pd.DataFrame(columns)


def experiment_ids(client: Any, uri: str, names: list[str] | None) -> tuple[list[str], dict]:
    """(ids of the experiments named, or of every active experiment; id → name of every one).
    An unknown name is a user mistake."""
    from pipeline.tracking.secrets import redact

    found = {e.name: e.experiment_id for e in client.search_experiments()}
    if names:
        unknown = [name for name in names if name not in found]
        if unknown:
            raise PipelineError(f"no experiment {', '.join(map(repr, unknown))} in {redact(uri)}; "
                                f"experiments: {', '.join(found) or 'none'}")
        ids = [found[name] for name in names]
    else:
        ids = list(found.values())
    return ids, {v: k for k, v in found.items()}


def sweep_runs(client: Any, experiment_ids: list[str] | None, sweep: str) -> pd.DataFrame:
    """The finished runs of the sweep directory `sweep` in those experiments (None: every
    active one): the jobs it ran and those `resume=true` reused in it (a run reused in the
    directory it first ran in comes twice). A name no filter can hold is a PipelineError,
    said before the store is asked anything."""
    from pipeline.tracking.client import quoted

    literal = quoted(sweep)
    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in client.search_experiments()]
    found = [runs_table(client, experiment_ids, f"tags.{tag} = {literal} and {FINISHED}")
             for tag in SWEEP_TAGS]
    return pd.concat([frame for frame in found if not frame.empty] or found[:1],
                     ignore_index=True)


def finished_runs(client: Any, experiment_ids: list[str]) -> pd.DataFrame:
    """Every finished run of those experiments."""
    return runs_table(client, experiment_ids, FINISHED)


def jobs_only(runs: pd.DataFrame) -> pd.DataFrame:
    """Parent runs of jobs: no fold runs, no comparison runs (--against, --across-data)."""
    if "tags.mlflow.parentRunId" in runs:
        runs = runs[runs["tags.mlflow.parentRunId"].isna()]
    if f"tags.{KIND_TAG}" in runs:
        runs = runs[runs[f"tags.{KIND_TAG}"] != COMPARISON]
    return runs


def newest_job(client: Any, experiment_ids: Iterable[str],
               wanted: Callable[[dict[str, str]], bool]) -> Any | None:
    """The newest finished job (parent run, no comparison) whose tags are `wanted`, or None."""
    token = None
    while True:
        # Newest first: a job's fold runs start after it, so its parent is a few runs down.
        page = client.search_runs(list(experiment_ids), FINISHED, max_results=NEWEST_PAGE,
                                  page_token=token, order_by=["attributes.start_time DESC"])
        for run in page:
            tags = run.data.tags
            job = "mlflow.parentRunId" not in tags and tags.get(KIND_TAG) != COMPARISON
            if job and wanted(tags):
                return run
        token = page.token
        if not token:
            return None


def newest_sweep(client: Any, experiment_ids: list[str]) -> str | None:
    """The sweep directory of the newest finished job that a sweep ran, or None."""
    run = newest_job(client, experiment_ids, lambda tags: "sweep" in tags)
    return None if run is None else run.data.tags["sweep"]


def job_folds(client: Any, jobs: pd.DataFrame, finished: pd.DataFrame | None = None
              ) -> pd.DataFrame:
    """The fold runs of these jobs (parent runs), one row each, with the job's id in
    `tags.mlflow.parentRunId`: taken from `finished` where the caller has already read every
    finished run of the jobs' experiments, else asked for job by job (a sweep's jobs are a
    few of an experiment's runs, and their folds carry no `sweep` tag)."""
    from pipeline.tracking.client import quoted

    if finished is None:
        found = [runs_table(client, [experiment],
                            f"tags.mlflow.parentRunId = {quoted(run_id)} and {FINISHED}")
                 for run_id, experiment in zip(jobs["run_id"], jobs["experiment_id"],
                                               strict=True)]
        finished = pd.concat(found, ignore_index=True) if found else runs_table(client, [])
    if "tags.mlflow.parentRunId" not in finished or "params.fold" not in finished:
        return finished.iloc[0:0]
    return finished[finished["tags.mlflow.parentRunId"].isin(jobs["run_id"])
                    & finished["params.fold"].notna()]


def fold_runs(client: Any, run: Any) -> list[Any]:
    """A job's finished fold runs, in fold order."""
    from pipeline.tracking.client import quoted

    children, token = [], None
    while True:
        page = client.search_runs(
            [run.info.experiment_id],
            f"tags.mlflow.parentRunId = {quoted(run.info.run_id)} and {FINISHED}",
            max_results=1000, page_token=token)
        children += [c for c in page if "fold" in c.data.params]
        token = page.token
        if not token:
            break
    return sorted(children, key=lambda c: int(c.data.params["fold"]))
