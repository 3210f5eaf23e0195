"""What one torch fit is handed besides its data: the validated training settings
(:class:`TrainSpec`), a prepared fit (:class:`Prepared`) and what the user's Trainer settings mean.

Torch-free at import: the estimators build these before torch is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.models.heads import Head

if TYPE_CHECKING:
    import torch
    from torch import nn

# Trainer arguments that count steps or hook into one: with any of them set, each Lightning
# step is one mini-batch (else, on one device, one step runs a whole epoch), so that they count
# and see optimizer steps.
STEP_ARGUMENTS = ("max_steps", "min_steps", "limit_train_batches", "log_every_n_steps",
                  "max_time", "callbacks")
# Trainer arguments that cannot mean here what they mean to Lightning, and why.
REFUSED_ARGUMENTS = {
    "accumulate_grad_batches": "they take an optimizer step per mini-batch; use a larger "
                               "model.batch_size",
    "gradient_clip_val": "they optimise manually, and Lightning clips gradients only for "
                         "automatic optimisation",
    "val_check_interval": "they validate once per epoch, on model.validation_fraction of the "
                          "fold's training part",
}
# Lightning's own values of the refused arguments: a user may still spell them out.
LIGHTNING_DEFAULTS = {"accumulate_grad_batches": 1, "gradient_clip_val": 0}


@dataclass
class TrainSpec:
    """Everything the training loop needs besides the data and the network; validated by the
    estimator."""

    head: Head
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int | None
    max_epochs: int
    early_stopping: bool
    patience: int
    tol: float
    seed: int
    trainer_kwargs: dict[str, Any]


@dataclass
class Prepared:
    """One fit's inputs, as the estimator prepares them: its spec, the network's builder (to be
    called under the spec's seed), the training and the validation tensors (on the CPU)."""

    spec: TrainSpec
    build: Callable[[], nn.Module]
    data: tuple[torch.Tensor, torch.Tensor]
    val_data: tuple[torch.Tensor, torch.Tensor] | None
    n_features: int
    n_outputs: int


def user_arguments(spec: TrainSpec) -> dict[str, Any]:
    """The ``trainer`` settings meant for Lightning (not Hydra's ``_target_``-style keys)."""
    return {key: value for key, value in spec.trainer_kwargs.items()
            if not str(key).startswith("_")}


def counts_steps(spec: TrainSpec) -> bool:
    """Whether a user's Trainer argument counts Lightning's steps or hooks into them."""
    user = user_arguments(spec)
    limit = user.get("limit_train_batches")
    return (
        user.get("max_steps") not in (None, -1)
        or user.get("min_steps") is not None
        or not (limit is None or (isinstance(limit, float) and limit == 1.0))
        or any(user.get(key) is not None for key in ("log_every_n_steps", "max_time"))
        or bool(user.get("callbacks"))
    )
