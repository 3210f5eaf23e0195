"""The fold engine: a planned job's folds fitted and scored (one after another, in joblib's worker
processes, or as one batched torch model), each fold's run logged through the tracker it is
handed, and the summary across folds. The single job, nested CV's outer and inner folds and the
refit all fit through it."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from pipeline import checks, metrics, models, preprocessing, report, threads
from pipeline.errors import PipelineError
from pipeline.models import batched
from pipeline.report import Result
from pipeline.tracking import TrackingFailure

if TYPE_CHECKING:
    from pipeline.cv import Fold, Folds
    from pipeline.data import Dataset
    from pipeline.plots import Figures
    from pipeline.spec import Component, Scoring
    from pipeline.tasks import Task
    from pipeline.tracking import BaseTracker

log = logging.getLogger("pipeline")


@dataclass
class Plan:
    """A job checked and ready to run: the unfitted pipeline, the folds, how they are scored,
    the figures to draw, and how the folds run."""

    estimator: Pipeline
    folds: Folds
    scoring: Scoring
    figures: Figures | None = None
    batch_folds: bool = False  # torch models: the folds fitted as one batched model
    strict_batching: bool = False  # `cv.batch_folds=true`: refuse rather than fall back
    n_jobs: int = 1  # folds at once (`cv.n_jobs`, resolved against the folds and the cores)


class Fitted(NamedTuple):
    """A fold fitted and scored, all that its run records: the row of scores, the test part's
    outputs, the fitted pipeline and the reduction's curves."""

    row: dict[str, float]
    test: Any
    estimator: Pipeline | None  # None: left in the worker that fitted it (see _in_worker)
    spectrum: dict[str, list[float]]


def make_estimator(preprocess: Component, model: Component, dataset: Dataset,
                   task: Task) -> Pipeline:
    """A job's unfitted pipeline, preprocessing then model, checked against its task."""
    return Pipeline([
        ("preprocess", preprocess.build(dataset=dataset, task=task)),
        ("model", models.build(model, dataset, task)),
    ])


def fit_and_score(fold: Fold, template: Pipeline, dataset: Dataset, task: Task,
                  names: tuple[str, ...] | list[str], average: str,
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
    scores, test = task.score(estimator, dataset, fold, list(names), average)
    row.update(scores)
    return Fitted(row, test, estimator, spectrum)


def refit(template: Pipeline, dataset: Dataset, task: Task, tracker: BaseTracker,
          parent: str) -> Pipeline:
    """The whole pipeline fit on all the data, as a fold's training part is fitted, and logged
    as the parent run's model."""
    final = clone(template)
    fitted = task.fit(final, dataset, slice(None))
    logged = tracker.log_model(parent, final, dataset.X,
                               ("torch",) if "torch" in models.requires(final) else ())
    log.info("refit on all %d rows in %.2fs, logged as the run's model in %.2fs",
             len(dataset.X), fitted, logged)
    return final


def run_folds(plan: Plan, dataset: Dataset, task: Task, tracker: BaseTracker, parent: str,
              early: Iterator[Fitted | Exception] | None = None) -> pd.DataFrame:
    """Every fold, one after another (or `plan.n_jobs` at once, their outcomes `early` if
    already started): a row of scores each, a child run of `parent` each."""
    prefit = _fit_batched(plan, dataset, task)
    # Folds in workers draw no per-epoch bars (a torch model's): the bar across folds shows.
    shown = plan.estimator if plan.n_jobs == 1 or prefit else None
    with report.progress(len(plan.folds), shown) as step:
        if plan.n_jobs > 1 and prefit is None:
            outcomes = early or start_parallel(plan, dataset, task)
            rows = [step(row) for row in _parallel_folds(plan, outcomes, dataset, task, tracker,
                                                          parent)]
        else:
            prefit = prefit or [None] * len(plan.folds)
            rows = [step(_fold(i, plan, dataset, task, tracker, parent, prefit[i - 1]))
                    for i in range(1, len(plan.folds) + 1)]
    names = [plan.folds.run_name(i) for i in range(1, len(rows) + 1)]
    return pd.DataFrame(rows, index=pd.Index(names, name="fold"))


def _fit_batched(plan: Plan, dataset: Dataset, task: Task) -> list[tuple[Pipeline, float]] | None:
    """Every fold's pipeline fitted, the torch models as one batched model, with the seconds
    charged to each fold (the batched fit's time divided by the number of folds); None when the
    folds are fitted one by one in `_fold`. Before any fold's run: an interrupt here leaves
    only the parent run, which ends KILLED."""
    if not plan.batch_folds:
        return None
    return batched.fit_folds(plan.estimator, dataset, task, plan.folds,
                             strict=plan.strict_batching)


def _fold(i: int, plan: Plan, dataset: Dataset, task: Task, tracker: BaseTracker, parent: str,
          prefit: tuple[Pipeline, float] | None = None) -> dict[str, float]:
    """Fit a fresh clone on fold `i`'s training part (or take `prefit`, the pipeline already
    fitted on it and its fit seconds) and score every part; one child run."""
    folds, fold = plan.folds, plan.folds[i - 1]
    with tracker.run(folds.run_name(i), parent=parent, params=sizes(i, folds)) as child:
        fitted = fit_and_score(fold, plan.estimator, dataset, task, plan.scoring.names,
                               plan.scoring.average, prefit)
        _log_fold(fitted, fold, dataset, task, tracker, child, plan.figures)
    log.info("%s: %s", _said(i, folds), report.brief(fitted.row, plan.scoring.objective))
    return fitted.row


def sizes(i: int, folds: Folds) -> dict[str, int]:
    """A fold run's params: `fold`, its 1-based index across repeats (the order of the folds),
    with `repeat` and `fold_in_repeat` where the scheme repeats, and the parts' sizes."""
    fold = folds[i - 1]
    counted = {"fold": i, "train_size": len(fold.train), "test_size": len(fold.test)}
    if folds.repeats > 1:
        counted["repeat"], counted["fold_in_repeat"] = folds.position(i)
    if fold.val is not None:
        counted["val_size"] = len(fold.val)
    return counted


def _said(i: int, folds: Folds) -> str:
    """Fold `i` in the log line that ends it: `fold 7`, or `fold 7 (repeat-2/fold-2)`."""
    return f"fold {i}" + (f" ({folds.run_name(i)})" if folds.repeats > 1 else "")


def _log_fold(fitted: Fitted, fold: Fold, dataset: Dataset, task: Task, tracker: BaseTracker,
              child: str, figures: Figures | None, params: dict[str, int] | None = None) -> None:
    """What a fold's run records: scores and curves (with `params`, if not yet logged, in the
    same request), the task's tables, the figures."""
    estimator = fitted.estimator
    history = {} if estimator is None else getattr(estimator[-1], "history_", {})
    tracker.log_metrics(child, fitted.row, {**history, **fitted.spectrum}, params)
    task.log_fold(tracker, child, fitted.test)
    if figures:
        figures.fold(tracker, child, estimator, fitted.test, dataset.X.iloc[fold.test],
                     None if dataset.y is None else dataset.y.iloc[fold.test])


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and (population) standard deviation of every score across folds, NaN ignored."""
    values = table.to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a metric undefined in every fold
        return pd.DataFrame([np.nanmean(values, axis=0), np.nanstd(values, axis=0)],
                            index=["mean", "std"], columns=table.columns)


def summarise(table: pd.DataFrame, tracker: BaseTracker, parent: str) -> pd.DataFrame:
    """Mean and std across folds, logged on the parent run with the per-fold table."""
    summary = summarize(table)
    for warning in metrics.undefined(table):
        log.warning(warning)
    tracker.log_metrics(parent, {f"{column}_{stat}": summary.loc[stat, column]
                                 for column in summary.columns for stat in summary.index})
    tracker.log_table(parent, table, "folds.csv")
    return summary


def resumed(run: Any, objective: str, tracker: BaseTracker, sweep: str | None) -> Result:
    """`resume=true` and this config already FINISHED: the recorded scores, nothing rerun."""
    from pipeline.tracking import redact

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
                  run.info.run_id, redact(tracker.uri))


# -- folds in worker processes ---------------------------------------------------------------

def fold_jobs(value: Any, n_folds: int) -> int:
    """`cv.n_jobs` as the number of folds to run at once: a positive integer, or a negative
    one counting back from the cores as joblib does (-1: one per core); never more than the
    folds. Refused in one line otherwise, before any run."""
    from joblib import cpu_count

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


def start_parallel(plan: Plan, dataset: Dataset,
                   task: Task) -> Iterator[Fitted | Exception] | None:
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
    log.info("folds %d at a time in worker processes (cv.n_jobs), %d core(s) each",
             plan.n_jobs, share)
    with parallel_config(backend="loky", inner_max_num_threads=share):
        return Parallel(n_jobs=plan.n_jobs, return_as="generator",
                        initializer=_end_with_job, initargs=(os.getpid(),))(
            delayed(_in_worker)(fold, template, dataset, task, plan.scoring.names,
                                plan.scoring.average, keep_estimator=bool(plan.figures))
            for fold in plan.folds)


def _parallel_folds(plan: Plan, outcomes: Iterator[Fitted | Exception], dataset: Dataset,
                    task: Task, tracker: BaseTracker, parent: str) -> Iterator[dict[str, float]]:
    """The folds' `outcomes` from the worker processes, each fold's run logged in fold order
    as its results come back (while later folds still train): this process alone talks to
    MLflow. A stop signal ends the job's runs here and the workers are killed (joblib
    aborts)."""
    from joblib.externals.loky import BrokenProcessPool

    try:
        for i, fold in enumerate(plan.folds, 1):
            try:
                outcome = next(outcomes)
            except BrokenProcessPool as broken:  # joblib has killed the pool's other workers
                outcome = WorkerKilled.of(broken, plan.folds, i, plan.n_jobs)
            # The fold's scores are in hand: its params go with them, in one request.
            counted, failed = sizes(i, plan.folds), isinstance(outcome, Exception)
            with tracker.run(plan.folds.run_name(i), parent=parent,
                             params=counted if failed else None) as child:
                if failed:
                    raise outcome  # the fold's run fails with it, as it would in turn
                _log_fold(outcome, fold, dataset, task, tracker, child, plan.figures, counted)
            log.info("%s: %s", _said(i, plan.folds),
                     report.brief(outcome.row, plan.scoring.objective))
            yield outcome.row
    finally:
        cancel(outcomes)


class WorkerKilled(TrackingFailure):
    """A fold's worker process died without a word (SIGKILL: most often the out-of-memory
    killer): the machine's fault, reported as a store's is (one line, the fold's run and the
    parent FAILED, the finished folds kept; see `Tracker.run`), exit status 1."""

    @classmethod
    def of(cls, broken: Exception, folds: Folds, i: int, n_jobs: int) -> WorkerKilled:
        # joblib knows only that the pool broke, not which of the folds in flight the dead
        # worker held: the one awaited, or one after it fitting beside it.
        last = min(i + n_jobs - 1, len(folds))
        named = (folds.run_name(i) if last == i else
                 f"{folds.run_name(i)} or {folds.run_name(last)}" if last == i + 1 else
                 f"one of {folds.run_name(i)} to {folds.run_name(last)}")
        # loky's message is all it says of the worker: "... exit codes ... are {SIGKILL(-9)}".
        died = re.search(r"\b(SIG[A-Z]+)\((-?\d+)\)", str(broken))
        how, advice = "died", "run it again with cv.n_jobs=1 to see its error"
        if died is not None and died[1] == "SIGKILL":
            how = (f"was killed (signal {abs(int(died[2]))}, SIGKILL — often the out-of-memory "
                   "killer)")
            advice = "use fewer parallel folds (cv.n_jobs=1) or less data"
        elif died is not None:
            how = f"died of signal {abs(int(died[2]))} ({died[1]})"
        killed = cls(f"a fold's worker process {how} while fitting {named} "
                     f"({n_jobs} folds at a time, cv.n_jobs={n_jobs})", advice)
        killed.__cause__ = broken
        return killed


def _end_with_job(job: int) -> None:
    """The fold workers' initializer: a worker ends when the job's process does, killed outright
    included, instead of finishing its fold and idling out loky's 300 s still holding the
    job's stdout and stderr (`python -m pipeline ... | cat` would wait for it). On Linux the
    kernel sends SIGKILL when the parent dies (PR_SET_PDEATHSIG); elsewhere a thread watches."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1  # <linux/prctl.h>
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    else:
        import threading

        def watch() -> None:
            while os.getppid() == job:
                time.sleep(1)
            os._exit(1)

        threading.Thread(target=watch, daemon=True, name="end-with-job").start()
    if os.getppid() != job:  # the job was gone before the line above
        os._exit(1)


def cancel(outcomes: Iterator[Fitted | Exception]) -> None:
    """The folds still running in worker processes cancelled, their workers killed; quietly
    (joblib warns of the tasks it drops, which the job's own error or stop line explains)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tasks which were still being processed",
                                category=UserWarning)
        outcomes.close()


def _in_worker(*args: Any, keep_estimator: bool = True) -> Fitted | Exception:
    """`fit_and_score` in a worker process: its error is returned, to fail the fold's run in
    the job's process. Deaf to stop signals: Ctrl-C in a terminal reaches the whole process
    group, and the job's process, which ends the runs, kills its workers.

    Without figures to draw (`keep_estimator=False`) the fitted pipeline stays here: it is
    most of what would be pickled back (a forest's trees), and the job's process reads
    nothing of it but its curves, which go back."""
    import copy

    from pipeline.errors import STOP_SIGNALS

    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    os.environ["PIPELINE_FOLD_WORKER"] = "1"  # no training progress bars (see run_folds)
    try:
        fitted = fit_and_score(*args)
    except Exception as error:  # noqa: BLE001 - a process boundary: raised again in the fold's run
        # Its frames here do not travel back with it: their text does, as a note, so that the
        # traceback kept for a defect shows where in the fit it happened.
        error.add_note("raised in the fold's worker process:\n"
                       + "".join(traceback.format_tb(error.__traceback__)).rstrip())
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
