"""The Lightning half of the torch estimators: the LightningModule, the Trainer and its checks.

Imported only inside ``fit`` and ``check_trainer`` so that importing :mod:`pipeline.models.neural`
stays torch-free.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import inspect
import logging
import math
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.strategies import ParallelStrategy, SingleDeviceStrategy
from lightning.pytorch.trainer.connectors import callback_connector as _callback_connector
from lightning.pytorch.trainer.states import TrainerStatus
from torch import nn

from pipeline import distributed, threads
from pipeline.errors import PipelineError
from pipeline.models.heads import Head


def _scan_external_callbacks_once() -> None:
    """Lightning reads every installed package's entry points at each Trainer's construction
    (``_load_external_callbacks``: ~10 ms, as long as a small fold's whole fit): the scan is
    done once a process here, and the factories it finds are still called for every Trainer."""
    load = getattr(_callback_connector, "_load_external_callbacks", None)
    if load is None or getattr(load, "scanned_once", False):
        return

    @functools.cache
    def registered(group: str) -> bool:
        return bool(importlib.metadata.entry_points(group=group))

    def external_callbacks(group: str) -> list[Any]:
        return load(group) if registered(group) else []

    external_callbacks.scanned_once = True
    _callback_connector._load_external_callbacks = external_callbacks


_scan_external_callbacks_once()

# The devices with fused optimizer kernels in torch 2.x (Adagrad's are CPU-only, RMSprop has none).
_FUSED_DEVICES = {
    "sgd": ("cpu", "cuda"),
    "adam": ("cpu", "cuda"),
    "adagrad": ("cpu",),
    "rmsprop": (),
}

# Lightning messages that say nothing a user of these estimators can act on.
_NOISE_WARNINGS = (
    r".*does not have many workers.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
    r".*GPU available but not used.*",
    r".*`training_step` returned `None`.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


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
_LIGHTNING_DEFAULTS = {"accumulate_grad_batches": 1, "gradient_clip_val": 0}


# L-BFGS: the corrections it keeps (torch's and scipy's default, 10), and the most loss
# evaluations one iteration's line search may take (torch's default is 1.25 per iteration).
LBFGS_HISTORY = 10
LBFGS_MAX_EVALS = 25
# Converged too when an iteration lowers the loss by no more than this many machine epsilons
# (relative), as scikit-learn asks of scipy's L-BFGS (ftol = 64 eps).
LBFGS_FTOL = 64


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


class _StepIndices:
    """What Lightning iterates over: one index per step; the module slices the real batches."""

    def __init__(self, n_steps: int) -> None:
        self.n_steps = n_steps

    def __len__(self) -> int:
        return self.n_steps

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n_steps))


class NetworkModule(pl.LightningModule):
    """Trains ``network`` by mini-batch gradient descent on tensors held on the device.

    Batches are slices of a per-epoch permutation (no DataLoader, no per-sample work). On a
    single device one Lightning step runs a whole epoch of optimizer steps, because Lightning's
    per-step hooks cost more than a small network's forward and backward pass; under a
    distributed strategy each Lightning step is one mini-batch of this rank's shard, so that
    every backward pass follows its own DDP forward.
    """

    def __init__(
        self,
        network: nn.Module,
        spec: TrainSpec,
        data: tuple[torch.Tensor, torch.Tensor],
        val_data: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> None:
        super().__init__()
        self.network = network
        self.spec = spec
        self.automatic_optimization = False
        self.history: dict[str, list[float]] = {"train_loss": []}
        if val_data is not None:
            self.history["val_loss"] = []
            self.history[f"val_{spec.head.score_name}"] = []
        self.n_steps = 0
        self._data = data
        self._val_data = val_data
        self.batches_per_step = 1
        self.batch_size = 1
        self.n_local = 0
        self.log_metrics = True
        self.direct_steps = False
        self.lbfgs_inner = False
        self.lbfgs_iterations = 1

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickled in a process that ddp_spawn started for this fit: quiet Lightning there
        # before it announces the process group, as the parent process is.
        _quiet_worker()
        super().__setstate__(state)

    def plan(self, world_size: int, fused: bool) -> _StepIndices:
        """Sizes this rank's shard and batches; returns the step indices Lightning will iterate."""
        n = len(self._data[0])
        self.n_local = n // world_size if world_size > 1 else n
        self.batch_size = min(self.spec.batch_size or self.n_local, self.n_local)
        n_batches = math.ceil(self.n_local / self.batch_size)
        self.batches_per_step = n_batches if fused else 1
        # Fused, L-BFGS runs all its iterations in one Lightning step (the fit is one Lightning
        # epoch of `max_epochs` "epochs": iterations, each a pass over the data); else one
        # iteration a Lightning epoch, so that what counts steps or epochs sees each one.
        self.lbfgs_inner = fused
        self.lbfgs_iterations = self.spec.max_epochs if fused else 1
        return _StepIndices(1 if fused else n_batches)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        spec = self.spec
        if spec.optimizer == "lbfgs":
            # Convergence is judged here (`_lbfgs_iteration`), on the gradient as scikit-learn's
            # L-BFGS judges it; torch's own test of a change in the loss (1e-9) never passes
            # in float32 before the gradient's does.
            return torch.optim.LBFGS(self.network.parameters(), lr=spec.lr, max_iter=1,
                                     max_eval=LBFGS_MAX_EVALS, tolerance_grad=spec.tol,
                                     tolerance_change=0.0, history_size=LBFGS_HISTORY,
                                     line_search_fn="strong_wolfe")
        optimizer_class, options = {
            "sgd": (torch.optim.SGD, {"momentum": spec.momentum}),
            "adam": (torch.optim.Adam, {}),
            "rmsprop": (torch.optim.RMSprop, {"momentum": spec.momentum}),
            "adagrad": (torch.optim.Adagrad, {}),
        }[spec.optimizer]
        options.update(lr=spec.lr, weight_decay=spec.weight_decay)
        # Where torch has fused kernels, a small network's step takes ~3/4 of the time.
        if self.device.type in _FUSED_DEVICES[spec.optimizer]:
            options["fused"] = True
        return optimizer_class(self.network.parameters(), **options)

    def on_fit_start(self) -> None:
        dtype = next(self.network.parameters()).dtype
        self._data = tuple(self._to_device(t, dtype) for t in self._data)
        if self._val_data is not None:
            self._val_data = tuple(self._to_device(t, dtype) for t in self._val_data)
        # Seeded per fit, the same on every rank: the shards partition each epoch's permutation.
        self._generator = torch.Generator().manual_seed(self.spec.seed)

    def _to_device(self, tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return tensor.to(self.device, dtype=dtype if tensor.is_floating_point() else None)

    def on_train_epoch_start(self) -> None:
        X, y = self._data
        if self.spec.optimizer == "lbfgs":  # full batch: the rows' order changes nothing
            trainer = self._trainer
            rank = trainer.global_rank if trainer is not None and trainer.world_size > 1 else 0
            shard = slice(rank * self.n_local, (rank + 1) * self.n_local)
            self._epoch_X, self._epoch_y = X[shard], y[shard]
            return
        order = torch.randperm(len(X), generator=self._generator)
        rank = self.trainer.global_rank if self.trainer.world_size > 1 else 0
        order = order[rank * self.n_local : (rank + 1) * self.n_local].to(self.device)
        self._epoch_X, self._epoch_y = take_rows(X, order), take_rows(y, order)
        self._loss_sum = torch.zeros((), device=self.device)
        self._seen = 0

    def training_step(self, step: int, batch_idx: int) -> None:
        if self.spec.optimizer == "lbfgs":
            if self.lbfgs_steps(self.optimizers().optimizer):
                self.trainer.should_stop = True
            if self.lbfgs_inner and self.log_metrics and self.history["train_loss"]:
                self.log("train_loss", self.history["train_loss"][-1], prog_bar=True)
            return
        optimizer = self.optimizers()
        backward = self.manual_backward
        if self.direct_steps:
            # Lightning's per-step hooks would all be no-ops here, yet cost about a quarter of a
            # small network's step: call torch directly.
            optimizer, backward = optimizer.optimizer, torch.Tensor.backward
        network, size, loss_function = self.network, self.batch_size, self.spec.head.loss
        epoch_X, epoch_y, loss_sum = self._epoch_X, self._epoch_y, self._loss_sum
        first = step * self.batches_per_step
        for index in range(first, first + self.batches_per_step):
            X = epoch_X[index * size : (index + 1) * size]
            y = epoch_y[index * size : (index + 1) * size]
            optimizer.zero_grad()
            loss = loss_function(network(X), y)
            backward(loss)
            optimizer.step()
            # Stays on the device (in place, no host sync per step); read once per epoch.
            loss_sum.add_(loss.detach().float(), alpha=len(X))
            self._seen += len(X)
        self.n_steps += self.batches_per_step

    def on_train_epoch_end(self) -> None:
        if self.spec.optimizer == "lbfgs" and self.lbfgs_inner:
            return  # `lbfgs_steps` recorded every iteration
        loss_sum = self._loss_sum
        if self.trainer.world_size > 1:
            loss_sum = self.trainer.strategy.reduce(loss_sum, reduce_op="mean")
        # The mean over the rows this epoch trained on: all of them unless a step limit cut it.
        epoch_values = self._record_epoch(loss_sum / max(self._seen, 1))
        if self.log_metrics:
            self.log("train_loss", epoch_values[0], prog_bar=True)
            if self._val_data is not None:
                self.log("val_loss", epoch_values[1], prog_bar=True)

    def _record_epoch(self, train_loss: torch.Tensor) -> list[float]:
        """Appends an epoch's train loss, and the validation part's loss and score, to the
        history; returns them. A loss that is not finite stops the fit with a PipelineError."""
        values = [train_loss]
        if self._val_data is not None:
            X_val, y_val = self._val_data
            head = self.spec.head
            self.network.eval()
            with torch.no_grad():
                output = self.network(X_val)
                values += [head.loss(output, y_val).float(), head.score(output, y_val).float()]
            self.network.train()
        epoch_values = torch.stack(values).tolist()  # the epoch's one host sync
        for key, value in zip(self.history, epoch_values, strict=True):
            self.history[key].append(value)

        if not math.isfinite(epoch_values[0]):
            spec = self.spec
            epoch = len(self.history["train_loss"])
            raise PipelineError(
                f"training diverged at epoch {epoch} (loss={epoch_values[0]}) with "
                f"model.optimizer={spec.optimizer} model.lr={spec.lr:g}: lower model.lr "
                f"(e.g. model.lr={spec.lr / 10:g}) or standardise the features "
                "(preprocess.scale=standard)"
            )
        return epoch_values

    def _loss_stalled(self, loss: torch.Tensor) -> bool:
        """Whether the last iteration lowered the loss (now ``loss``) by no more than its dtype
        can tell: a relative change within ``LBFGS_FTOL`` machine epsilons, scikit-learn's
        (scipy's) other test of convergence. In float32 an ill-conditioned least-squares
        problem may never get every gradient entry within ``tol``."""
        if not self.history["train_loss"]:
            return False
        previous, current = self.history["train_loss"][-1], float(loss)
        ftol = LBFGS_FTOL * torch.finfo(loss.dtype).eps
        return previous - current <= ftol * max(abs(previous), abs(current), 1.0)

    def lbfgs_steps(self, optimizer: torch.optim.LBFGS) -> bool:
        """``lbfgs_iterations`` iterations of ``optimizer`` (torch's LBFGS, called directly) on
        the whole training part, each an epoch of the history; stops early once converged
        (every gradient entry within ``tol``: then returns True) and, when they run in this one
        step, once early stopping would (see :class:`Plateau`)."""
        network, loss_function = self.network, self.spec.head.loss
        X, y, decay = self._epoch_X, self._epoch_y, self.spec.weight_decay
        parameters = list(network.parameters())
        losses: list[torch.Tensor] = []
        trainer = self._trainer
        strategy = trainer.strategy if trainer is not None and trainer.world_size > 1 else None

        # The point each iteration starts from is where the last line search ended, already
        # evaluated: that evaluation (loss, data loss, gradients) is reused, not repeated.
        last: list[Any] = []

        def closure() -> torch.Tensor:
            if last and all(torch.equal(p, q) for p, q in zip(parameters, last[0], strict=True)):
                for p, grad in zip(parameters, last[3], strict=True):
                    p.grad = grad.clone()
                losses.append(last[2])
                return last[1]
            loss = evaluate()
            last[:] = [[p.detach().clone() for p in parameters], loss, losses[-1],
                       [p.grad.clone() for p in parameters]]
            return loss

        def evaluate() -> torch.Tensor:
            optimizer.zero_grad()
            loss = loss_function(network(X), y)
            losses.append(loss.detach())
            if decay:
                loss = loss + decay / 2 * sum(p.square().sum() for p in parameters)
            if strategy is None:
                loss.backward()
                return loss
            # Every rank sees the mean loss and (through DDP) the mean gradient of the equal
            # shards, so that their line searches take the same steps, in step.
            self.manual_backward(loss)
            losses[-1] = strategy.reduce(losses[-1], reduce_op="mean")
            return strategy.reduce(loss.detach(), reduce_op="mean")

        inner = self.lbfgs_inner
        stopper = Plateau(self.spec.patience, self.spec.tol) if inner else None
        state = optimizer.state[parameters[0]]
        converged = False
        for _ in range(self.lbfgs_iterations):
            losses.clear()
            done = state.get("n_iter", 0)
            optimizer.step(closure)
            # Converged where it stood (no gradient entry above tol), it takes no step: that
            # epoch is recorded, and the last.
            stepped = state["n_iter"] > done
            self.n_steps += stepped
            converged = not stepped or self._loss_stalled(losses[0])
            # The loss at the iteration's start, as an epoch of mini-batches records the loss
            # of each batch before its step.
            if not inner:  # recorded by on_train_epoch_end
                self._loss_sum, self._seen = losses[0].float(), 1
                break
            values = self._record_epoch(losses[0].float())
            monitored = values[1 if self._val_data is not None else 0]
            if converged or (self.spec.early_stopping and stopper.should_stop(monitored)):
                break
        return converged

    # The history travels in the state dict, so ddp_spawn brings it back to the main process.
    def teardown(self, stage: str) -> None:
        # A process that ddp_spawn started for this fit closes its process group before it
        # exits: gloo's threads still running at exit can abort it ("terminate called without
        # an active exception"). Under torchrun the group outlives the fit, for the next fold.
        import multiprocessing

        distributed = torch.distributed
        if (multiprocessing.parent_process() is not None and distributed.is_available()
                and distributed.is_initialized()):
            distributed.barrier()
            distributed.destroy_process_group()

    def get_extra_state(self) -> dict[str, Any]:
        return {"history": self.history, "n_steps": self.n_steps}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.history, self.n_steps = state["history"], state["n_steps"]


class Plateau:
    """Lightning's EarlyStopping (mode min, ``min_delta=tol``) where Lightning's callback cannot
    see the epochs (a fused L-BFGS fit, a fold of a batched fit), on the same float32 values."""

    def __init__(self, patience: int, tol: float) -> None:
        self.patience, self.tol = patience, tol
        self.best = torch.tensor(torch.inf)
        self.wait = 0

    def should_stop(self, value: float) -> bool:
        current = torch.tensor(value, dtype=torch.float32)
        if torch.lt(current + self.tol, self.best):
            self.best, self.wait = current, 0
            return False
        self.wait += 1
        return self.wait >= self.patience


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
    user = _user_arguments(spec)
    accepted = inspect.signature(pl.Trainer.__init__).parameters
    for key, value in user.items():
        if key not in accepted:
            raise PipelineError(f"trainer.{key} is not an argument of Lightning's Trainer")
        if key in REFUSED_ARGUMENTS and value not in (None, _LIGHTNING_DEFAULTS.get(key)):
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


def _user_arguments(spec: TrainSpec) -> dict[str, Any]:
    """The ``trainer`` settings meant for Lightning (not Hydra's ``_target_``-style keys)."""
    return {key: value for key, value in spec.trainer_kwargs.items()
            if not str(key).startswith("_")}


def _counts_steps(spec: TrainSpec) -> bool:
    """Whether a user's Trainer argument counts Lightning's steps or hooks into them."""
    user = _user_arguments(spec)
    limit = user.get("limit_train_batches")
    return (
        user.get("max_steps") not in (None, -1)
        or user.get("min_steps") is not None
        or not (limit is None or (isinstance(limit, float) and limit == 1.0))
        or any(user.get(key) is not None for key in ("log_every_n_steps", "max_time"))
        or bool(user.get("callbacks"))
    )


def make_trainer(spec: TrainSpec, monitor: str) -> pl.Trainer:
    """The Lightning Trainer for ``spec``, Lightning's info banners quieted; a setting that
    Lightning refuses is a PipelineError of one line naming it."""
    _check_accelerator(spec.trainer_kwargs.get("accelerator", "auto"))
    kwargs = trainer_arguments(spec, monitor)
    try:
        with _quiet_lightning():
            trainer = pl.Trainer(**kwargs)
    except Exception as error:  # noqa: BLE001 - Lightning's refusals have no common type
        raise PipelineError(_refusal(kwargs, _user_arguments(spec), error)) from error
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
            with _quiet_lightning():
                pl.Trainer(**lean, **{key: value})
        except Exception:  # noqa: BLE001
            return (f"trainer.{key}={value} is refused by Lightning's Trainer: {reason}; "
                    f"change or drop trainer.{key}")
    listed = " ".join(f"trainer.{key}={value}" for key, value in chosen.items())
    return (f"Lightning's Trainer refuses the settings {listed} together: {reason}; "
            "change one of them")


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Hides Lightning's info banners and known noise warnings; other warnings still show.
    Nested, only the outermost sets and restores the loggers' levels (each change walks every
    logger of the process: ~1 ms a fit)."""
    if getattr(_quieted, "depth", 0):
        yield
        return
    _quieted.depth = 1
    try:
        with _quiet_lightning_now():
            yield
    finally:
        _quieted.depth = 0


_quieted = threading.local()


@contextlib.contextmanager
def _quiet_lightning_now() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _NOISE_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _quiet_worker() -> None:
    """For the whole life of a worker process: what `_quiet_lightning` does around a fit."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in _NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


def _fit_passing_interrupts(
    trainer: pl.Trainer, module: NetworkModule, steps: _StepIndices
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


def _per_step_hooks_are_no_ops(trainer: pl.Trainer) -> bool:
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
    lbfgs_fused = spec.optimizer == "lbfgs" and not _counts_steps(spec)
    trainer_spec = replace(spec, max_epochs=1, early_stopping=False) if lbfgs_fused else spec
    with _quiet_lightning():
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
            module.log_metrics = (bool(_user_arguments(spec).get("callbacks"))
                                  or trainer_spec.early_stopping
                                  or trainer.progress_bar_callback is not None)
            fused = isinstance(trainer.strategy, SingleDeviceStrategy) and not _counts_steps(spec)
            module.direct_steps = fused and _per_step_hooks_are_no_ops(trainer)
            steps = module.plan(trainer.world_size, fused)
            work = step_work(module.network, module.batch_size)
            with threads.limited(threads.for_torch(work), blas=False):
                _fit_passing_interrupts(trainer, module, steps)
    # The trainer and the module refer to each other, so they wait for the garbage collector,
    # maybe folds later: the training tensors (a fold's rows, twice) are let go of now.
    module._data = module._val_data = module._epoch_X = module._epoch_y = None
    return module.network.cpu().eval(), module.history, module.n_steps


def take_rows(tensor: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """`tensor.index_select(0, rows)`: whole rows copied in `rows`' order. On the CPU by numpy's
    `take`, 2.5x faster than index_select (itself 2x faster than `tensor[rows]`) on 720,000
    rows x 50 float32 (an epoch's shuffle of a 1M-row job's fold: 0.08 s against 0.2 s)."""
    if (tensor.device.type == "cpu" and rows.device.type == "cpu"
            and tensor.dtype in _NUMPY_DTYPES and not tensor.requires_grad):
        return torch.from_numpy(np.take(tensor.numpy(), rows.numpy(), axis=0))
    return tensor.index_select(0, rows)


_NUMPY_DTYPES = (torch.float32, torch.float64, torch.float16, torch.int64, torch.int32)


def step_work(network: nn.Module, batch_size: int) -> int:
    """Multiply-adds of one optimizer step's matrix products: the batch's rows times the sum
    of in x out features over the layers (`threads.for_torch` picks the threads from it)."""
    return batch_size * sum(p.numel() for p in network.parameters() if p.dim() >= 2)
