"""k networks of one shape as one (:class:`StackedNetwork`), which networks can be stacked, and
the heads' losses row by row for all folds at once (:func:`per_row_loss`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.heads import BinaryHead, MulticlassHead

ACTIVATIONS = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU)


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


def stack_padded(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """(k, max rows, ...) with each tensor's rows first and zeros after."""
    longest = max(len(t) for t in tensors)
    stacked = tensors[0].new_zeros((len(tensors), longest, *tensors[0].shape[1:]))
    for f, tensor in enumerate(tensors):
        stacked[f, : len(tensor)] = tensor
    return stacked


