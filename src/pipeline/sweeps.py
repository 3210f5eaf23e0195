"""Multirun bookkeeping: a job that fails on a user mistake does not stop the sweep, and the
sweep ends by naming its best job (tagged in MLflow) and the jobs that failed."""

from __future__ import annotations

import math
import sys
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pipeline.errors import PipelineError


class SweepSummary(Callback):
    """Turns a job's PipelineError into a NaN objective (a failed trial for optimising
    sweepers). Once the sweep is over, tags its best parent run `best_in_sweep=true` and prints
    it, then lists the failed jobs and exits non-zero if there were any."""

    def __init__(self) -> None:
        self.jobs = 0
        self.failures: list[str] = []

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        self.jobs += 1
        error = job_return._return_value
        if job_return.status == JobStatus.FAILED and isinstance(error, PipelineError):
            overrides = " ".join(job_return.overrides or [])
            self.failures.append(f"  #{job_return.hydra_cfg.hydra.job.num} {overrides}: {error}")
            job_return.status = JobStatus.COMPLETED
            job_return.return_value = math.nan

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        best = mark_best(config.tracking.uri, str(config.hydra.sweep.dir))
        if best:
            print(best)
        if self.failures:
            print(f"error: {len(self.failures)} of {self.jobs} jobs failed:", file=sys.stderr)
            print("\n".join(self.failures), file=sys.stderr)
            sys.exit(1)


def mark_best(uri: str | None, sweep: str) -> str | None:
    """Tag the best parent run of `sweep` by its objective; a line describing it, or None."""
    import mlflow

    from pipeline.metrics import lower_is_better
    from pipeline.tracking import default_uri

    mlflow.set_tracking_uri(uri or default_uri())
    runs = mlflow.search_runs(search_all_experiments=True, output_format="pandas",
                              filter_string=f"tags.sweep = '{sweep}' and "
                                            "attributes.status = 'FINISHED'")
    if runs.empty or "tags.objective" not in runs:
        return None
    objective = runs["tags.objective"].mode().iloc[0]
    column = f"metrics.{objective}_mean"
    scored = runs.dropna(subset=[column])
    if scored.empty:
        return None
    order = scored[column].sort_values(ascending=lower_is_better(objective))
    best = scored.loc[order.index[0]]
    mlflow.MlflowClient().set_tag(best["run_id"], "best_in_sweep", "true")
    return (f"best of {len(runs)} job(s): {best['tags.mlflow.runName']} #{best['tags.job']} "
            f"{objective}_mean={best[column]:.4f} (MLflow run {best['run_id']})")
