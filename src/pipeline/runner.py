"""The job: its folds planned and checked against the data, then run by the fold engine inside a
parent MLflow run, summarised, refit on all rows and reported."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from omegaconf import OmegaConf
from sklearn.pipeline import Pipeline

from pipeline import checks, cv, engine, metrics, models, plots, report, tracking
from pipeline.data import Dataset
from pipeline.distributed import global_rank
from pipeline.engine import Fitted, Plan
from pipeline.errors import PipelineError
from pipeline.models import batched
from pipeline.report import Result
from pipeline.spec import Job
from pipeline.tasks import Task

log = logging.getLogger("pipeline")

__all__ = ["Result", "run"]


def run(job: Job, dataset: Dataset, task: Task) -> Result:
    """Cross-validate `job.model` on `dataset` under `job.scheme`, tracked in MLflow: planned
    and checked before the tracking store is touched, then run."""
    plan = _plan(job, dataset, task)
    if global_rank() == 0:
        report.print_config(job)
    task.prepare(plan.estimator, dataset)
    # Folds in worker processes start fitting now, while this process opens the store and
    # the job's run (unless `resume` may find the job done); cancelled if the job goes no
    # further.
    early = None if job.options.resume else engine.start_parallel(plan, dataset, task)
    try:
        return _tracked(job, dataset, task, plan, early)
    finally:
        if early is not None:
            engine.cancel(early)


def _tracked(job: Job, dataset: Dataset, task: Task, plan: Plan,
             early: Iterator[Fitted | Exception] | None) -> Result:
    """The planned job in MLflow: its run, the folds' runs (`early`: their outcomes, if
    already on their way from worker processes), the summary, the refit and the report."""
    experiment = job.tracking.experiment or dataset.name
    tracker = tracking.connect(job.tracking.uri or tracking.default_uri(), experiment,
                               migrate=job.tracking.migrate)
    resolved = tracking.loggable(job.config)
    tags = {**_tags(job, dataset, task), "config_hash": tracking.config_hash(resolved),
            # what pipeline.compare pairs jobs by: the same folds, and how many repeats
            "folds": plan.folds.digest(dataset.name, len(dataset.X)),
            "fold_repeats": str(getattr(plan.folds, "repeats", 1))}
    objective = f"test_{job.scoring.objective}"
    if job.options.resume and (done := tracker.finished_run(tags["config_hash"])):
        return engine.resumed(done, objective, tracker, tags.get("sweep"))
    with tracker.run(f"{job.model.name}-{job.scheme.name}", params=tracking.flatten(resolved),
                     tags=tags) as parent:
        log.info("%s on %s (%s), cv=%s: %d fold(s); MLflow run %s",
                 job.model.name, dataset.name, task, job.scheme.name, len(plan.folds), parent)
        if decisions := (*dataset.notes, *plan.folds.notes):  # as printed before the run
            tracker.log_text(parent, "\n".join(decisions) + "\n", "decisions.txt")
        tracker.log_text(parent, OmegaConf.to_yaml(resolved), "config.yaml")
        table = engine.run_folds(plan, dataset, task, tracker, parent, early)
        summary = engine.summarise(table, tracker, parent)
        final = (engine.refit(plan.estimator, dataset, task, tracker, parent)
                 if _refit_wanted(job, task) else None)
        plan.figures.parent(tracker, parent, table, final)
        task.finish(plan.figures, tracker, parent)
    result = Result(table, summary, objective, experiment, parent, tracking.redact(tracker.uri),
                    plan.folds.repeats)
    if global_rank() == 0:
        report.print_result(result, dataset, job.model.name, job.scheme.name)
    return result


def _plan(job: Job, dataset: Dataset, task: Task) -> Plan:
    """Build the pipeline, plan the folds and check it all against the data, before the
    tracking store is touched."""
    estimator = engine.make_estimator(job.preprocess, job.model, dataset, task)
    metrics.check_responses(job.scoring.names, task.name, estimator, job.model.name)
    folds = cv.split(job.scheme, dataset, task)
    checks.against_folds(estimator, dataset, folds, job.preprocess, job.scheme.name,
                         job.model.name, job.tracking.experiment, job.sweep)
    figures = plots.Figures.for_job(job.options.plots, job.options.seed, dataset, len(folds),
                                    task)
    _refit_wanted(job, task)  # its setting checked before any run
    batch_folds = batched.decide(job.scheme.batch_folds, estimator, folds, dataset, task)
    n_jobs = engine.fold_jobs(job.scheme.n_jobs, len(folds))
    if n_jobs > 1 and batch_folds:
        log.info("cv.n_jobs=%s: not used, the folds train as one batched model "
                 "(cv.batch_folds=false runs them in worker processes)", job.scheme.n_jobs)
        n_jobs = 1
    if n_jobs > 1:
        _check_parallel_fits(job, estimator)
    return Plan(estimator, folds, job.scoring, figures, batch_folds,
                job.scheme.batch_folds is True, n_jobs)


def _check_parallel_fits(job: Job, estimator: Pipeline) -> None:
    """Folds in worker processes (cv.n_jobs > 1) and a fit that is itself several processes
    (Lightning's DDP, torchrun's ranks) do not mix: one of them is refused, before any run."""
    from pipeline.distributed import world_size

    if "torch" not in models.requires(estimator):
        return
    trainer = job.options.trainer
    strategy, devices = str(trainer.get("strategy", "auto")), trainer.get("devices", 1)
    if world_size() > 1 or "ddp" in strategy or devices not in (1, "1", "auto"):
        raise PipelineError(
            f"cv.n_jobs={job.scheme.n_jobs} runs folds in worker processes, and each fit "
            f"already runs on several devices or processes (trainer.strategy={strategy}, "
            f"trainer.devices={devices}); use cv.n_jobs=1 with it, or one device per fit")


def _refit_wanted(job: Job, task: Task) -> bool:
    """`refit`: true, false, or auto (a single job refits, a sweep's jobs do not); only a
    supervised task's pipeline is refit on all rows (it then predicts new ones)."""
    setting = job.options.refit
    if setting not in (True, False, "auto"):
        raise PipelineError(f"refit={setting} is not one of true, false, auto")
    if not task.supervised:
        return False
    return job.sweep is None if setting == "auto" else setting


def _tags(job: Job, dataset: Dataset, task: Task) -> dict[str, str]:
    tags = {"model": job.model.name, "data": dataset.name, "cv": job.scheme.name,
            "task": task.name, "objective": f"test_{job.scoring.objective}"}
    if job.sweep is not None:
        tags.update({"sweep": job.sweep.dir, "job": str(job.sweep.job)})
    return tags
