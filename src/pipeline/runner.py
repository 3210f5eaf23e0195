"""The job: load data, split it, fit and score a fresh pipeline per fold, track it all."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict
from sklearn.base import clone, is_clusterer
from sklearn.pipeline import Pipeline

from pipeline import checks, cv, data, metrics, models, plots, preprocessing, report, tracking
from pipeline.config import instantiate_node
from pipeline.errors import PipelineError

log = logging.getLogger("pipeline")


@dataclass
class Result:
    """What a job measured: one row of scores per fold, and where MLflow keeps them."""

    folds: pd.DataFrame
    summary: pd.DataFrame
    objective: str
    experiment: str
    run_id: str
    uri: str

    @property
    def score(self) -> float:
        return float(self.summary.loc["mean", self.objective])

    @property
    def spread(self) -> float:
        return float(self.summary.loc["std", self.objective])


def run(cfg: DictConfig) -> Result:
    """Cross-validate `cfg.model` on `cfg.data` under `cfg.cv`, tracked in MLflow.

    Everything that can be checked without training (data, task, model arguments, splits,
    tracking store) is checked before the first fit.
    """
    if tracking.global_rank() != 0:
        log.setLevel(logging.WARNING)  # under torchrun, rank 0 speaks for the job
    checks.seed(cfg)
    dataset = data.load(cfg.data)
    _set_task(cfg, dataset.task)
    model = models.build(cfg.model, dataset)
    if is_clusterer(model):
        dataset = replace(dataset, task="clustering")
        _set_task(cfg, "clustering")
    names = list(cfg.metrics[dataset.task])
    metrics.check_names(dataset.task, names)
    objective = f"test_{cfg.objective}"
    if cfg.objective not in names:
        raise PipelineError(f"objective={cfg.objective} is not among metrics.{dataset.task}")
    estimator = Pipeline([
        ("preprocess", instantiate_node(cfg.preprocess, dataset=dataset)),
        ("model", model),
    ])
    folds = cv.split(cfg.cv, dataset)
    checks.against_folds(cfg, estimator, dataset, folds)
    figures = plots.Figures.for_job(cfg, dataset, len(folds))
    refit = _refit_wanted(cfg.get("refit", "auto"), dataset)
    if tracking.global_rank() == 0:
        report.print_config(cfg)
    experiment = cfg.tracking.experiment or dataset.name
    tracker = tracking.connect(cfg.tracking.uri or tracking.default_uri(), experiment)
    resolved = tracking.loggable(OmegaConf.to_container(cfg, resolve=True))
    tags = {**_tags(cfg, dataset), "config_hash": tracking.config_hash(resolved)}
    if cfg.get("resume") and (done := tracking.finished_run(tracker, tags["config_hash"])):
        return _resumed(done, objective, tracker, tags.get("sweep"))
    with tracker.run(f"{cfg.model.name}-{cfg.cv.name}", params=tracking.flatten(resolved),
                     tags=tags) as parent:
        log.info("%s on %s (%s), cv=%s: %d fold(s); MLflow run %s",
                 cfg.model.name, dataset.name, dataset.task, cfg.cv.name, len(folds), parent)
        if decisions := (*dataset.notes, *folds.notes):  # as printed before the run
            tracker.log_text(parent, "\n".join(decisions) + "\n", "decisions.txt")
        reference = _reference_clusters(estimator, dataset)
        with report.progress(len(folds), estimator) as step:
            rows = [step(_fold(i, fold, estimator, dataset, names, cfg, tracker, parent,
                               reference, figures))
                    for i, fold in enumerate(folds, 1)]
        table = pd.DataFrame(rows, index=pd.Index([f"fold-{i}" for i in range(1, len(rows) + 1)],
                                                  name="fold"))
        summary = summarize(table)
        for warning in metrics.undefined(table):
            log.warning(warning)
        tracker.log_metrics(parent, {f"{column}_{stat}": summary.loc[stat, column]
                                     for column in summary.columns for stat in summary.index})
        tracker.log_table(parent, table, "folds.csv")
        tracker.log_text(parent, OmegaConf.to_yaml(resolved), "config.yaml")
        final = _refit(estimator, dataset, tracker, parent) if refit else None
        figures.parent(tracker, parent, table, final)
        if reference is not None:
            figures.clusters(tracker, parent, reference)
    result = Result(table, summary, objective, experiment, parent, tracking.redact(tracker.uri))
    if tracking.global_rank() == 0:
        report.print_result(result, dataset, cfg)
    return result


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and (population) standard deviation of every score across folds, NaN ignored."""
    values = table.to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a metric undefined in every fold
        return pd.DataFrame([np.nanmean(values, axis=0), np.nanstd(values, axis=0)],
                            index=["mean", "std"], columns=table.columns)


def _set_task(cfg: DictConfig, task: str) -> None:
    """Record the job's task in the config: task-dependent choices (`${by_task:…}`) and the
    logged params follow it."""
    with open_dict(cfg):
        cfg.data.task = task


def _reference_clusters(template: Pipeline, dataset: data.Dataset) -> Pipeline | None:
    """For clustering, the model fitted on all rows: each resample's clusters are compared
    with its clusters, and the job's pictures show them."""
    if dataset.task != "clustering":
        return None
    return clone(template).fit(dataset.X)


def _fold(i: int, fold: cv.Fold, template: Pipeline, dataset: data.Dataset, names: list[str],
          cfg: DictConfig, tracker: tracking.Tracker, parent: str,
          reference: Pipeline | None = None,
          figures: plots.Figures | None = None) -> dict[str, float]:
    """Fit a fresh clone on the fold's training part and score every part; one child run."""
    sizes = {"fold": i, "train_size": len(fold.train), "test_size": len(fold.test)}
    if fold.val is not None:
        sizes["val_size"] = len(fold.val)
    with tracker.run(f"fold-{i}", parent=parent, params=sizes) as child:
        X, y = dataset.X, dataset.y
        estimator = clone(template)
        clustering = dataset.task == "clustering"
        started = time.perf_counter()
        # A clustering model never sees the labels: they only score its clusters.
        estimator.fit(X.iloc[fold.train], None if clustering else y.iloc[fold.train])
        row = {"fit_time": time.perf_counter() - started}
        reduction, spectrum = preprocessing.reduction_scores(estimator[0], X.iloc[fold.test])
        row.update(reduction)
        if clustering:
            labels = None if y is None else y.iloc[fold.test]
            clusters = metrics.Assignments(estimator, X.iloc[fold.test], labels,
                                           reference[-1].labels_[fold.test])
            row.update({f"test_{k}": v for k, v in metrics.score_clusters(clusters, names).items()})
            tracker.log_metrics(child, row, spectrum)
            log.info("fold %d: %s", i, report.brief(row, cfg.objective))
            return row
        parts = {"train": fold.train, "val": fold.val, "test": fold.test}
        predicted = {
            part: metrics.Predictions(estimator, X.iloc[rows], y.iloc[rows], task=dataset.task,
                                      classes=dataset.classes, probabilities="roc_auc" in names)
            for part, rows in parts.items() if rows is not None
        }
        for part, predictions in predicted.items():
            scores = metrics.score(predictions, names, average=cfg.metrics.average)
            row.update({f"{part}_{name}": value for name, value in scores.items()})
        tracker.log_metrics(child, row, {**getattr(estimator[-1], "history_", {}), **spectrum})
        if dataset.task == "classification":
            tracker.log_table(child, metrics.confusion(predicted["test"]), "confusion_matrix.csv")
        if figures:
            figures.fold(tracker, child, estimator, predicted["test"], X.iloc[fold.test],
                         y.iloc[fold.test])
    log.info("fold %d: %s", i, report.brief(row, cfg.objective))
    return row


def _refit_wanted(setting: bool | str, dataset: data.Dataset) -> bool:
    """`refit`: true, false, or auto (a single job refits, a sweep's jobs do not)."""
    if setting not in (True, False, "auto"):
        raise PipelineError(f"refit={setting} is not one of true, false, auto")
    if dataset.task not in ("classification", "regression"):
        return False
    if setting == "auto":
        from hydra.core.hydra_config import HydraConfig

        hydra = HydraConfig.get() if HydraConfig.initialized() else None
        return hydra is None or hydra.mode is None or hydra.mode.name != "MULTIRUN"
    return setting


def _refit(template: Pipeline, dataset: data.Dataset, tracker: tracking.Tracker,
           parent: str) -> Pipeline:
    """The whole pipeline fit on all the data, logged as the parent run's model."""
    started = time.perf_counter()
    final = clone(template).fit(dataset.X, dataset.y)
    fitted = time.perf_counter() - started
    logged = tracker.log_model(parent, final, dataset.X)
    log.info("refit on all %d rows in %.2fs, logged as the run's model in %.2fs",
             len(dataset.X), fitted, logged)
    return final


def _resumed(run: object, objective: str, tracker: tracking.Tracker,
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


def _tags(cfg: DictConfig, dataset: data.Dataset) -> dict[str, str]:
    tags = {"model": cfg.model.name, "data": dataset.name, "cv": cfg.cv.name,
            "task": dataset.task, "objective": f"test_{cfg.objective}"}
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        hydra = HydraConfig.get()
        if hydra.mode is not None and hydra.mode.name == "MULTIRUN":
            tags.update({"sweep": hydra.sweep.dir, "job": str(hydra.job.num)})
    return tags
