"""The torch side of fold-parallel training: whether a spec's Trainer and a network allow it,
and the batched fits themselves (:func:`train`, :func:`train_lbfgs`).

Imported only when folds are fitted batched (see :mod:`pipeline.models.batched`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch import nn

from pipeline import threads
from pipeline.models.batch_errors import NotBatchable
from pipeline.models.folds_module import FoldsModule, LbfgsFoldsModule
from pipeline.models.heads import BinaryHead, MulticlassHead, RegressionHead
from pipeline.models.lightning_module import NetworkModule, StepIndices
from pipeline.models.quiet import quiet_lightning
from pipeline.models.spec import STEP_ARGUMENTS, Prepared, TrainSpec, counts_steps, user_arguments
from pipeline.models.stacked_network import network_unsupported
from pipeline.models.tensors import step_work
from pipeline.models.trainer import fit_passing_interrupts, make_trainer

# The heads whose losses `per_row_loss` computes for all folds at once.
HEADS = (BinaryHead, MulticlassHead, RegressionHead)


def trainer_unsupported(spec: TrainSpec) -> str | None:
    """None when ``spec``'s Trainer runs one device at 32-bit precision with nothing that counts
    or hooks into steps (the settings under which a Lightning step may run a whole epoch by
    direct torch calls), else the setting that stands in the way."""
    user = user_arguments(spec)
    for key in STEP_ARGUMENTS:
        if key in user and counts_steps(replace(spec, trainer_kwargs={key: user[key]})):
            return f"trainer.{key} is set"
    trainer = make_trainer(replace(spec, early_stopping=False), "train_loss")
    if not isinstance(trainer.strategy, SingleDeviceStrategy):
        return (f"the trainer runs {type(trainer.strategy).__name__} on {trainer.num_devices} "
                "device(s), not one")
    if type(trainer.precision_plugin) is not Precision:
        return f"trainer.precision={trainer.precision} is not 32-true"
    if not isinstance(trainer.profiler, PassThroughProfiler):
        return "trainer.profiler is set"
    if trainer.loggers:
        return "trainer.logger is set"
    return None


def _seeded(prepared: Prepared, device: torch.device, build: Callable[[], Any]) -> Any:
    """`build()` under the fold's own seed, as its fit alone would draw its initial weights,
    leaving the global random state as it was."""
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(prepared.spec.seed)
        return build()


def train(
    prepared: Sequence[Prepared],
) -> list[tuple[nn.Module, dict[str, list[float]], int]]:
    """Builds every fold's network under its own seed and fits them all as one; returns, per
    fold, what :func:`pipeline.models.fitting.train` returns for it alone."""
    spec = prepared[0].spec
    # Early stopping is per fold, in the module: Lightning's callback would stop every fold.
    with quiet_lightning():
        trainer = make_trainer(replace(spec, early_stopping=False), "train_loss")
        device = trainer.strategy.root_device
        networks = [_seeded(p, device, p.build) for p in prepared]
        for network in networks:
            reason = network_unsupported(network)
            if reason:
                raise NotBatchable(reason)
        module = FoldsModule(networks, prepared)
        module.log_metrics = trainer.progress_bar_callback is not None
        with warnings.catch_warnings():
            # The gradients are strided views into one tensor, on purpose.
            warnings.filterwarnings("ignore", message=".*gradient layout contract.*")
            work = _folds_step_work(networks, prepared)
            with threads.limited(threads.for_torch(work), blas=False):
                fit_passing_interrupts(trainer, module, StepIndices(1))
    module.network.unstack_into(networks)
    return [(network.eval(), history, n_steps) for network, history, n_steps
            in zip(networks, module.histories, module.n_steps, strict=True)]


def train_lbfgs(
    prepared: Sequence[Prepared],
) -> list[tuple[nn.Module, dict[str, list[float]], int]]:
    """:func:`train` for ``optimizer="lbfgs"``: every fold's network built under its own seed
    and fitted by its own L-BFGS, in one Lightning fit (see :class:`LbfgsFoldsModule`)."""
    spec = prepared[0].spec
    # Each fold stops by itself, in the module: the fit is one Lightning epoch.
    trainer_spec = replace(spec, early_stopping=False, max_epochs=1)
    with quiet_lightning():
        trainer = make_trainer(trainer_spec, "train_loss")
        device = trainer.strategy.root_device
        folds = []
        for p in prepared:
            fold = _seeded(p, device, lambda p=p: NetworkModule(
                p.build(), p.spec, p.data, p.val_data))
            fold.log_metrics = False
            fold.plan(world_size=1, fused=True)
            folds.append(fold)
        module = LbfgsFoldsModule(folds)
        work = max(step_work(fold.network, fold.batch_size) for fold in folds)
        with threads.limited(threads.for_torch(work), blas=False):
            fit_passing_interrupts(trainer, module, StepIndices(1))
    results = []
    for fold in folds:
        fold.release_data()
        results.append((fold.network.cpu().eval(), fold.history, fold.n_steps))
    return results


def _folds_step_work(networks: Sequence[nn.Module], prepared: Sequence[Prepared]) -> int:
    """Multiply-adds of one batched step's matrix products, all folds together: what
    `threads.for_torch` picks the threads from (as for one fold's fit, times the folds)."""
    work = 0
    for network, fold in zip(networks, prepared, strict=True):
        rows = len(fold.data[0])
        work += step_work(network, min(fold.spec.batch_size or rows, rows))
    return work
