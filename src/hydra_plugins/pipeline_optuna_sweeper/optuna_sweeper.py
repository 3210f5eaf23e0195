"""`hydra/sweeper=optuna`: each trial is a job. The sweeper asks Optuna for `n_jobs` trials at a
time, launches them as jobs with the trials' params as overrides, and tells Optuna each job's
return value (a failed or NaN one as a FAILED trial); at the end it logs the study's best
trial and writes it to `optimization_results.yaml` in the sweep directory. With a `storage`,
the study lives in that database: workers given the same `storage` and `study_name` add their
trials to one study and sample knowing each other's."""

from __future__ import annotations

import functools
import logging
import math
import sys
import time
from typing import Any, NoReturn

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class OptunaSweeper(Sweeper):
    """Optuna's ask/tell loop around Hydra's launcher."""

    def __init__(self, sampler: Any, direction: str, storage: str | None,
                 study_name: str | None, n_trials: int, n_jobs: int, max_failure_rate: float,
                 params: DictConfig | None) -> None:
        self.sampler = sampler  # instantiated by Hydra; the grid's a partial awaiting its grid
        self.direction = direction
        self.storage = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.params = params or {}

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)
        self.job_idx = 0

    def sweep(self, arguments: list[str]) -> None:
        from hydra.errors import OverrideParseException

        from .params import search_space

        try:
            space, fixed = search_space(
                [f"{key}={value}" for key, value in self.params.items()] + arguments)
        except (OverrideParseException, ValueError) as error:
            _refuse(f"hydra.sweeper.params: {str(error).splitlines()[0]}")
        sampler, n_trials = self._sampler(space)
        study = self._study(sampler)
        log.info("Study %s (%s) in %s, %d trials held: %d more by %s (seed %s) over %s",
                 study.study_name, self.direction, _shown(self.storage), len(study.trials),
                 n_trials, type(sampler).__name__,
                 OmegaConf.select(self.config, "hydra.sweeper.sampler.seed"), ", ".join(space))
        asked = 0
        while asked < n_trials:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, n_trials - asked))]
            asked += len(trials)
            if not self._run(study, trials, fixed):
                break
        self._report(study)

    def _sampler(self, space: dict[str, Any]) -> tuple[Any, int]:
        """The sampler, and the number of trials: at most the grid's size for the grid sampler,
        whose grid is the params' values."""
        if not isinstance(self.sampler, functools.partial):
            return self.sampler, self.n_trials
        from .params import grid

        try:
            points = {key: grid(distribution) for key, distribution in space.items()}
        except ValueError as error:
            _refuse(f"hydra.sweeper.params: {error}")
        return self.sampler(points), min(self.n_trials, math.prod(map(len, points.values())))

    def _study(self, sampler: Any) -> Any:
        """The study, created in the storage or joined there if it exists. Workers started
        together on a new database race to create Optuna's tables, and the loser's error
        (a duplicate type or table) is gone a moment later: tried up to 3 times."""
        import optuna
        from optuna.exceptions import OptunaError

        from pipeline.tracking.client import store_faults

        # Optuna's INFO line on creating or joining the study says less than the sweep's own.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        for attempt in range(1, 4):
            try:
                return optuna.create_study(storage=self.storage, study_name=self.study_name,
                                           sampler=sampler, direction=self.direction,
                                           load_if_exists=True)
            # RuntimeError: Optuna's refusal of a schema that another version made.
            except (*store_faults(), ImportError, ValueError, RuntimeError, OptunaError) as error:
                if attempt == 3:
                    from pipeline.tracking.secrets import scrub

                    _refuse(scrub(
                        f"hydra.sweeper.storage={_shown(self.storage)} cannot hold the study "
                        f"{self.study_name}: {type(error).__name__}: "
                        f"{' '.join(str(error).split())[:300]}; give the URL of a database "
                        f"of its own (not MLflow's) that exists: sqlite:///study.db, "
                        f"postgresql+psycopg2://user@host/optuna"))
                time.sleep(attempt)

    def _run(self, study: Any, trials: list[Any], fixed: dict[str, str]) -> bool:
        """Launches the trials as jobs and tells the study their values; whether the search
        goes on (the batch's failed share is within `max_failure_rate`)."""
        from optuna.trial import TrialState

        overrides = [tuple(f"{key}={value}" for key, value in {**trial.params, **fixed}.items())
                     for trial in trials]
        try:
            returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
        except BaseException:  # Ctrl-C, or a launcher's fault: no trial stays RUNNING
            for trial in trials:
                study.tell(trial, state=TrialState.FAIL)
            raise
        self.job_idx += len(returns)
        told = [self._tell(study, trial, job) for trial, job in zip(trials, returns,
                                                                      strict=True)]
        failed = told.count(TrialState.FAIL)
        if failed / len(trials) > self.max_failure_rate:
            log.error("Stopping the search: %d of %d trials failed (max_failure_rate=%s)",
                      failed, len(trials), self.max_failure_rate)
            return False
        return True

    @staticmethod
    def _tell(study: Any, trial: Any, job: JobReturn) -> Any:
        """Tells the study the job's value; a job that raised or returned NaN (the pipeline's
        sweeps turn a failed job into NaN) is a FAILED trial, not a value to learn from."""
        from optuna.trial import TrialState

        try:
            value = float(job.return_value)  # raises the job's error if it failed
        except Exception as error:  # noqa: BLE001 - any failure of the job fails the trial
            log.warning("Trial %d failed: %s: %s", trial.number, type(error).__name__, error)
            value = math.nan
        state = TrialState.COMPLETE if math.isfinite(value) else TrialState.FAIL
        try:
            study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        except RuntimeError as error:  # the grid sampler calls Study.stop outside optimize()
            if "Study.stop" not in str(error):
                raise
        return state

    def _report(self, study: Any) -> None:
        """Logs the study's best trial (any worker's) and writes optimization_results.yaml."""
        try:
            best = study.best_trial
        except ValueError:
            log.error("No trial of study %s has completed", study.study_name)
            return
        log.info("Best parameters: %s", best.params)
        log.info("Best value: %s", best.value)
        results = {"name": "optuna", "study_name": study.study_name, "trial": best.number,
                   "best_params": best.params, "best_value": best.value}
        OmegaConf.save(OmegaConf.create(results),
                       f"{self.config.hydra.sweep.dir}/optimization_results.yaml")


def _shown(storage: str | None) -> str:
    """The storage URL fit to print: its password hidden, as the pipeline hides a tracking
    URI's."""
    from pipeline.tracking.secrets import redact

    return "memory" if storage is None else redact(storage)


def _refuse(message: str) -> NoReturn:
    """A mistake in the sweeper's settings: one `error:` line, exit 1, before any job."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)
