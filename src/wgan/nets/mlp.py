"""Fully connected generator and critic for vector (toy) data, or flattened images."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}


def _mlp(d_in: int, width: int, depth: int, d_out: int, activation: str, norm: str = "none") -> nn.Sequential:
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(depth):
        layers.append(nn.Linear(d, width))
        if norm == "layer":
            layers.append(nn.LayerNorm(width))
        elif norm == "batch":
            layers.append(nn.BatchNorm1d(width))
        layers.append(ACTIVATIONS[activation]())
        d = width
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """z (N, z_dim) -> x (N, *out_shape)."""

    def __init__(self, z_dim: int, out_shape: tuple[int, ...], width: int = 256, depth: int = 3,
                 activation: str = "relu"):
        super().__init__()
        self.z_dim = z_dim
        self.out_shape = tuple(out_shape)
        self.net = _mlp(z_dim, width, depth, math.prod(self.out_shape), activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(len(z), *self.out_shape)


class MLPCritic(nn.Module):
    """x (N, ...) -> unbounded score (N,). For the vanilla GAN the score is a logit."""

    def __init__(self, d_in: int, width: int = 256, depth: int = 3, activation: str = "relu",
                 norm: str = "none"):
        super().__init__()
        self.activation = activation
        self.norm = norm
        self.net = _mlp(d_in, width, depth, 1, activation, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)

    def has_input_gradient(self) -> bool:
        """True when :meth:`input_gradient` applies: piecewise-linear activations, no norm layers,
        plain (not parametrised) weights."""
        return (self.norm == "none" and self.activation in ("relu", "leaky_relu")
                and not any(parametrize.is_parametrized(m) for m in self.net))

    def input_gradient(self, x: torch.Tensor) -> torch.Tensor:
        r"""The input gradient written out, so a penalty on it needs only a first-order backward.

        .. math:: \nabla_x f(x) = W_L^T\, D_{L-1} W_{L-1}^T \cdots D_1 W_1^T, \quad
                  D_l = \mathrm{diag}(\sigma'(a_l))

        The activation slopes :math:`\sigma'` are piecewise constant, so they carry no gradient:
        autograd's double backward gives the same parameter gradients (tested).
        Shape: x (N, ...) -> (N, ...).
        """
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        leak = 0.2 if self.activation == "leaky_relu" else 0.0
        h = x.flatten(1)
        slopes = []
        for lin in linears[:-1]:
            a = F.linear(h, lin.weight, lin.bias)
            s = torch.where(a > 0, 1.0, leak).to(a.dtype)  # sigma'(a), constant pieces
            h = a * s
            slopes.append(s)
        g = linears[-1].weight.expand(len(h), -1)  # (N, width)
        for lin, s in zip(reversed(linears[:-1]), reversed(slopes)):
            g = (g * s) @ lin.weight
        return g.view_as(x)
