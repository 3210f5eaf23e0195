"""The job: load data, split it, fit and score a fresh pipeline per fold, track it all."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

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
    n_jobs: int = 1  # folds at once (`cv.n_jobs`, resolved against the folds and the cores)


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
    if cfg.cv.get("outer"):  # nested cross-validation: a search inside each outer fold
        from pipeline import nested

        return nested.run(cfg)
    checks.seed(cfg)
    dataset = data.load(cfg.data)
    task = tasks.decide(dataset, cfg.model)
    job = tasks.configure(cfg, task)
    plan = _plan(job, dataset, task)
    if tracking.global_rank() == 0:
        report.print_config(job)
    task.prepare(plan.estimator, dataset)
    # Folds in worker processes start fitting now, while this process opens the store and
    # the job's run (unless `resume` may find the job done); cancelled if the job goes no
    # further.
    early = None if job.get("resume") else _start_parallel_folds(plan, dataset, task, job)
    try:
        return _tracked(job, dataset, task, plan, early)
    finally:
        if early is not None:
            _cancel(early)


def _tracked(job: DictConfig, dataset: data.Dataset, task: Task, plan: Plan,
             early: Iterator[Fitted | Exception] | None) -> Result:
    """The planned job in MLflow: its run, the folds' runs (`early`: their outcomes, if
    already on their way from worker processes), the summary, the refit and the report."""
    experiment = job.tracking.experiment or dataset.name
    tracker = tracking.connect(job.tracking.uri or tracking.default_uri(), experiment)
    resolved = tracking.loggable(OmegaConf.to_container(job, resolve=True))
    tags = {**_tags(job, dataset, task), "config_hash": tracking.config_hash(resolved),
            # what pipeline.compare pairs jobs by: the same folds, and how many repeats
            "folds": plan.folds.digest(dataset.name, len(dataset.X)),
            "fold_repeats": str(getattr(plan.folds, "repeats", 1))}
    objective = f"test_{job.objective}"
    if job.get("resume") and (done := tracker.finished_run(tags["config_hash"])):
        return _resumed(done, objective, tracker, tags.get("sweep"))
    with tracker.run(f"{job.model.name}-{job.cv.name}", params=tracking.flatten(resolved),
                     tags=tags) as parent:
        log.info("%s on %s (%s), cv=%s: %d fold(s); MLflow run %s",
                 job.model.name, dataset.name, task, job.cv.name, len(plan.folds), parent)
        if decisions := (*dataset.notes, *plan.folds.notes):  # as printed before the run
            tracker.log_text(parent, "\n".join(decisions) + "\n", "decisions.txt")
        tracker.log_text(parent, OmegaConf.to_yaml(resolved), "config.yaml")
        table = _run_folds(plan, dataset, task, job, tracker, parent, early)
        summary = _summarise(table, tracker, parent)
        final = _refit(plan.estimator, dataset, tracker, parent) if plan.refit else None
        plan.figures.parent(tracker, parent, table, final)
        task.finish(plan.figures, tracker, parent)
    result = Result(table, summary, objective, experiment, parent, tracking.redact(tracker.uri),
                    plan.folds.repeats)
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
    n_jobs = _fold_jobs(job.cv, len(folds))
    if n_jobs > 1 and batch_folds:
        log.info("cv.n_jobs=%s: not used, the folds train as one batched model "
                 "(cv.batch_folds=false runs them in worker processes)", job.cv.n_jobs)
        n_jobs = 1
    if n_jobs > 1:
        _check_parallel_fits(job, estimator)
    return Plan(estimator, names, folds, figures, refit, batch_folds, n_jobs)


def _run_folds(plan: Plan, dataset: data.Dataset, task: Task, job: DictConfig,
               tracker: tracking.BaseTracker, parent: str,
               early: Iterator[Fitted | Exception] | None = None) -> pd.DataFrame:
    """Every fold, one after another (or `plan.n_jobs` at once, their outcomes `early` if
    already started): a row of scores each."""
    prefit = _fit_batched(plan, dataset, task, job)
    # Folds in workers draw no per-epoch bars (a torch model's): the bar across folds shows.
    shown = plan.estimator if plan.n_jobs == 1 or prefit else None
    with report.progress(len(plan.folds), shown) as step:
        if plan.n_jobs > 1 and prefit is None:
            outcomes = early or _start_parallel_folds(plan, dataset, task, job)
            rows = [step(row) for row in _parallel_folds(plan, outcomes, dataset, task, job,
                                                          tracker, parent)]
        else:
            prefit = prefit or [None] * len(plan.folds)
            rows = [step(_fold(i, plan.folds, plan.estimator, dataset, task, plan.names, job,
                               tracker, parent, plan.figures, prefit[i - 1]))
                    for i in range(1, len(plan.folds) + 1)]
    names = [plan.folds.run_name(i) for i in range(1, len(rows) + 1)]
    return pd.DataFrame(rows, index=pd.Index(names, name="fold"))


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


def _fold(i: int, folds: cv.Folds, template: Pipeline, dataset: data.Dataset, task: Task,
          names: list[str], job: DictConfig, tracker: tracking.BaseTracker, parent: str,
          figures: plots.Figures | None = None,
          prefit: tuple[Pipeline, float] | None = None) -> dict[str, float]:
    """Fit a fresh clone on fold `i`'s training part (or take `prefit`, the pipeline already
    fitted on it and its fit seconds) and score every part; one child run."""
    fold = folds[i - 1]
    with tracker.run(folds.run_name(i), parent=parent, params=_sizes(i, folds)) as child:
        fitted = _fit_and_score(fold, template, dataset, task, names, job.metrics.average,
                                prefit)
        _log_fold(fitted, fold, dataset, task, tracker, child, figures)
    log.info("%s: %s", _said(i, folds), report.brief(fitted.row, job.objective))
    return fitted.row


class Fitted(NamedTuple):
    """A fold fitted and scored, all that its run records: the row of scores, the test part's
    outputs, the fitted pipeline and the reduction's curves."""

    row: dict[str, float]
    test: Any
    estimator: Pipeline | None  # None: left in the worker that fitted it (see _in_worker)
    spectrum: dict[str, list[float]]


def _sizes(i: int, folds: cv.Folds) -> dict[str, int]:
    """A fold run's params: `fold`, its 1-based index across repeats (the order of the folds),
    with `repeat` and `fold_in_repeat` where the scheme repeats, and the parts' sizes."""
    fold = folds[i - 1]
    sizes = {"fold": i, "train_size": len(fold.train), "test_size": len(fold.test)}
    if folds.repeats > 1:
        sizes["repeat"], sizes["fold_in_repeat"] = folds.position(i)
    if fold.val is not None:
        sizes["val_size"] = len(fold.val)
    return sizes


def _said(i: int, folds: cv.Folds) -> str:
    """Fold `i` in the log line that ends it: `fold 7`, or `fold 7 (repeat-2/fold-2)`."""
    return f"fold {i}" + (f" ({folds.run_name(i)})" if folds.repeats > 1 else "")


def _fit_and_score(fold: cv.Fold, template: Pipeline, dataset: data.Dataset, task: Task,
                   names: list[str], average: str,
                   prefit: tuple[Pipeline, float] | None = None) -> Fitted:
    """A fresh clone fit on the fold's training part (unless `prefit` brings it fitted, with
    its fit seconds), every part scored; nothing tracked, so that it runs as well in a joblib
    worker as in the job's process."""
    if prefit is None:
        estimator = clone(template)
        row = {"fit_time": task.fit(estimator, dataset, fold.train)}
    else:
        estimator, fit_time = prefit
        row = {"fit_time": fit_time}
    X_test = dataset.X.iloc[fold.test]
    reduction, spectrum = preprocessing.reduction_scores(estimator[0], X_test)
    row.update(reduction)
    scores, test = task.score(estimator, dataset, fold, names, average)
    row.update(scores)
    return Fitted(row, test, estimator, spectrum)


def _log_fold(fitted: Fitted, fold: cv.Fold, dataset: data.Dataset, task: Task,
              tracker: tracking.BaseTracker, child: str, figures: plots.Figures | None,
              params: dict[str, int] | None = None) -> None:
    """What a fold's run records: scores and curves (with `params`, if not yet logged, in the
    same request), the task's tables, the figures."""
    estimator = fitted.estimator
    history = {} if estimator is None else getattr(estimator[-1], "history_", {})
    tracker.log_metrics(child, fitted.row, {**history, **fitted.spectrum}, params)
    task.log_fold(tracker, child, fitted.test)
    if figures:
        figures.fold(tracker, child, estimator, fitted.test, dataset.X.iloc[fold.test],
                     None if dataset.y is None else dataset.y.iloc[fold.test])


def _fold_jobs(cv_cfg: DictConfig, n_folds: int) -> int:
    """`cv.n_jobs` as the number of folds to run at once: a positive integer, or a negative
    one counting back from the cores as joblib does (-1: one per core); never more than the
    folds. Refused in one line otherwise, before any run."""
    from joblib import cpu_count

    value = cv_cfg.get("n_jobs", 1)
    if value is None:
        return 1
    wanted = _processes(value) if checks.is_int(value) else 0
    if wanted < 1:
        raise PipelineError(
            f"cv.n_jobs={value} is not a number of folds to run at once: use a positive "
            f"integer, or -1 for one per core ({cpu_count()} here), e.g. cv.n_jobs=2")
    return min(wanted, n_folds)


def _processes(n_jobs: int) -> int:
    """joblib's `n_jobs` as a count: a negative one counts back from the cores (-1: all)."""
    from joblib import cpu_count

    return cpu_count() + 1 + n_jobs if n_jobs < 0 else n_jobs


def _check_parallel_fits(job: DictConfig, estimator: Pipeline) -> None:
    """Folds in worker processes (cv.n_jobs > 1) and a fit that is itself several processes
    (Lightning's DDP, torchrun's ranks) do not mix: one of them is refused, before any run."""
    from pipeline.distributed import world_size

    if "torch" not in models.requires(estimator):
        return
    trainer = job.get("trainer") or {}
    strategy, devices = str(trainer.get("strategy", "auto")), trainer.get("devices", 1)
    if world_size() > 1 or "ddp" in strategy or devices not in (1, "1", "auto"):
        raise PipelineError(
            f"cv.n_jobs={job.cv.n_jobs} runs folds in worker processes, and each fit already "
            f"runs on several devices or processes (trainer.strategy={strategy}, "
            f"trainer.devices={devices}); use cv.n_jobs=1 with it, or one device per fit")


def _start_parallel_folds(plan: Plan, dataset: data.Dataset, task: Task,
                          job: DictConfig) -> Iterator[Fitted | Exception] | None:
    """The folds set fitting and scoring `plan.n_jobs` at a time in joblib's worker processes,
    as `cross_validate(n_jobs=...)` runs them: their outcomes in fold order, as they come (None
    when the folds run in this process). Nothing is tracked there: `_parallel_folds` logs.

    Each worker's BLAS/OpenMP (and so torch's) threads are limited to its share of the cores,
    and so is an estimator's own `n_jobs` (a forest's trees): a fit never takes more than its
    share."""
    if plan.n_jobs == 1 or plan.batch_folds:
        return None
    from joblib import parallel_config
    from sklearn.utils.parallel import Parallel, delayed  # scikit-learn's config goes along

    share = threads.per_worker(plan.n_jobs)
    template = _within_share(plan.estimator, share)
    log.info("folds %d at a time in worker processes (cv.n_jobs=%s), %d core(s) each",
             plan.n_jobs, job.cv.n_jobs, share)
    with parallel_config(backend="loky", inner_max_num_threads=share):
        return Parallel(n_jobs=plan.n_jobs, return_as="generator")(
            delayed(_in_worker)(fold, template, dataset, task, plan.names, job.metrics.average,
                                keep_estimator=bool(plan.figures))
            for fold in plan.folds)


def _parallel_folds(plan: Plan, outcomes: Iterator[Fitted | Exception], dataset: data.Dataset,
                    task: Task, job: DictConfig, tracker: tracking.BaseTracker,
                    parent: str) -> Iterator[dict[str, float]]:
    """The folds' `outcomes` from the worker processes, each fold's run logged in fold order
    as its results come back (while later folds still train): this process alone talks to
    MLflow. A stop signal ends the job's runs here and the workers are killed (joblib
    aborts)."""
    try:
        for i, (fold, outcome) in enumerate(zip(plan.folds, outcomes, strict=True), 1):
            # The fold's scores are in hand: its params go with them, in one request.
            sizes, failed = _sizes(i, plan.folds), isinstance(outcome, Exception)
            with tracker.run(plan.folds.run_name(i), parent=parent,
                             params=sizes if failed else None) as child:
                if failed:
                    raise outcome  # the fold's run fails with it, as it would in turn
                _log_fold(outcome, fold, dataset, task, tracker, child, plan.figures, sizes)
            log.info("%s: %s", _said(i, plan.folds), report.brief(outcome.row, job.objective))
            yield outcome.row
    finally:
        _cancel(outcomes)


def _cancel(outcomes: Iterator[Fitted | Exception]) -> None:
    """The folds still running in worker processes cancelled, their workers killed; quietly
    (joblib warns of the tasks it drops, which the job's own error or stop line explains)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tasks which were still being processed",
                                category=UserWarning)
        outcomes.close()


def _in_worker(*args: Any, keep_estimator: bool = True) -> Fitted | Exception:
    """`_fit_and_score` in a worker process: its error is returned, to fail the fold's run in
    the job's process. Deaf to stop signals: Ctrl-C in a terminal reaches the whole process
    group, and the job's process, which ends the runs, kills its workers.

    Without figures to draw (`keep_estimator=False`) the fitted pipeline stays here: it is
    most of what would be pickled back (a forest's trees), and the job's process reads
    nothing of it but its curves, which go back."""
    import copy
    import os
    import signal

    from pipeline.errors import STOP_SIGNALS

    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    os.environ["PIPELINE_FOLD_WORKER"] = "1"  # no training progress bars (see _run_folds)
    try:
        fitted = _fit_and_score(*args)
    except Exception as error:  # noqa: BLE001 - raised again in the fold's run
        return error
    if keep_estimator:
        return fitted
    curves = {**getattr(fitted.estimator[-1], "history_", {}), **fitted.spectrum}
    test = copy.copy(fitted.test)  # the test part's outputs, without the model behind them
    if getattr(test, "estimator", None) is fitted.estimator:
        test.estimator = None
    return fitted._replace(estimator=None, test=test, spectrum=curves)


def _within_share(template: Pipeline, share: int) -> Pipeline:
    """`template` with every `n_jobs` of its steps at most `share` (results do not depend on
    it; -1 would put a core's worth of threads in every worker)."""
    capped = {}
    for key, value in template.get_params(deep=True).items():
        if key.endswith("__n_jobs") and checks.is_int(value) and _processes(value) > share:
            capped[key] = share
    return clone(template).set_params(**capped) if capped else template


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
