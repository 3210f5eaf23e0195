"""Hydra callbacks that run before a job or a sweep starts: Hydra's own settings (the output
directory, the sweeper's settings) checked as one `error: ` line, and no password left in a
log line or in a file Hydra keeps beside the job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig


class OutputGuard(Callback):
    """Before a job or a sweep starts: its output directory can be made (else one `error: `
    line, not Hydra's traceback), and log lines from then on show no password."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_settings(config, "hydra.run.dir")
        _start(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_settings(config, "hydra.sweep.dir")
        _start(config.hydra.sweep.dir, "hydra.sweep.dir")


class SecretsAtRest(Callback):
    """Hydra keeps what a job was given beside it (`.hydra/config.yaml`, `hydra.yaml`,
    `overrides.yaml`) and a sweep's config in its directory (`multirun.yaml`), as typed: a
    password in a URL (`tracking.uri=http://user:PW@host`, an Optuna storage URL) would stay
    there in clear. Each such file is rewritten with the password as `***` as soon as it
    exists: Hydra writes a job's files before the job's first callback (`run_job` in
    hydra/core/utils.py), and the sweeper writes `multirun.yaml` after `on_multirun_start`, so
    each job scrubs its own files and the sweep's, and the sweep's process scrubs its own once
    more as it exits (a sweep may stop before any job starts)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        import atexit

        from pipeline.tracking.secrets import scrub_yaml_files

        atexit.register(scrub_yaml_files, Path(str(config.hydra.sweep.dir)).absolute())

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from pipeline.tracking.secrets import redact_logs, scrub_yaml_files

        redact_logs()  # again: a launcher may run the job in a worker process of its own (joblib)
        if config.hydra.output_subdir is not None:
            scrub_yaml_files(Path(config.hydra.runtime.output_dir, str(config.hydra.output_subdir)))
        if config.hydra.mode == RunMode.MULTIRUN:
            scrub_yaml_files(Path(config.hydra.runtime.cwd, str(config.hydra.sweep.dir)))


def check_settings(config: DictConfig, key: str) -> None:
    """Hydra's own settings that a job or sweep needs, checked at the earliest hook Hydra
    offers (before it makes the output directory, and for a sweep before it makes the sweeper
    and launches a job): the output directory within the file system's limits, and a sweep's
    sweeper settings. A mistake is one `error: ` line, exit 1."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from pipeline.arguments import path_problem, sweeper_problem

    problem = path_problem(str(OmegaConf.select(config, key)), key)
    if problem is None and key == "hydra.sweep.dir":
        try:
            settings = OmegaConf.to_container(config.hydra.sweeper, resolve=True)
        except OmegaConfBaseException as error:
            problem = f"hydra.sweeper: {' '.join(str(error).split())}"
        else:
            problem = sweeper_problem(settings)
        if problem is None:
            problem = _store_problem(config)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(1)


def _store_problem(config: DictConfig) -> str | None:
    """Why the sweep's jobs cannot use its tracking store, or None: a store that is not
    MLflow's, a missing database driver, an older MLflow's store without tracking.migrate.
    Said once before the sweep, rather than by each of its jobs (and again by its summary)."""
    from pipeline.errors import PipelineError
    from pipeline.tracking.store import check_store, default_uri

    tracking = config.get("tracking") or {}
    try:
        check_store(tracking.get("uri") or default_uri(), migrate=tracking.get("migrate") is True)
    except PipelineError as error:
        return str(error)
    return None


def _start(directory: str, key: str) -> None:
    from pipeline.tracking.secrets import redact_logs
    from pipeline.tracking.store import unwritable

    redact_logs()
    problem = unwritable(Path(directory))
    if problem:
        print(f"error: cannot write the job's outputs to {directory}: {problem}; run from a "
              f"writable directory or set {key}=<writable dir> (and tracking.uri)",
              file=sys.stderr)
        sys.exit(1)
