"""Nested cross-validation: the `hparams_search` preset's search, run by Optuna on inner folds of
each outer training part only, its best configuration refit there and scored on the outer test
part, which the search never saw. The outer scores estimate the tuned model without the
optimism of scoring a search on the folds it chose by."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from pipeline import checks, cv, data, engine, metrics, report, tracking
from pipeline.errors import PipelineError
from pipeline.report import Result
from pipeline.spec import Job, Scheme, Search, thaw
from pipeline.tasks import Task

log = logging.getLogger("pipeline")


def study(search: Search, direction: str, seed: int) -> Any:
    """A fresh in-memory study, its sampler (the preset's) seeded by `seed`."""
    import optuna
    from hydra.utils import instantiate

    spec = {**thaw(search.sampler), **({"seed": seed} if "seed" in search.sampler else {})}
    return optuna.create_study(direction=direction, sampler=instantiate(spec))


def run(job: Job, dataset: data.Dataset, task: Task) -> Result:
    """Nested cross-validation of `job.model` on `dataset`: outer folds by `job.outer`, each
    tuned on inner folds by `job.scheme` and scored on its test part; tracked in MLflow as a
    parent run, a child run per outer fold and, under it, a run per trial (no run per inner
    fold)."""
    if not task.supervised:
        raise PipelineError(f"cv.outer: nested cross-validation tunes a supervised model; "
                            f"model={job.model.name} clusters")
    search, outer_scheme = job.search, job.outer
    objective = job.scoring.objective
    direction = "minimize" if metrics.lower_is_better(objective) else "maximize"
    # Checked before any fit: the pipeline as every trial sets the preset's fixed values, the
    # metrics, the outer and every inner split, and each value the search may propose.
    base = configured(job, dict(search.fixed))
    estimator = engine.make_estimator(base.preprocess, base.model, dataset, task)
    metrics.check_responses(job.scoring.names, task.name, estimator, job.model.name)
    outer = cv.split(outer_scheme, dataset, task)
    checks.against_folds(estimator, dataset, outer, base.preprocess, outer_scheme.name,
                         job.model.name, job.tracking.experiment, job.sweep,
                         searched=search.space.keys())
    inner = [inner_folds(job.scheme, dataset, task, fold.train) for fold in outer]
    checks.against_search(estimator, base.preprocess, candidates(job, dataset, task), dataset,
                          checks.nested_parts(outer, inner, outer_scheme.name, job.scheme.name))
    trials, n_inner = search.n_trials, sum(len(folds) for folds in inner)
    report.print_config(job)
    log.info("nested cross-validation: %d outer folds (cv.outer=%s) x %d trials x %s inner "
             "folds (cv=%s) = %d fits, then %d refits on the outer training parts",
             len(outer), outer_scheme.name, trials, _count(inner), job.scheme.name,
             trials * n_inner, len(outer))

    experiment = job.tracking.experiment or dataset.name
    tracker = tracking.connect(job.tracking.uri or tracking.default_uri(), experiment,
                               migrate=job.tracking.migrate)
    resolved = tracking.loggable(job.config)
    described = {"outer": {"name": outer_scheme.name, **thaw(outer_scheme.splitter.arguments)},
                 "search": {"n_trials": trials, "sampler": search.sampler.get("_target_"),
                            **search.written}}
    tags = {"model": job.model.name, "data": dataset.name, "cv": outer_scheme.name,
            "inner_cv": job.scheme.name, "nested": "true", "task": task.name,
            "objective": f"test_{objective}",
            "config_hash": tracking.config_hash({**resolved, **described})}
    if job.options.resume and (done := tracker.finished_run(tags["config_hash"])):
        return engine.resumed(done, f"test_{objective}", tracker, None)
    with _quiet_optuna(), tracker.run(
            f"{job.model.name}-nested-{outer_scheme.name}", tags=tags,
            params={**tracking.flatten(resolved), **tracking.flatten(described)}) as parent:
        rows, chosen = [], []
        for i, folds in enumerate(inner, 1):
            row, best = _outer_fold(i, outer, folds, direction, job, dataset, task, tracker,
                                    parent)
            rows.append(row)
            chosen.append(best)
        table = pd.DataFrame(rows, index=pd.Index(
            [outer.run_name(i) for i in range(1, len(rows) + 1)], name="fold"))
        summary = engine.summarise(table, tracker, parent)
        tracker.log_table(parent, pd.DataFrame(chosen, index=table.index), "chosen.csv")
        tracker.log_text(parent, OmegaConf.to_yaml(resolved), "config.yaml")
    result = Result(table, summary, f"test_{objective}", experiment, parent,
                    tracking.redact(tracker.uri))
    # the heading names both schemes
    report.print_result(result, dataset, job.model.name,
                        f"{outer_scheme.name} (outer) x {job.scheme.name} (inner), nested")
    inner_best = f"inner_best_{objective}"
    log.info("nested test_%s: %.4f ± %.4f (each outer test part unseen by its search)\n"
             "inner best %s: %.4f ± %.4f (the search's own estimate, which chose by it)",
             objective, result.score, result.spread, objective,
             summary.loc["mean", inner_best], summary.loc["std", inner_best])
    return result


def inner_folds(scheme: Scheme, dataset: data.Dataset, task: Task,
                rows: np.ndarray) -> list[cv.Fold]:
    """`scheme`'s folds of the data's `rows` (an outer training part), as positions in the
    whole data set: no other row can enter them."""
    part = dataclasses.replace(
        dataset, X=dataset.X.iloc[rows], y=None if dataset.y is None else dataset.y.iloc[rows],
        groups=None if dataset.groups is None else dataset.groups.iloc[rows], notes=())
    return [cv.Fold(*(None if piece is None else rows[piece] for piece in fold))
            for fold in cv.split(scheme, part, task)]


def _outer_fold(i: int, outer: cv.Folds, folds: list[cv.Fold], direction: str, job: Job,
                dataset: data.Dataset, task: Task, tracker: tracking.BaseTracker,
                parent: str) -> tuple[dict[str, float], dict[str, Any]]:
    """Outer fold `i`'s run: the search on `folds` (its training part's inner folds), a run per
    trial, then the best configuration refit on the training part and scored on its test part."""
    search, objective, average = job.search, job.scoring.objective, job.scoring.average
    fold = outer[i - 1]
    with tracker.run(outer.run_name(i), parent=parent, params=engine.sizes(i, outer)) as child:
        started = time.perf_counter()
        searching = study(search, direction, job.options.seed)
        for number in range(search.n_trials):
            trial = searching.ask(dict(search.space))
            params = {**trial.params, **search.fixed}
            with tracker.run(f"trial-{number}", parent=child,
                             params={"trial": number, **params}) as run_id:
                tried = configured(job, params)
                template = engine.make_estimator(tried.preprocess, tried.model, dataset, task)
                scores = [engine.fit_and_score(inner, template, dataset, task, [objective],
                                               average).row[f"test_{objective}"]
                          for inner in folds]  # each fold fits a fresh clone
                mean, std = _mean_and_std(scores)
                trial.set_user_attr("std", std)
                tracker.log_metrics(run_id, {f"inner_{objective}_mean": mean,
                                             f"inner_{objective}_std": std})
            if math.isfinite(mean):
                searching.tell(trial, mean)
            else:
                from optuna.trial import TrialState

                searching.tell(trial, state=TrialState.FAIL)
            log.debug("fold %d trial %d: inner %s %.4f ± %.4f %s", i, number, objective, mean,
                      std, params)
        best = _best(searching, i, objective)
        chosen = {**best.params, **search.fixed}
        searched = time.perf_counter() - started
        best_job = configured(job, chosen)
        fitted = engine.fit_and_score(
            fold, engine.make_estimator(best_job.preprocess, best_job.model, dataset, task),
            dataset, task, job.scoring.names, average)
        row = {**fitted.row, f"inner_best_{objective}": best.value, "search_time": searched}
        if (client := getattr(tracker, "client", None)) is not None:  # rank 0 only
            client.log_batch(child, params=_params({f"best.{k}": v for k, v in chosen.items()}))
        tracker.log_metrics(child, {**row, f"inner_best_{objective}_std": best.user_attrs.get(
            "std", math.nan)})
        task.log_fold(tracker, child, fitted.test)
    log.info("fold %d: %s  inner best %s=%.4f  %s", i, report.brief(fitted.row, objective),
             objective, best.value, "  ".join(f"{k}={v}" for k, v in best.params.items()))
    return row, chosen


def candidates(job: Job, dataset: data.Dataset, task: Task) -> Iterator[checks.Candidate]:
    """Each configuration to check before the search: every bound of every searched range (and
    every choice) with the rest of the job as each trial sets it, built as a trial builds it,
    so that a value the model's or a step's constructor refuses is found here too."""
    search = job.search
    for key, value, span in checks.searched_values(search.space):
        tried = configured(job, {key: value, **search.fixed})
        try:
            estimator = engine.make_estimator(tried.preprocess, tried.model, dataset, task)
            metrics.check_responses(job.scoring.names, task.name, estimator, job.model.name)
        except PipelineError as error:
            raise checks.search_mistake(key, value, span, f"which is refused: {error}") from None
        yield checks.Candidate(key, value, span, estimator, tried.preprocess)


def _mean_and_std(scores: list[float]) -> tuple[float, float]:
    """A trial's mean and std over its finite inner scores; NaN for both where there is none
    (the trial then fails, and a search whose every trial fails says so in one line)."""
    finite = np.asarray([score for score in scores if math.isfinite(score)], dtype=float)
    if not finite.size:
        return math.nan, math.nan
    return float(finite.mean()), float(finite.std())


def _best(study: Any, i: int, objective: str) -> Any:
    try:
        return study.best_trial
    except ValueError:
        raise PipelineError(f"outer fold {i}: no trial gave a finite inner {objective} (the "
                            f"metric is undefined on these folds); choose another objective "
                            f"or fewer inner folds") from None


def configured(job: Job, params: dict[str, Any]) -> Job:
    """`job` with a trial's values set, each read as Hydra reads an override (`[64,32]` is a
    list, `null` None), so that a trial is the job a sweep would launch with them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    values = {}
    for key, value in params.items():
        try:
            values[key] = parser.parse_overrides([f"{key}={value}"])[0].value()
        except OverrideParseException as error:
            raise PipelineError(f"hydra.sweeper.params: {key}={value}: "
                                f"{str(error).splitlines()[0]}") from error
    return job.with_trial(values)


def _params(values: dict[str, Any]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(key, str(value)) for key, value in values.items()]


def _count(inner: list[list[cv.Fold]]) -> str:
    sizes = {len(folds) for folds in inner}
    return str(sizes.pop()) if len(sizes) == 1 else f"{min(sizes)}-{max(sizes)}"


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna announces every study it creates and every trial told; the job's lines say it."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)
