"""The LightningModule that trains one torch estimator's network (:class:`NetworkModule`), and
the early-stopping rule it applies where Lightning's callback cannot see the epochs
(:class:`Plateau`)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from pipeline.errors import PipelineError
from pipeline.models.quiet import quiet_worker
from pipeline.models.spec import TrainSpec
from pipeline.models.tensors import take_rows

# The devices with fused optimizer kernels in torch 2.x (Adagrad's are CPU-only, RMSprop has none).
FUSED_DEVICES = {
    "sgd": ("cpu", "cuda"),
    "adam": ("cpu", "cuda"),
    "adagrad": ("cpu",),
    "rmsprop": (),
}

# L-BFGS: the corrections it keeps (torch's and scipy's default, 10), and the most loss
# evaluations one iteration's line search may take (torch's default is 1.25 per iteration).
LBFGS_HISTORY = 10
LBFGS_MAX_EVALS = 25
# Converged too when an iteration lowers the loss by no more than this many machine epsilons
# (relative), as scikit-learn asks of scipy's L-BFGS (ftol = 64 eps).
LBFGS_FTOL = 64



class StepIndices:
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
        self.train_data = data
        self.val_data = val_data
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
        quiet_worker()
        super().__setstate__(state)

    def plan(self, world_size: int, fused: bool) -> StepIndices:
        """Sizes this rank's shard and batches; returns the step indices Lightning will iterate."""
        n = len(self.train_data[0])
        self.n_local = n // world_size if world_size > 1 else n
        self.batch_size = min(self.spec.batch_size or self.n_local, self.n_local)
        n_batches = math.ceil(self.n_local / self.batch_size)
        self.batches_per_step = n_batches if fused else 1
        # Fused, L-BFGS runs all its iterations in one Lightning step (the fit is one Lightning
        # epoch of `max_epochs` "epochs": iterations, each a pass over the data); else one
        # iteration a Lightning epoch, so that what counts steps or epochs sees each one.
        self.lbfgs_inner = fused
        self.lbfgs_iterations = self.spec.max_epochs if fused else 1
        return StepIndices(1 if fused else n_batches)

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
        if self.device.type in FUSED_DEVICES[spec.optimizer]:
            options["fused"] = True
        return optimizer_class(self.network.parameters(), **options)

    def on_fit_start(self) -> None:
        dtype = next(self.network.parameters()).dtype
        self.train_data = tuple(self._to_device(t, dtype) for t in self.train_data)
        if self.val_data is not None:
            self.val_data = tuple(self._to_device(t, dtype) for t in self.val_data)
        # Seeded per fit, the same on every rank: the shards partition each epoch's permutation.
        self._generator = torch.Generator().manual_seed(self.spec.seed)

    def _to_device(self, tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return tensor.to(self.device, dtype=dtype if tensor.is_floating_point() else None)

    def on_train_epoch_start(self) -> None:
        X, y = self.train_data
        if self.spec.optimizer == "lbfgs":  # full batch: the rows' order changes nothing
            trainer = self._trainer
            rank = trainer.global_rank if trainer is not None and trainer.world_size > 1 else 0
            shard = slice(rank * self.n_local, (rank + 1) * self.n_local)
            self.epoch_X, self.epoch_y = X[shard], y[shard]
            return
        order = torch.randperm(len(X), generator=self._generator)
        rank = self.trainer.global_rank if self.trainer.world_size > 1 else 0
        order = order[rank * self.n_local : (rank + 1) * self.n_local].to(self.device)
        self.epoch_X, self.epoch_y = take_rows(X, order), take_rows(y, order)
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
        epoch_X, epoch_y, loss_sum = self.epoch_X, self.epoch_y, self._loss_sum
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
            if self.val_data is not None:
                self.log("val_loss", epoch_values[1], prog_bar=True)

    def _record_epoch(self, train_loss: torch.Tensor) -> list[float]:
        """Appends an epoch's train loss, and the validation part's loss and score, to the
        history; returns them. A loss that is not finite stops the fit with a PipelineError."""
        values = [train_loss]
        if self.val_data is not None:
            X_val, y_val = self.val_data
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
        X, y, decay = self.epoch_X, self.epoch_y, self.spec.weight_decay
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
            monitored = values[1 if self.val_data is not None else 0]
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

    def release_data(self) -> None:
        """Lets go of the training tensors (a fold's rows, twice): the trainer and the module
        refer to each other, so they wait for the garbage collector, maybe folds later."""
        self.train_data = self.val_data = self.epoch_X = self.epoch_y = None


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


