"""The LightningModules of a batched fit: k folds' stacked networks as one (:class:`FoldsModule`),
and k folds' L-BFGS fits in one Lightning fit (:class:`LbfgsFoldsModule`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import lightning.pytorch as pl
import torch
from torch import nn

from pipeline.errors import PipelineError
from pipeline.models.batch_errors import Diverged
from pipeline.models.fold_optimizer import FoldOptimizer
from pipeline.models.lightning_module import NetworkModule, Plateau
from pipeline.models.spec import Prepared
from pipeline.models.stacked_network import StackedNetwork, per_row_loss, stack_padded


class FoldsModule(pl.LightningModule):
    """Trains k folds' stacked networks, each fold as
    :class:`~pipeline.models.lightning_module.NetworkModule` trains it alone: its own rows,
    validation part, per-epoch permutation (a generator seeded with its seed), batches,
    optimizer state, history and early stopping. One Lightning step runs an epoch of every
    fold; a fold that stopped early is frozen, and the fit stops once all have."""

    def __init__(self, networks: Sequence[nn.Sequential], prepared: Sequence[Prepared]) -> None:
        super().__init__()
        self.network = StackedNetwork(networks)
        self.prepared = list(prepared)
        self.automatic_optimization = False
        spec = prepared[0].spec
        self.spec = spec
        self.k = len(prepared)
        self.row_loss = per_row_loss(spec.head)
        self.has_val = prepared[0].val_data is not None
        self.histories: list[dict[str, list[float]]] = []
        for p in prepared:
            history: dict[str, list[float]] = {"train_loss": []}
            if p.val_data is not None:
                history["val_loss"] = []
                history[f"val_{p.spec.head.score_name}"] = []
            self.histories.append(history)
        self.n_steps = [0] * self.k
        self.running = [True] * self.k
        self.stoppers = [Plateau(spec.patience, spec.tol) for _ in prepared]
        self.log_metrics = False
        self._plan_batches()

    def _plan_batches(self) -> None:
        """Each fold's batches laid out in a (k, batches, width) grid: ``slots`` says which
        position of the fold's epoch permutation each cell takes (-1: none)."""
        sizes = [len(p.data[0]) for p in self.prepared]
        batch = [min(self.spec.batch_size or n, n) for n in sizes]
        self.n_batches = [math.ceil(n / b) for n, b in zip(sizes, batch, strict=True)]
        width, depth = max(batch), max(self.n_batches)
        slots = torch.full((self.k, depth, width), -1, dtype=torch.long)
        for f, (n, b) in enumerate(zip(sizes, batch, strict=True)):
            positions = torch.arange(n)
            cells = torch.arange(n) // b * width + positions % b
            slots[f].view(-1)[cells] = positions
        self.sizes = sizes
        self.slots = slots
        self.valid = (slots >= 0).float()
        self.weights = self.valid / self.valid.sum(2, keepdim=True).clamp_min(1)
        self.has_batch = torch.tensor([[t < nb for t in range(depth)] for nb in self.n_batches])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # After Lightning has moved the network to its device.
        self.network.flatten_()
        self.optimizer = FoldOptimizer(self.network.flat, self.network.flat_grad, self.spec)
        return self.optimizer

    def on_fit_start(self) -> None:
        dtype, device = self.network.flat.dtype, self.device

        def to_device(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.to(device, dtype=dtype if tensor.is_floating_point() else None)

        self._X = to_device(stack_padded([p.data[0] for p in self.prepared]))
        self._y = to_device(stack_padded([p.data[1] for p in self.prepared]))
        if self.has_val:
            self._X_val = to_device(stack_padded([p.val_data[0] for p in self.prepared]))
            self._val = [tuple(to_device(t) for t in p.val_data) for p in self.prepared]
        self._valid = self.valid.to(device)
        self._weights = self.weights.to(device)
        self._has_batch = self.has_batch.to(device)
        self._folds = torch.arange(self.k, device=device)[:, None]
        self._generators = [torch.Generator().manual_seed(p.spec.seed) for p in self.prepared]

    def on_train_epoch_start(self) -> None:
        self.network.attach_grads()
        order = torch.zeros(self.k, self._X.shape[1], dtype=torch.long)
        for f, (n, generator) in enumerate(zip(self.sizes, self._generators, strict=True)):
            if self.running[f]:
                order[f, :n] = torch.randperm(n, generator=generator)
        rows = order.gather(1, self.slots.clamp_min(0).view(self.k, -1)).to(self.device)
        depth, width = self.slots.shape[1:]
        epoch_X = self._X[self._folds, rows].view(self.k, depth, width, -1)
        y = self._y[self._folds, rows]
        epoch_y = y.view(self.k, depth, width, *y.shape[2:])
        running = torch.tensor(self.running, device=self.device)[:, None]
        active = self._has_batch & running
        self.optimizer.plan_epoch(active)
        weights = self._weights * active[:, :, None]
        # Per step: the (k, width) batches, each row's weight in the loss (1/batch size, 0 for
        # padding and for folds that take no step).
        self._batches = list(zip(epoch_X.unbind(1), epoch_y.unbind(1), weights.unbind(1),
                                 strict=True))
        self._row_losses = torch.zeros(self.k, depth, width, device=self.device)

    def training_step(self, step: int, batch_idx: int) -> None:
        # Direct torch calls, as the sequential path makes on one device.
        network, optimizer, row_loss = self.network, self.optimizer, self.row_loss
        row_losses = self._row_losses.unbind(1)
        for t, (X, y, weights) in enumerate(self._batches):
            optimizer.zero_grad()
            rows = row_loss(network(X), y)
            (rows * weights).sum().backward()
            optimizer.update(t)
            row_losses[t].copy_(rows.detach())
        for f in range(self.k):
            if self.running[f]:
                self.n_steps[f] += self.n_batches[f]

    def on_train_epoch_end(self) -> None:
        sizes = torch.tensor(self.sizes, device=self.device, dtype=self._row_losses.dtype)
        # Padding rows' losses left out by selection (0 * inf would be NaN).
        values = [torch.where(self._valid > 0, self._row_losses, 0).sum((1, 2)) / sizes]
        if self.has_val:
            with torch.no_grad():
                output = self.network(self._X_val)
            for f, (X_val, y_val) in enumerate(self._val):
                head = self.prepared[f].spec.head
                fold_output = output[f, : len(X_val)]
                values += [head.loss(fold_output, y_val).float().reshape(1),
                           head.score(fold_output, y_val).float().reshape(1)]
        epoch_values = torch.cat(values).tolist()  # the epoch's one host sync
        train_losses = epoch_values[: self.k]
        for f in range(self.k):
            if not self.running[f]:
                continue
            fold_values = [train_losses[f]]
            if self.has_val:
                fold_values += epoch_values[self.k + 2 * f : self.k + 2 * f + 2]
            for key, value in zip(self.histories[f], fold_values, strict=True):
                self.histories[f][key].append(value)
            if not math.isfinite(train_losses[f]):
                spec = self.spec
                raise Diverged(
                    f"training diverged at epoch {self.current_epoch + 1} (loss="
                    f"{train_losses[f]}) with model.optimizer={spec.optimizer} model.lr="
                    f"{spec.lr:g}: lower model.lr (e.g. model.lr={spec.lr / 10:g}) or "
                    "standardise the features (preprocess.scale=standard)"
                )
            monitored = fold_values[1 if self.has_val else 0]  # val_loss, else train_loss
            if self.spec.early_stopping and self.stoppers[f].should_stop(monitored):
                self.running[f] = False
        if self.log_metrics:
            losses = [train_losses[f] for f in range(self.k) if self.histories[f]["train_loss"]]
            self.log("train_loss", sum(losses) / len(losses), prog_bar=True)
        if not any(self.running):
            self.trainer.should_stop = True


class LbfgsFoldsModule(pl.LightningModule):
    """k folds fitted by L-BFGS in one Lightning fit: L-BFGS's line search takes each fold its
    own steps, so they are not stacked; in the fit's one step each fold's own
    :class:`~pipeline.models.lightning_module.NetworkModule` runs, one after another, exactly the
    iterations its fit alone runs. What is shared is the Trainer and the fit around them."""

    def __init__(self, folds: Sequence[NetworkModule]) -> None:
        super().__init__()
        self.folds = nn.ModuleList(folds)
        self.automatic_optimization = False

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [fold.configure_optimizers() for fold in self.folds]

    def on_fit_start(self) -> None:
        for fold in self.folds:
            fold.on_fit_start()

    def training_step(self, step: int, batch_idx: int) -> None:
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        for fold, optimizer in zip(self.folds, optimizers, strict=True):
            fold.on_train_epoch_start()
            try:
                fold.lbfgs_steps(optimizer.optimizer)
            except PipelineError as error:  # a loss that is not finite (_record_epoch)
                raise Diverged(str(error)) from None


