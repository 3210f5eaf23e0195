"""The Lightning Trainer of a torch fit: its arguments (lean defaults, then the user's), its
construction with Lightning's refusals as one-line mistakes, and the fit that lets Ctrl-C through.
"""

from __future__ import annotations

import inspect
import os
import signal
import sys
import threading
from collections.abc import Iterable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.strategies import ParallelStrategy, SingleDeviceStrategy
from lightning.pytorch.trainer.states import TrainerStatus

from pipeline import distributed
from pipeline.compat.lightning import scan_external_callbacks_once
from pipeline.errors import PipelineError
from pipeline.models.quiet import quiet_lightning
from pipeline.models.spec import LIGHTNING_DEFAULTS, REFUSED_ARGUMENTS, TrainSpec, user_arguments

scan_external_callbacks_once()

# What Lightning's Trainer raises for settings it refuses (an unknown accelerator, strategy or
# precision, devices=0, a limit out of range): the user's to change. Anything else it raises is
# a defect, and propagates as one.
TRAINER_REFUSALS = (MisconfigurationException, ValueError, TypeError)

def _progress_bar_wanted() -> bool:
    # Folds fit in worker processes (cv.n_jobs) would draw bars over each other: the job's
    # process draws one across folds instead.
    return (sys.stderr.isatty() and not os.environ.get("CI")
            and not os.environ.get("PIPELINE_FOLD_WORKER"))


def _check_accelerator(accelerator: Any) -> None:
    if (
        isinstance(accelerator, str)
        and accelerator.lower() in ("gpu", "cuda")
        and not torch.cuda.is_available()
    ):
        asked = (
            "trainer=gpu" if accelerator.lower() == "gpu" else f"trainer.accelerator={accelerator}"
        )
        raise PipelineError(
            f"{asked} was asked for but no CUDA GPU is available; "
            "use trainer=cpu or trainer=default"
        )


def trainer_arguments(spec: TrainSpec, monitor: str) -> dict[str, Any]:
    """Lean defaults, then the user's ``trainer`` settings, then the resolved ``max_epochs``.

    Refuses, in one line, a key that is no argument of Lightning's Trainer and one that cannot
    mean here what it means to Lightning (``REFUSED_ARGUMENTS``)."""
    user = user_arguments(spec)
    accepted = inspect.signature(pl.Trainer.__init__).parameters
    for key, value in user.items():
        if key not in accepted:
            raise PipelineError(f"trainer.{key} is not an argument of Lightning's Trainer")
        if key in REFUSED_ARGUMENTS and value not in (None, LIGHTNING_DEFAULTS.get(key)):
            raise PipelineError(
                f"trainer.{key}={value} is not supported by the torch models: "
                f"{REFUSED_ARGUMENTS[key]}; drop trainer.{key}"
            )
    kwargs: dict[str, Any] = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "enable_progress_bar": _progress_bar_wanted(),
        "log_every_n_steps": 1,
    }
    kwargs.update(user)
    kwargs["max_epochs"] = spec.max_epochs
    callbacks = list(kwargs.get("callbacks") or [])
    if spec.early_stopping:
        callbacks.append(
            EarlyStopping(
                monitor=monitor,
                patience=spec.patience,
                min_delta=spec.tol,
                mode="min",
                check_on_train_epoch_end=True,
                check_finite=False,
            )
        )
    kwargs["callbacks"] = callbacks
    return kwargs


def make_trainer(spec: TrainSpec, monitor: str) -> pl.Trainer:
    """The Lightning Trainer for ``spec``, Lightning's info banners quieted; a setting that
    Lightning refuses is a PipelineError of one line naming it."""
    _check_accelerator(spec.trainer_kwargs.get("accelerator", "auto"))
    kwargs = trainer_arguments(spec, monitor)
    try:
        with quiet_lightning():
            trainer = pl.Trainer(**kwargs)
    except TRAINER_REFUSALS as error:
        raise PipelineError(_refusal(kwargs, user_arguments(spec), error)) from error
    if isinstance(trainer.strategy, ParallelStrategy):
        distributed.check_processes(trainer.num_devices, trainer.num_nodes)
    if spec.optimizer == "lbfgs":
        _check_lbfgs_trainer(trainer)
    return trainer


def _check_lbfgs_trainer(trainer: pl.Trainer) -> None:
    """L-BFGS's line search compares losses: none that a gradient scaler may skip."""
    if getattr(trainer.precision_plugin, "scaler", None) is not None:
        raise PipelineError(
            f"model.optimizer=lbfgs cannot take the gradient scaling of "
            f"trainer.precision={trainer.precision}; use 32-true or bf16-mixed, or choose "
            "another model.optimizer")


def _refusal(kwargs: dict[str, Any], user: dict[str, Any], error: Exception) -> str:
    """Lightning's reason, led by the setting it refused: the first `trainer.*` setting that
    fails on its own, else all of them (a combination)."""
    reason = " ".join(str(error).split())[:300].rstrip(".") or type(error).__name__
    chosen = {key: kwargs[key] for key in user if key in kwargs}  # as the fit would pass them
    lean = {key: value for key, value in kwargs.items() if key not in chosen}
    for key, value in chosen.items():
        try:
            with quiet_lightning():
                pl.Trainer(**lean, **{key: value})
        except TRAINER_REFUSALS:
            return (f"trainer.{key}={value} is refused by Lightning's Trainer: {reason}; "
                    f"change or drop trainer.{key}")
    listed = " ".join(f"trainer.{key}={value}" for key, value in chosen.items())
    return (f"Lightning's Trainer refuses the settings {listed} together: {reason}; "
            "change one of them")


def fit_passing_interrupts(
    trainer: pl.Trainer, module: pl.LightningModule, steps: Iterable[int]
) -> None:
    """Runs ``trainer.fit``; Ctrl-C reaches the caller as KeyboardInterrupt, SIGINT restored.

    On KeyboardInterrupt Lightning ignores SIGINT and calls ``sys.exit(1)``; the caller (the
    runner) needs the interrupt itself to mark its runs KILLED and to stop a sweep.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.getsignal(signal.SIGINT) if in_main_thread else None
    try:
        trainer.fit(module, train_dataloaders=steps)
    except SystemExit as exit_:
        if (
            not isinstance(exit_.__context__, KeyboardInterrupt)
            or trainer.state.status != TrainerStatus.INTERRUPTED
        ):
            raise
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
        raise exit_.__context__ from None


def per_step_hooks_are_no_ops(trainer: pl.Trainer) -> bool:
    """True when Lightning's backward and optimizer-step wrappers would add nothing but time.

    That is: plain 32-bit precision, one device, no profiler, no logger; the arguments that
    read the step counter or hook into a step (``STEP_ARGUMENTS``) run per batch anyway.
    """
    return (
        type(trainer.precision_plugin) is Precision
        and isinstance(trainer.strategy, SingleDeviceStrategy)
        and isinstance(trainer.profiler, PassThroughProfiler)
        and not trainer.loggers
    )


