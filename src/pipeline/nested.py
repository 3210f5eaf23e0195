"""Nested cross-validation: the `hparams_search` preset's search, run by Optuna on inner folds of
each outer training part only, its best configuration refit there and scored on the outer test
part, which the search never saw. The outer scores estimate the tuned model without the
optimism of scoring a search on the folds it chose by."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from pipeline import checks, cv, data, metrics, models, report, tasks, tracking
from pipeline.config import config_dir, instantiate_node
from pipeline.errors import PipelineError
from pipeline.report import Result
from pipeline.tasks import Task

log = logging.getLogger("pipeline")


@dataclass
class Search:
    """What each outer fold's study searches: Optuna distributions by config key, the values
    every trial sets (the preset's plain `params`), how many trials, the sampler's config."""

    space: dict[str, Any]
    fixed: dict[str, str]
    n_trials: int
    sampler: dict[str, Any]
    # The preset's params as written (`model.max_depth: choice(4, 8)`), for the record.
    written: dict[str, str]

    def study(self, direction: str, seed: int) -> Any:
        """A fresh in-memory study, its sampler (the preset's) seeded by `seed`."""
        import optuna
        from hydra.utils import instantiate

        spec = {**self.sampler, **({"seed": seed} if "seed" in self.sampler else {})}
        return optuna.create_study(direction=direction, sampler=instantiate(spec))


def search_of(sweeper: DictConfig | None, outer: str) -> Search:
    """The search that `hydra.sweeper` describes (an `hparams_search` preset's Optuna sweeper):
    its `params` parsed into Optuna distributions by the project's sweeper's own parser, as
    a sweep would parse them; a sweeper without params is a one-line error."""
    from hydra.errors import OverrideParseException

    from hydra_plugins.pipeline_optuna_sweeper.params import search_space

    params = sweeper.get("params") if sweeper is not None else None
    if not params or "n_trials" not in sweeper:
        presets = ", ".join(sorted(p.stem for p in (config_dir() / "hparams_search").glob(
            "*.yaml")))
        raise PipelineError(
            f"cv.outer={outer} tunes a model inside each outer fold and needs a search space: "
            f"add hparams_search=<preset> ({presets})")
    written = {str(key): str(value) for key, value in params.items()}
    try:
        space, fixed = search_space([f"{k}={v}" for k, v in written.items()])
    except (OverrideParseException, ValueError) as error:
        raise PipelineError(f"hydra.sweeper.params: {str(error).splitlines()[0]}") from error
    n_trials = sweeper.n_trials
    if not checks.is_int(n_trials) or n_trials < 1:
        raise PipelineError(f"hydra.sweeper.n_trials={n_trials} is not a positive integer")
    sampler = OmegaConf.to_container(sweeper.sampler, resolve=True) if sweeper.get(
        "sampler") else {"_target_": "optuna.samplers.TPESampler", "seed": None}
    if sampler.get("_target_") == "optuna.samplers.GridSampler":
        raise PipelineError("cv.outer: the grid sampler is not supported in nested "
                            "cross-validation; use the preset's sampler (tpe) or random")
    return Search(space, fixed, int(n_trials), sampler, written)


def outer_scheme(job: DictConfig) -> DictConfig:
    """The `cv` option that `cv.outer` names, with its own defaults (`${seed}` resolving in the
    job's config) and `cv.outer_splits` as its `n_splits` where given."""
    name = str(job.cv.outer)
    options = sorted(path.stem for path in (config_dir() / "cv").glob("*.yaml"))
    if name not in options:
        raise PipelineError(f"cv.outer={name} is not an option of the cv group; use one of "
                            f"{', '.join(options)} (e.g. cv.outer=kfold)")
    if name in ("train_val_test", "resample"):
        why = ("its validation part would go unused: use cv.outer=holdout"
               if name == "train_val_test" else "it is for clustering models")
        raise PipelineError(f"cv.outer={name} cannot be the outer scheme: {why}")
    node = OmegaConf.load(config_dir() / "cv" / f"{name}.yaml")
    node.pop("defaults", None)
    splits = job.cv.get("outer_splits")
    if splits is not None:
        if "n_splits" not in node:
            raise PipelineError(f"cv.outer_splits={splits}: cv.outer={name} has no n_splits; "
                                f"use cv.outer=kfold")
        node.n_splits = splits
    outer = copy.deepcopy(job)
    OmegaConf.set_struct(outer, False)
    outer.cv = node  # `${seed}` in it resolves against the job's config
    return outer


def run(cfg: DictConfig) -> Result:
    """Nested cross-validation of `cfg.model` on `cfg.data`: outer folds by `cv.outer`, each
    tuned on inner folds by `cfg.cv` and scored on its test part; tracked in MLflow as a parent
    run, a child run per outer fold and, under it, a run per trial (no run per inner fold)."""
    from hydra.core.hydra_config import HydraConfig

    checks.seed(cfg)
    dataset = data.load(cfg.data)
    task = tasks.decide(dataset, cfg.model)
    if not task.supervised:
        raise PipelineError(f"cv.outer: nested cross-validation tunes a supervised model; "
                            f"model={cfg.model.name} clusters")
    job = tasks.configure(cfg, task)
    outer_job = outer_scheme(job)
    search = search_of(HydraConfig.get().sweeper if HydraConfig.initialized() else None,
                       str(job.cv.outer))
    objective = str(job.objective)
    direction = "minimize" if metrics.lower_is_better(objective) else "maximize"
    # Checked before any fit: the untuned pipeline, the metrics, the outer and every inner split.
    estimator = _pipeline(job, dataset, task)
    names = task.metric_names(job)
    metrics.check_responses(names, task.name, estimator, job.model.name)
    outer = cv.split(outer_job.cv, dataset, task)
    checks.against_folds(outer_job, estimator, dataset, outer)
    inner = [inner_folds(job.cv, dataset, task, fold.train) for fold in outer]
    trials, n_inner = search.n_trials, sum(len(folds) for folds in inner)
    report.print_config(job)
    log.info("nested cross-validation: %d outer folds (cv.outer=%s) x %d trials x %s inner "
             "folds (cv=%s) = %d fits, then %d refits on the outer training parts",
             len(outer), outer_job.cv.name, trials, _count(inner), job.cv.name,
             trials * n_inner, len(outer))

    experiment = job.tracking.experiment or dataset.name
    tracker = tracking.connect(job.tracking.uri or tracking.default_uri(), experiment)
    resolved = tracking.loggable(OmegaConf.to_container(job, resolve=True))
    described = {"outer": {k: v for k, v in OmegaConf.to_container(
                     outer_job.cv, resolve=True).items() if k != "_target_"},
                 "search": {"n_trials": trials, "sampler": search.sampler.get("_target_"),
                            **search.written}}
    tags = {"model": job.model.name, "data": dataset.name, "cv": outer_job.cv.name,
            "inner_cv": job.cv.name, "nested": "true", "task": task.name,
            "objective": f"test_{objective}",
            "config_hash": tracking.config_hash({**resolved, **described})}
    if job.get("resume") and (done := tracker.finished_run(tags["config_hash"])):
        from pipeline.runner import _resumed

        return _resumed(done, f"test_{objective}", tracker, None)
    with _quiet_optuna(), tracker.run(
            f"{job.model.name}-nested-{outer_job.cv.name}", tags=tags,
            params={**tracking.flatten(resolved), **tracking.flatten(described)}) as parent:
        rows, chosen = [], []
        for i, folds in enumerate(inner, 1):
            row, best = _outer_fold(i, outer, folds, search, direction, job, dataset, task,
                                    names, tracker, parent)
            rows.append(row)
            chosen.append(best)
        table = pd.DataFrame(rows, index=pd.Index(
            [outer.run_name(i) for i in range(1, len(rows) + 1)], name="fold"))
        from pipeline.runner import _summarise

        summary = _summarise(table, tracker, parent)
        tracker.log_table(parent, pd.DataFrame(chosen, index=table.index), "chosen.csv")
        tracker.log_text(parent, OmegaConf.to_yaml(resolved), "config.yaml")
    result = Result(table, summary, f"test_{objective}", experiment, parent,
                    tracking.redact(tracker.uri))
    shown = copy.deepcopy(outer_job)  # the heading names both schemes
    shown.cv.name = f"{outer_job.cv.name} (outer) x {job.cv.name} (inner), nested"
    report.print_result(result, dataset, shown)
    inner_best = f"inner_best_{objective}"
    log.info("nested test_%s: %.4f ± %.4f (each outer test part unseen by its search)\n"
             "inner best %s: %.4f ± %.4f (the search's own estimate, which chose by it)",
             objective, result.score, result.spread, objective,
             summary.loc["mean", inner_best], summary.loc["std", inner_best])
    return result


def inner_folds(scheme: DictConfig, dataset: data.Dataset, task: Task,
                rows: np.ndarray) -> list[cv.Fold]:
    """`scheme`'s folds of the data's `rows` (an outer training part), as positions in the
    whole data set: no other row can enter them."""
    part = dataclasses.replace(
        dataset, X=dataset.X.iloc[rows], y=None if dataset.y is None else dataset.y.iloc[rows],
        groups=None if dataset.groups is None else dataset.groups.iloc[rows], notes=())
    return [cv.Fold(*(None if piece is None else rows[piece] for piece in fold))
            for fold in cv.split(scheme, part, task)]


def _outer_fold(i: int, outer: cv.Folds, folds: list[cv.Fold], search: Search, direction: str,
                job: DictConfig, dataset: data.Dataset, task: Task, names: list[str],
                tracker: tracking.BaseTracker,
                parent: str) -> tuple[dict[str, float], dict[str, Any]]:
    """Outer fold `i`'s run: the search on `folds` (its training part's inner folds), a run per
    trial, then the best configuration refit on the training part and scored on its test part."""
    from pipeline.runner import _fit_and_score, _sizes

    objective = str(job.objective)
    fold = outer[i - 1]
    with tracker.run(outer.run_name(i), parent=parent, params=_sizes(i, outer)) as child:
        started = time.perf_counter()
        study = search.study(direction, int(job.seed))
        for number in range(search.n_trials):
            trial = study.ask(search.space)
            params = {**trial.params, **search.fixed}
            with tracker.run(f"trial-{number}", parent=child,
                             params={"trial": number, **params}) as run_id:
                template = _pipeline(configured(job, params), dataset, task)
                scores = [_fit_and_score(inner, template, dataset, task, [objective],
                                         job.metrics.average).row[f"test_{objective}"]
                          for inner in folds]  # each fold fits a fresh clone
                mean, std = float(np.nanmean(scores)), float(np.nanstd(scores))
                trial.set_user_attr("std", std)
                tracker.log_metrics(run_id, {f"inner_{objective}_mean": mean,
                                             f"inner_{objective}_std": std})
            if math.isfinite(mean):
                study.tell(trial, mean)
            else:
                from optuna.trial import TrialState

                study.tell(trial, state=TrialState.FAIL)
            log.debug("fold %d trial %d: inner %s %.4f ± %.4f %s", i, number, objective, mean,
                      std, params)
        best = _best(study, i, objective)
        chosen = {**best.params, **search.fixed}
        searched = time.perf_counter() - started
        fitted = _fit_and_score(fold, _pipeline(configured(job, chosen), dataset, task),
                                dataset, task, names, job.metrics.average)
        row = {**fitted.row, f"inner_best_{objective}": best.value, "search_time": searched}
        if (client := getattr(tracker, "client", None)) is not None:  # rank 0 only
            client.log_batch(child, params=_params({f"best.{k}": v for k, v in chosen.items()}))
        tracker.log_metrics(child, {**row, f"inner_best_{objective}_std": best.user_attrs.get(
            "std", math.nan)})
        task.log_fold(tracker, child, fitted.test)
    log.info("fold %d: %s  inner best %s=%.4f  %s", i, report.brief(fitted.row, objective),
             objective, best.value, "  ".join(f"{k}={v}" for k, v in best.params.items()))
    return row, chosen


def _best(study: Any, i: int, objective: str) -> Any:
    try:
        return study.best_trial
    except ValueError:
        raise PipelineError(f"outer fold {i}: no trial gave a finite inner {objective} (the "
                            f"metric is undefined on these folds); choose another objective "
                            f"or fewer inner folds") from None


def configured(job: DictConfig, params: dict[str, Any]) -> DictConfig:
    """`job` with a trial's values set, each read as Hydra reads an override (`[64,32]` is a
    list, `null` None), so that a trial is the job a sweep would launch with them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf.errors import OmegaConfBaseException

    parser = OverridesParser.create()
    trial = copy.deepcopy(job)
    for key, value in params.items():
        override = parser.parse_overrides([f"{key}={value}"])[0]
        if OmegaConf.select(trial, key, default=KeyError) is KeyError:
            raise PipelineError(f"hydra.sweeper.params: {key} is not a key of the config")
        try:
            OmegaConf.update(trial, key, override.value(), merge=False)
        except OmegaConfBaseException as error:
            raise PipelineError(f"hydra.sweeper.params: {key}={value}: {error}") from error
    return trial


def _pipeline(job: DictConfig, dataset: data.Dataset, task: Task) -> Any:
    """The job's unfitted pipeline, preprocessing then model, as the runner builds it."""
    from sklearn.pipeline import Pipeline

    return Pipeline([
        ("preprocess", instantiate_node(job.preprocess, dataset=dataset, task=task)),
        ("model", models.build(job.model, dataset, task)),
    ])


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
