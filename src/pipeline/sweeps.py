"""Multirun bookkeeping: a job that fails on a user mistake does not stop the sweep, and the
sweep ends by saying which jobs failed."""

from __future__ import annotations

import math
import sys
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pipeline.errors import PipelineError


class FailureSummary(Callback):
    """Turns a job's PipelineError into a NaN objective (a failed trial for optimising
    sweepers) and, once the sweep is over, lists the failed jobs and exits non-zero."""

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
        if self.failures:
            print(f"error: {len(self.failures)} of {self.jobs} jobs failed:", file=sys.stderr)
            print("\n".join(self.failures), file=sys.stderr)
            sys.exit(1)
