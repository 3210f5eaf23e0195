"""Fold-parallel training of the torch models: the k folds of a job fitted as one batched network
on one device, each fold exactly as its own ``fit`` would train it (``cv.batch_folds``).

Importing this module does not import torch or Lightning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import clone

from pipeline.errors import PipelineError
from pipeline.models.batch_errors import Diverged, NotBatchable
from pipeline.models.estimator import TorchEstimator
from pipeline.tasks import Task

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from pipeline.data import Dataset
    from pipeline.tasks import Fold

log = logging.getLogger("pipeline")

SETTINGS = ("auto", True, False)
# Batched, every fold's training data is held at once, about three times over (the float32 copy
# each fold's fit makes, the stacked copy and each epoch's shuffled copy); above this the folds
# run one after another, each holding only its own.
MAX_STACKED_BYTES = 1 << 30


def unsupported(estimator: Any, n_folds: int = 2, n_features: int = 1) -> str | None:
    """None when the folds of ``estimator`` (a model, or a Pipeline ending in one) can be trained
    as one batched model, else the reason in a few words. What it reads: the model's class and
    arguments, the network it builds (for ``n_features`` inputs), its head and its Lightning
    Trainer. Imports torch and Lightning for a torch model."""
    model = estimator[-1] if hasattr(estimator, "steps") else estimator
    if not isinstance(model, TorchEstimator):
        return f"{type(model).__name__} is not a torch model"
    if n_folds < 2:
        return "there is a single fold"
    if type(model).fit is not TorchEstimator.fit:
        return f"{type(model).__name__} has a fit of its own"
    spec = model.training_spec(seed=0)
    from pipeline.models import batched_fit

    if spec.optimizer == "lbfgs":  # each fold its own network and L-BFGS, in one Lightning fit
        return batched_fit.trainer_unsupported(spec)
    if type(spec.head) not in batched_fit.HEADS:
        return f"its head {type(spec.head).__name__} has no batched loss"
    reason = batched_fit.trainer_unsupported(spec)
    if reason:
        return reason
    import torch

    with torch.random.fork_rng(devices=[]):
        network = model.build_network(max(n_features, 1), 2)
    from pipeline.models.stacked_network import network_unsupported

    return network_unsupported(network)


def fit(estimators: Sequence[TorchEstimator], Xs: Sequence[Any],
        ys: Sequence[Any]) -> list[TorchEstimator]:
    """Fits ``estimators[f]`` on ``(Xs[f], ys[f])`` for every fold f, all at once as one batched
    model; each ends with the fitted attributes its own ``fit`` gives it, and with the same
    weights, history and scores up to floating-point noise. Raises :class:`NotBatchable` (before
    any training) where the folds cannot be batched."""
    first = estimators[0]
    reason = unsupported(first, len(estimators))
    if reason:
        raise NotBatchable(reason)
    params = first.get_params(deep=False)
    for estimator in estimators[1:]:
        if type(estimator) is not type(first) or estimator.get_params(deep=False) != params:
            raise NotBatchable("the folds' estimators differ")
    prepared = [estimator.prepare_fit(X, y) for estimator, X, y in zip(estimators, Xs, ys,
                                                                         strict=True)]
    if len({p.n_features for p in prepared}) > 1:
        counts = ", ".join(str(p.n_features) for p in prepared)
        raise NotBatchable(f"the folds' preprocessed data have different widths ({counts})")
    if len({p.n_outputs for p in prepared}) > 1:
        raise NotBatchable("a fold's training part lacks a class that others have")
    if len({p.val_data is None for p in prepared}) > 1:
        raise NotBatchable("only some folds are large enough for a validation part")
    reason = _too_large(sum(len(p.data[0]) for p in prepared), prepared[0].n_features)
    if reason:
        raise NotBatchable(reason)
    from pipeline.models import batched_fit

    lbfgs = prepared[0].spec.optimizer == "lbfgs"
    train = batched_fit.train_lbfgs if lbfgs else batched_fit.train
    for estimator, p, fitted in zip(estimators, prepared, train(prepared), strict=True):
        estimator.finish_fit(p.spec.head, *fitted)
    return list(estimators)


def decide(setting: Any, template: Pipeline, folds: Sequence[Fold], dataset: Dataset,
           task: Task) -> bool:
    """``cv.batch_folds`` for a planned job: whether its folds are fitted batched. ``auto``: where
    it applies (else, for a torch model, the reason is logged at INFO); ``true``: refuses, in one
    line, a job it does not apply to; ``false``: never."""
    if setting not in SETTINGS or not isinstance(setting, bool | str):
        raise PipelineError(f"cv.batch_folds={setting} is not one of auto, true, false")
    if setting is False:
        return False
    reason = _unsupported_job(template, folds, dataset, task)
    if reason is None:
        return True
    if setting is True or isinstance(template[-1], TorchEstimator):
        _not_batched(reason, strict=setting is True)
    return False


def fit_folds(template: Pipeline, dataset: Dataset, task: Task, folds: Sequence[Fold],
              strict: bool = False) -> list[tuple[Pipeline, float]] | None:
    """A clone of ``template`` fitted per fold, as ``task.fit`` fits it (the preprocessing on the
    fold's training part), the models all at once, and the seconds each fold's fit is charged:
    the whole batched fit's time divided by the number of folds. None where the fitted
    preprocessing makes the folds unbatchable (the reason logged at INFO; with ``strict``,
    ``cv.batch_folds=true``, a PipelineError instead) and where a fold diverges (the folds then
    run one after another, so that the runs record it as they would have)."""
    started = time.perf_counter()
    pipelines, Xs, ys = [], [], []
    for fold in folds:
        pipeline = clone(template)
        X, y = dataset.X.iloc[fold.train], dataset.y.iloc[fold.train]
        Xs.append(pipeline[:-1].fit_transform(X, y) if len(pipeline) > 1 else X)
        ys.append(y)
        pipelines.append(pipeline)
    try:
        fit([pipeline[-1] for pipeline in pipelines], Xs, ys)
    except Diverged:
        # Fitted one after another, the folds before it keep their runs and the fold that
        # diverges fails its own, as without batching.
        log.info("a fold diverged in the batched fit: the folds run one after another, to "
                 "record each as it ends")
        return None
    except NotBatchable as error:
        _not_batched(error.reason, strict)
        return None
    seconds = time.perf_counter() - started
    log.info("the %d folds trained as one batched model in %.2fs", len(folds), seconds)
    return [(pipeline, seconds / len(folds)) for pipeline in pipelines]


def _unsupported_job(template: Pipeline, folds: Sequence[Fold], dataset: Dataset,
                     task: Task) -> str | None:
    """`unsupported`, and what the planned folds tell before anything is fitted."""
    reason = unsupported(template, len(folds), dataset.X.shape[1])
    if reason or not task.supervised or type(task).fit is not Task.fit:
        return reason or f"the {task} task fits its folds its own way"
    model = template[-1]
    y = np.asarray(dataset.y)
    outputs = [model.make_head().encode(y[fold.train])[1] for fold in folds]
    if len(set(outputs)) > 1:
        fold = next(i for i, n in enumerate(outputs, 1) if n < max(outputs))
        return f"the training part of fold {fold} lacks a class"
    return _too_large(sum(len(fold.train) for fold in folds), dataset.X.shape[1])


def _too_large(rows: int, n_features: int) -> str | None:
    """Why the folds' training data (`rows` in all) cannot be held at once, or None."""
    stacked = rows * n_features * 4 * 3  # float32, three times over (see MAX_STACKED_BYTES)
    if stacked <= MAX_STACKED_BYTES:
        return None
    return (f"the folds' training data held at once would take ~{stacked / 2**30:.1f} GiB "
            f"(over {MAX_STACKED_BYTES / 2**30:g} GiB)")


def _not_batched(reason: str, strict: bool) -> None:
    """The folds cannot be batched for `reason`: with `strict` (cv.batch_folds=true) the job is
    refused in one line, else (auto) they run one after another, said at INFO."""
    if strict:
        raise PipelineError(f"cv.batch_folds=true, but the folds cannot be trained as one "
                            f"batched model: {reason}; set cv.batch_folds=auto or false") from None
    log.info("folds trained one after another (cv.batch_folds=auto): %s", reason)
