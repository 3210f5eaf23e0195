"""One network's fit: its Trainer and :class:`~pipeline.models.lightning_module.NetworkModule`
built, seeded and run on the threads the work calls for (:func:`train`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch import nn

from pipeline import threads
from pipeline.models.lightning_module import NetworkModule
from pipeline.models.quiet import quiet_lightning
from pipeline.models.spec import TrainSpec, counts_steps, user_arguments
from pipeline.models.tensors import step_work
from pipeline.models.trainer import fit_passing_interrupts, make_trainer, per_step_hooks_are_no_ops


def train(
    spec: TrainSpec,
    build_network: Callable[[], nn.Module],
    data: tuple[torch.Tensor, torch.Tensor],
    val_data: tuple[torch.Tensor, torch.Tensor] | None,
) -> tuple[nn.Module, dict[str, list[float]], int]:
    """Builds the network (seeded) and fits it with a Lightning Trainer; returns it (on the
    CPU), its per-epoch history and the number of optimizer steps taken."""
    monitor = "val_loss" if val_data is not None else "train_loss"
    # Fused, an L-BFGS fit is one Lightning epoch, which watches its own iterations for early
    # stopping (Lightning's per-epoch hooks cost more than an iteration on thousands of rows).
    lbfgs_fused = spec.optimizer == "lbfgs" and not counts_steps(spec)
    trainer_spec = replace(spec, max_epochs=1, early_stopping=False) if lbfgs_fused else spec
    with quiet_lightning():
        trainer = make_trainer(trainer_spec, monitor)
        if lbfgs_fused and not isinstance(trainer.strategy, SingleDeviceStrategy):
            # Distributed, each iteration is a Lightning epoch (see `NetworkModule.plan`).
            lbfgs_fused, trainer_spec = False, spec
            trainer = make_trainer(spec, monitor)
        device = trainer.strategy.root_device
        # Seeded without touching the caller's global RNG state (CPU and the GPU in use).
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(spec.seed)
            module = NetworkModule(build_network(), spec, data, val_data)
            # self.log costs ~1 ms an epoch: only for a callback or a progress bar to read.
            module.log_metrics = (bool(user_arguments(spec).get("callbacks"))
                                  or trainer_spec.early_stopping
                                  or trainer.progress_bar_callback is not None)
            fused = isinstance(trainer.strategy, SingleDeviceStrategy) and not counts_steps(spec)
            module.direct_steps = fused and per_step_hooks_are_no_ops(trainer)
            steps = module.plan(trainer.world_size, fused)
            work = step_work(module.network, module.batch_size)
            with threads.limited(threads.for_torch(work), blas=False):
                fit_passing_interrupts(trainer, module, steps)
    module.release_data()
    return module.network.cpu().eval(), module.history, module.n_steps
