"""The torch half of fold-parallel training: k folds' networks stacked into one, trained by one
LightningModule with an optimizer that keeps every fold's state apart.

Imported only when folds are fitted batched (see :mod:`pipeline.models.batched`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch import nn

from pipeline import threads
from pipeline.errors import PipelineError
from pipeline.models import _lightning
from pipeline.models._lightning import Prepared, TrainSpec
from pipeline.models.batched import Diverged, NotBatchable
from pipeline.models.heads import BinaryHead, MulticlassHead, RegressionHead

ACTIVATIONS = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU)
HEADS = (BinaryHead, MulticlassHead, RegressionHead)


def trainer_unsupported(spec: TrainSpec) -> str | None:
    """None when ``spec``'s Trainer runs one device at 32-bit precision with nothing that counts
    or hooks into steps (the settings under which a Lightning step may run a whole epoch by
    direct torch calls), else the setting that stands in the way."""
    user = _lightning._user_arguments(spec)
    for key in _lightning.STEP_ARGUMENTS:
        if key in user and _lightning._counts_steps(replace(spec, trainer_kwargs={key: user[key]})):
            return f"trainer.{key} is set"
    trainer = _lightning.make_trainer(replace(spec, early_stopping=False), "train_loss")
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


def network_unsupported(network: nn.Module) -> str | None:
    """None when ``network`` can be stacked with others of its shape, else why not."""
    if type(network) is not nn.Sequential:
        return f"the network is a {type(network).__name__}, not an nn.Sequential"
    for layer in network:
        if isinstance(layer, nn.Dropout):
            if layer.p > 0:
                return f"the network has dropout (p={layer.p:g}), whose random stream differs"
        elif type(layer) not in (nn.Linear, nn.Identity, *ACTIVATIONS):
            return f"the network has a {type(layer).__name__} layer"
        elif isinstance(layer, nn.Linear) and layer.bias is None:
            return "the network has a linear layer without bias"
    return None


class StackedNetwork(nn.Module):
    """k networks of one shape as one: every linear layer's weights stacked along a first
    dimension of size k (views into one flat (k, P) tensor, their gradients likewise), and a
    forward pass by batched matrix products on inputs shaped (k, rows, features)."""

    def __init__(self, networks: Sequence[nn.Sequential]) -> None:
        super().__init__()
        self.k = len(networks)
        self.weights = nn.ParameterList()
        self.layers: list[Any] = []  # an index into `weights` (a linear layer) or a function
        for position, layer in enumerate(networks[0]):
            if isinstance(layer, nn.Linear):
                self.layers.append(len(self.weights))
                for name in ("weight", "bias"):
                    stacked = torch.stack([getattr(n[position], name).detach() for n in networks])
                    self.weights.append(nn.Parameter(stacked.clone()))
            elif isinstance(layer, ACTIVATIONS):
                self.layers.append(layer)
        self.flat: torch.Tensor | None = None
        self.flat_grad: torch.Tensor | None = None

    def flatten_(self) -> None:
        """Makes every parameter (and its gradient) a view into one (k, P) tensor on the
        parameters' device, so that the optimizer updates all of them in a few operations."""
        params = list(self.weights)
        sizes = [p[0].numel() for p in params]
        device, dtype = params[0].device, params[0].dtype
        self.flat = torch.empty(self.k, sum(sizes), device=device, dtype=dtype)
        self.flat_grad = torch.zeros_like(self.flat)
        self.slices, start = [], 0
        for param, size in zip(params, sizes, strict=True):
            self.slices.append(slice(start, start + size))
            view = self.flat[:, start : start + size]
            view.copy_(param.detach().reshape(self.k, size))
            param.data = view.view(param.shape)
            start += size
        self.attach_grads()

    def attach_grads(self) -> None:
        """Points every parameter's gradient at its view of the flat gradient, where backward
        accumulates in place (Lightning's ``zero_grad`` at the start of a fit drops them)."""
        for param, part in zip(self.weights, self.slices, strict=True):
            if param.grad is None or param.grad.data_ptr() != self.flat_grad[:, part].data_ptr():
                param.grad = self.flat_grad[:, part].view(param.shape)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        weights = self.weights
        for layer in self.layers:
            if isinstance(layer, int):
                weight, bias = weights[layer], weights[layer + 1]
                X = torch.baddbmm(bias.unsqueeze(1), X, weight.transpose(1, 2))
            else:
                X = layer(X)
        return X

    def unstack_into(self, networks: Sequence[nn.Sequential]) -> None:
        """Copies fold f's trained weights into ``networks[f]`` (on the CPU)."""
        linear = [position for position, layer in enumerate(networks[0])
                  if isinstance(layer, nn.Linear)]
        with torch.no_grad():
            for index, position in zip(self.layers_with_weights(), linear, strict=True):
                weight, bias = (self.weights[index].detach().cpu(),
                                self.weights[index + 1].detach().cpu())
                for f, network in enumerate(networks):
                    network[position].weight.copy_(weight[f])
                    network[position].bias.copy_(bias[f])

    def layers_with_weights(self) -> list[int]:
        return [layer for layer in self.layers if isinstance(layer, int)]


class FoldOptimizer(torch.optim.Optimizer):
    """sgd (with momentum), adam, rmsprop or adagrad on a (k, P) tensor of k folds' parameters,
    with torch's formulas and defaults, each fold with its own state and step count.

    An epoch's steps are planned at once (:meth:`plan_epoch`) from which folds take a step at
    each: a fold that does not (its batches are done, or it stopped early) gets factors that
    leave its parameters and state exactly as they are (a zero learning rate, a moment decay
    of 1), so that a step is a handful of whole-tensor operations with no masking."""

    BETAS, ADAM_EPS, RMSPROP_ALPHA, RMSPROP_EPS, ADAGRAD_EPS = (0.9, 0.999), 1e-8, 0.99, 1e-8, 1e-10

    def __init__(self, flat: torch.Tensor, grad: torch.Tensor, spec: TrainSpec) -> None:
        super().__init__([flat], {"lr": spec.lr})
        self.flat, self.grad, self.spec = flat, grad, spec
        self.moments = [torch.zeros_like(flat) for _ in range(self._n_moments())]
        self.steps = torch.zeros(flat.shape[0], 1, dtype=torch.float64, device=flat.device)

    def _n_moments(self) -> int:
        spec = self.spec
        return {"sgd": int(spec.momentum > 0), "adam": 2, "rmsprop": 1 + int(spec.momentum > 0),
                "adagrad": 1}[spec.optimizer]

    def zero_grad(self, set_to_none: bool = False) -> None:
        self.grad.zero_()

    def step(self, closure: Any = None) -> None:
        """One update of every fold (the training loop plans epochs and calls ``update``)."""
        self.plan_epoch(torch.ones(self.flat.shape[0], 1, dtype=torch.bool,
                                   device=self.flat.device))
        self.update(0)

    def plan_epoch(self, active: torch.Tensor) -> None:
        """``active`` (k, steps) says which folds take each of the epoch's steps."""
        spec, dtype = self.spec, self.flat.dtype
        taken = active.to(torch.float64)
        on = taken.to(dtype).unsqueeze(2)  # (k, steps, 1): 1 where the fold steps, else 0

        def keep_unless(factor: float) -> list[torch.Tensor]:  # factor where on, else 1
            return list((1 + on * (factor - 1)).unbind(1))

        self._on = list(on.unbind(1))
        self._lr = list((on * spec.lr).unbind(1))
        if spec.optimizer == "adam":
            beta1, beta2 = self.BETAS
            # Each fold's own step count at each step, for the bias corrections.
            counts = (self.steps + taken.cumsum(1)).clamp_min(1)
            self.steps += taken.sum(1, keepdim=True)
            step_size = (spec.lr / (1 - beta1**counts)) * taken
            self._step_size = list(step_size.to(dtype).unsqueeze(2).unbind(1))
            self._correction2 = list((1 - beta2**counts).sqrt().to(dtype).unsqueeze(2).unbind(1))
            self._decay1 = list((on * (1 - beta1)).unbind(1))
            self._decay2 = keep_unless(beta2)
            self._gain2 = list((on * (1 - beta2)).unbind(1))
        elif spec.optimizer == "rmsprop":
            self._decay2 = keep_unless(self.RMSPROP_ALPHA)
            self._gain2 = list((on * (1 - self.RMSPROP_ALPHA)).unbind(1))
        if spec.momentum:
            self._momentum = keep_unless(spec.momentum)

    @torch.no_grad()
    def update(self, t: int) -> None:
        """The planned step ``t`` of the epoch."""
        spec, param, grad = self.spec, self.flat, self.grad
        if spec.weight_decay:
            grad = grad.add(param, alpha=spec.weight_decay)
        optimizer = spec.optimizer
        if optimizer == "sgd":
            if spec.momentum:
                (buffer,) = self.moments
                # From zeros, the first step's buffer is the gradient, as torch's SGD starts it.
                buffer.mul_(self._momentum[t]).addcmul_(grad, self._on[t])
                grad = buffer
            param.addcmul_(grad, self._lr[t], value=-1)
        elif optimizer == "adam":
            exp_avg, exp_avg_sq = self.moments
            exp_avg.lerp_(grad, self._decay1[t])
            exp_avg_sq.mul_(self._decay2[t]).addcmul_(grad, grad * self._gain2[t])
            denom = exp_avg_sq.sqrt().div_(self._correction2[t]).add_(self.ADAM_EPS)
            param.addcdiv_(exp_avg * self._step_size[t], denom, value=-1)
        elif optimizer == "rmsprop":
            square_avg = self.moments[0]
            square_avg.mul_(self._decay2[t]).addcmul_(grad, grad * self._gain2[t])
            step = grad / square_avg.sqrt().add_(self.RMSPROP_EPS)
            if spec.momentum:
                buffer = self.moments[1]
                buffer.mul_(self._momentum[t]).addcmul_(step, self._on[t])
                step = buffer
            param.addcmul_(step, self._lr[t], value=-1)
        else:  # adagrad
            state_sum = self.moments[0]
            state_sum.addcmul_(grad, grad * self._on[t])
            param.addcmul_(grad / state_sum.sqrt().add_(self.ADAGRAD_EPS), self._lr[t],
                           value=-1)


def per_row_loss(head: Any) -> Any:
    """The head's training loss of every row, shaped (k, rows), for outputs (k, rows, outputs):
    its mean over a fold's rows is the head's own ``loss`` of that fold's batch."""
    if isinstance(head, MulticlassHead):
        def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            k, rows, classes = output.shape
            return F.cross_entropy(output.reshape(-1, classes), target.reshape(-1),
                                   reduction="none").view(k, rows)
    elif isinstance(head, BinaryHead):
        def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(output.squeeze(-1), target,
                                                      reduction="none")
    else:
        def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return (output - target).square().mean(-1)
    return loss


def _stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """(k, max rows, ...) with each tensor's rows first and zeros after."""
    longest = max(len(t) for t in tensors)
    stacked = tensors[0].new_zeros((len(tensors), longest, *tensors[0].shape[1:]))
    for f, tensor in enumerate(tensors):
        stacked[f, : len(tensor)] = tensor
    return stacked


class FoldsModule(pl.LightningModule):
    """Trains k folds' stacked networks, each fold as :class:`~pipeline.models._lightning.
    NetworkModule` trains it alone: its own rows, validation part, per-epoch permutation (a
    generator seeded with its seed), batches, optimizer state, history and early stopping. One
    Lightning step runs an epoch of every fold; a fold that stopped early is frozen, and the
    fit stops once all have."""

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
        self.stoppers = [_lightning.Plateau(spec.patience, spec.tol) for _ in prepared]
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

        self._X = to_device(_stack([p.data[0] for p in self.prepared]))
        self._y = to_device(_stack([p.data[1] for p in self.prepared]))
        if self.has_val:
            self._X_val = to_device(_stack([p.val_data[0] for p in self.prepared]))
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
    fold, what :func:`pipeline.models._lightning.train` returns for it alone."""
    spec = prepared[0].spec
    # Early stopping is per fold, in the module: Lightning's callback would stop every fold.
    with _lightning._quiet_lightning():
        trainer = _lightning.make_trainer(replace(spec, early_stopping=False), "train_loss")
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
            with threads.limited(threads.for_torch(_step_work(networks, prepared)), blas=False):
                _lightning._fit_passing_interrupts(trainer, module, _lightning._StepIndices(1))
    module.network.unstack_into(networks)
    return [(network.eval(), history, n_steps) for network, history, n_steps
            in zip(networks, module.histories, module.n_steps, strict=True)]


class LbfgsFoldsModule(pl.LightningModule):
    """k folds fitted by L-BFGS in one Lightning fit: L-BFGS's line search takes each fold its
    own steps, so they are not stacked; in the fit's one step each fold's own
    :class:`~pipeline.models._lightning.NetworkModule` runs, one after another, exactly the
    iterations its fit alone runs. What is shared is the Trainer and the fit around them."""

    def __init__(self, folds: Sequence[_lightning.NetworkModule]) -> None:
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


def train_lbfgs(
    prepared: Sequence[Prepared],
) -> list[tuple[nn.Module, dict[str, list[float]], int]]:
    """:func:`train` for ``optimizer="lbfgs"``: every fold's network built under its own seed
    and fitted by its own L-BFGS, in one Lightning fit (see :class:`LbfgsFoldsModule`)."""
    spec = prepared[0].spec
    # Each fold stops by itself, in the module: the fit is one Lightning epoch.
    trainer_spec = replace(spec, early_stopping=False, max_epochs=1)
    with _lightning._quiet_lightning():
        trainer = _lightning.make_trainer(trainer_spec, "train_loss")
        device = trainer.strategy.root_device
        folds = []
        for p in prepared:
            fold = _seeded(p, device, lambda p=p: _lightning.NetworkModule(
                p.build(), p.spec, p.data, p.val_data))
            fold.log_metrics = False
            fold.plan(world_size=1, fused=True)
            folds.append(fold)
        module = LbfgsFoldsModule(folds)
        work = max(_lightning.step_work(fold.network, fold.batch_size) for fold in folds)
        with threads.limited(threads.for_torch(work), blas=False):
            _lightning._fit_passing_interrupts(trainer, module, _lightning._StepIndices(1))
    results = []
    for fold in folds:
        fold._data = fold._val_data = fold._epoch_X = fold._epoch_y = None
        results.append((fold.network.cpu().eval(), fold.history, fold.n_steps))
    return results


def _step_work(networks: Sequence[nn.Module], prepared: Sequence[Prepared]) -> int:
    """Multiply-adds of one batched step's matrix products, all folds together: what
    `threads.for_torch` picks the threads from (as for one fold's fit, times the folds)."""
    work = 0
    for network, fold in zip(networks, prepared, strict=True):
        rows = len(fold.data[0])
        work += _lightning.step_work(network, min(fold.spec.batch_size or rows, rows))
    return work
