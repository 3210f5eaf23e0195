"""The job: load data, split it, fit and score a fresh pipeline per fold, track it all."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from pipeline import (
    checks,
    cv,
    data,
    metrics,
    models,
    plots,
    preprocessing,
    report,
    tasks,
    threads,
    tracking,
)
from pipeline.config import instantiate_node
from pipeline.errors import PipelineError
from pipeline.models import batched
from pipeline.report import Result
from pipeline.tasks import Task

log = logging.getLogger("pipeline")

__all__ = ["Result", "run", "summarize"]


@dataclass
class Plan:
    """A job checked and ready to run: the unfitted pipeline, the metrics to score, the folds
    and the figures to draw."""

    estimator: Pipeline
    names: list[str]
    folds: cv.Folds
    figures: plots.Figures
    refit: bool
    batch_folds: bool = False  # torch models: the folds fitted as one batched model


def run(cfg: DictConfig) -> Result:
    """Cross-validate `cfg.model` on `cfg.data` under `cfg.cv`, tracked in MLflow.

    Everything that can be checked without training (data, task, model arguments, splits,
    tracking store) is checked before the first fit. `cfg` is left as it is: the job reads a
    copy of it configured for the task it decides.
    """
    level = log.level
    if tracking.global_rank() != 0:
        log.setLevel(logging.WARNING)  # under torchrun, rank 0 speaks for the job
    try:
        with threads.for_job(cfg.get("threads", threads.AUTO)):
            return _run(cfg)
    finally:
        log.setLevel(level)


def _run(cfg: DictConfig) -> Result:
    """The job as the picture draws it: load, decide the task, plan the folds, run them,
    summarise, refit, report."""
    checks.seed(cfg)
    dataset = data.load(cfg.data)
    task = tasks.decide(dataset, cfg.model)
    job = tasks.configure(cfg, task)
    plan = _plan(job, dataset, task)
    if tracking.global_rank() == 0:
        report.print_config(job)
    experiment = job.tracking.experiment or dataset.name
    tracker = tracking.connect(job.tracking.uri or tracking.default_uri(), experiment)
    resolved = tracking.loggable(OmegaConf.to_container(job, resolve=True))
    tags = {**_tags(job, dataset, task), "config_hash": tracking.config_hash(resolved)}
    objective = f"test_{job.objective}"
    if job.get("resume") and (done := tracker.finished_run(tags["config_hash"])):
        return _resumed(done, objective, tracker, tags.get("sweep"))
    with tracker.run(f"{job.model.name}-{job.cv.name}", params=tracking.flatten(resolved),
                     tags=tags) as parent:
        log.info("%s on %s (%s), cv=%s: %d fold(s); MLflow run %s",
                 job.model.name, dataset.name, task, job.cv.name, len(plan.folds), parent)
        if decisions := (*dataset.notes, *plan.folds.notes):  # as printed before the run
            tracker.log_text(parent, "\n".join(decisions) + "\n", "decisions.txt")
        table = _run_folds(plan, dataset, task, job, tracker, parent)
        summary = _summarise(table, tracker, parent)
        tracker.log_text(parent, OmegaConf.to_yaml(resolved), "config.yaml")
        final = _refit(plan.estimator, dataset, tracker, parent) if plan.refit else None
        plan.figures.parent(tracker, parent, table, final)
        task.finish(plan.figures, tracker, parent)
    result = Result(table, summary, objective, experiment, parent, tracking.redact(tracker.uri))
    if tracking.global_rank() == 0:
        report.print_result(result, dataset, job)
    return result


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and (population) standard deviation of every score across folds, NaN ignored."""
    values = table.to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a metric undefined in every fold
        return pd.DataFrame([np.nanmean(values, axis=0), np.nanstd(values, axis=0)],
                            index=["mean", "std"], columns=table.columns)


def _plan(job: DictConfig, dataset: data.Dataset, task: Task) -> Plan:
    """Build the pipeline, name the metrics, plan the folds and check it all against the data,
    before the tracking store is touched."""
    model = models.build(job.model, dataset, task)
    names = task.metric_names(job)
    estimator = Pipeline([
        ("preprocess", instantiate_node(job.preprocess, dataset=dataset, task=task)),
        ("model", model),
    ])
    metrics.check_responses(names, task.name, estimator, job.model.name)
    folds = cv.split(job.cv, dataset, task)
    checks.against_folds(job, estimator, dataset, folds)
    figures = plots.Figures.for_job(job, dataset, len(folds), task)
    refit = _refit_wanted(job.get("refit", "auto"), task)
    batch_folds = batched.decide(job.cv.get("batch_folds", "auto"), estimator, folds, dataset,
                                 task)
    return Plan(estimator, names, folds, figures, refit, batch_folds)


def _run_folds(plan: Plan, dataset: data.Dataset, task: Task, job: DictConfig,
               tracker: tracking.BaseTracker, parent: str) -> pd.DataFrame:
    """Every fold, one after another: a row of scores each."""
    task.prepare(plan.estimator, dataset)
    fitted = _fit_batched(plan, dataset, task, job) or [None] * len(plan.folds)
    with report.progress(len(plan.folds), plan.estimator) as step:
        rows = [step(_fold(i, fold, plan.estimator, dataset, task, plan.names, job, tracker,
                           parent, plan.figures, fitted[i - 1]))
                for i, fold in enumerate(plan.folds, 1)]
    return pd.DataFrame(rows, index=pd.Index([f"fold-{i}" for i in range(1, len(rows) + 1)],
                                             name="fold"))


def _fit_batched(plan: Plan, dataset: data.Dataset, task: Task,
                 job: DictConfig) -> list[tuple[Pipeline, float]] | None:
    """Every fold's pipeline fitted, the torch models as one batched model, with the seconds
    charged to each fold (the batched fit's time divided by the number of folds); None when the
    folds are fitted one by one in `_fold`. Before any fold's run: an interrupt here leaves
    only the parent run, which ends KILLED."""
    if not plan.batch_folds:
        return None
    return batched.fit_folds(plan.estimator, dataset, task, plan.folds,
                             strict=job.cv.get("batch_folds", "auto") is True)


def _summarise(table: pd.DataFrame, tracker: tracking.BaseTracker, parent: str) -> pd.DataFrame:
    """Mean and std across folds, logged on the parent run with the per-fold table."""
    summary = summarize(table)
    for warning in metrics.undefined(table):
        log.warning(warning)
    tracker.log_metrics(parent, {f"{column}_{stat}": summary.loc[stat, column]
                                 for column in summary.columns for stat in summary.index})
    tracker.log_table(parent, table, "folds.csv")
    return summary


def _fold(i: int, fold: cv.Fold, template: Pipeline, dataset: data.Dataset, task: Task,
          names: list[str], job: DictConfig, tracker: tracking.BaseTracker, parent: str,
          figures: plots.Figures | None = None,
          fitted: tuple[Pipeline, float] | None = None) -> dict[str, float]:
    """Fit a fresh clone on the fold's training part (or take `fitted`, the pipeline already
    fitted on it and its fit seconds) and score every part; one child run."""
    sizes = {"fold": i, "train_size": len(fold.train), "test_size": len(fold.test)}
    if fold.val is not None:
        sizes["val_size"] = len(fold.val)
    with tracker.run(f"fold-{i}", parent=parent, params=sizes) as child:
        if fitted is None:
            estimator = clone(template)
            row = {"fit_time": task.fit(estimator, dataset, fold.train)}
        else:
            estimator, fit_time = fitted
            row = {"fit_time": fit_time}
        X_test = dataset.X.iloc[fold.test]
        reduction, spectrum = preprocessing.reduction_scores(estimator[0], X_test)
        row.update(reduction)
        scores, test = task.score(estimator, dataset, fold, names, job.metrics.average)
        row.update(scores)
        tracker.log_metrics(child, row, {**getattr(estimator[-1], "history_", {}), **spectrum})
        task.log_fold(tracker, child, test)
        if figures:
            figures.fold(tracker, child, estimator, test, X_test,
                         None if dataset.y is None else dataset.y.iloc[fold.test])
    log.info("fold %d: %s", i, report.brief(row, job.objective))
    return row


def _refit_wanted(setting: bool | str, task: Task) -> bool:
    """`refit`: true, false, or auto (a single job refits, a sweep's jobs do not); only a
    supervised task's pipeline is refit on all rows (it then predicts new ones)."""
    if setting not in (True, False, "auto"):
        raise PipelineError(f"refit={setting} is not one of true, false, auto")
    if not task.supervised:
        return False
    if setting == "auto":
        from hydra.core.hydra_config import HydraConfig

        hydra = HydraConfig.get() if HydraConfig.initialized() else None
        return hydra is None or hydra.mode is None or hydra.mode.name != "MULTIRUN"
    return setting


def _refit(template: Pipeline, dataset: data.Dataset, tracker: tracking.BaseTracker,
           parent: str) -> Pipeline:
    """The whole pipeline fit on all the data, logged as the parent run's model."""
    started = time.perf_counter()
    final = clone(template).fit(dataset.X, dataset.y)
    fitted = time.perf_counter() - started
    logged = tracker.log_model(parent, final, dataset.X)
    log.info("refit on all %d rows in %.2fs, logged as the run's model in %.2fs",
             len(dataset.X), fitted, logged)
    return final


def _resumed(run: object, objective: str, tracker: tracking.BaseTracker,
             sweep: str | None) -> Result:
    """`resume=true` and this config already FINISHED: the recorded scores, nothing rerun."""
    scores = run.data.metrics
    columns = [key.removesuffix("_mean") for key in scores if key.endswith("_mean")]
    summary = pd.DataFrame([[scores[f"{c}_mean"] for c in columns],
                            [scores.get(f"{c}_std", np.nan) for c in columns]],
                           index=["mean", "std"], columns=columns)
    if sweep:  # the sweep's summary ranks it among the jobs that ran
        tracker.client.set_tag(run.info.run_id, "resumed_in", sweep)
    log.info("skipped: %s already FINISHED with this config as MLflow run %s, %s_mean=%.4f "
             "(resume=true; resume=false runs it again)", run.info.run_name, run.info.run_id,
             objective, summary.loc["mean", objective])
    return Result(pd.DataFrame(columns=columns), summary, objective, tracker.experiment,
                  run.info.run_id, tracking.redact(tracker.uri))


def _tags(cfg: DictConfig, dataset: data.Dataset, task: Task) -> dict[str, str]:
    tags = {"model": cfg.model.name, "data": dataset.name, "cv": cfg.cv.name,
            "task": task.name, "objective": f"test_{cfg.objective}"}
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        hydra = HydraConfig.get()
        if hydra.mode is not None and hydra.mode.name == "MULTIRUN":
            tags.update({"sweep": hydra.sweep.dir, "job": str(hydra.job.num)})
    return tags
