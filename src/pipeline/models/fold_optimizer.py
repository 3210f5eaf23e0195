"""The fold-parallel optimizer (:class:`FoldOptimizer`): torch's sgd, adam, rmsprop and adagrad
on k folds' stacked parameters, each fold with its own state.

Written here because no stock torch optimizer keeps k folds' states apart in one tensor; it
follows torch's formulas and defaults, so that each fold steps as torch's would step it alone.
"""

from __future__ import annotations

from typing import Any

import torch

from pipeline.models.spec import TrainSpec


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


