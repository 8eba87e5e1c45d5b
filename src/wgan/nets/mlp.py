"""Fully connected generator and critic for vector (toy) data, or flattened images."""

from __future__ import annotations

import math

import torch
from torch import nn

# ReLU and LeakyReLU in place: they follow a Linear (or a norm) whose output nothing else keeps, and
# their backward needs only the result; one memory pass instead of two on every forward.
ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.2, inplace=True),
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

    # Declared for code that runs the layers itself (the training engines): forward is ``self.net`` on the
    # input as rows (N, d), its output reshaped to out_shape.
    stack_input = "rows"

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

    # Declared for code that runs the layers itself (the training engines): forward is ``self.net`` on the
    # input as rows (N, d), its output (N, 1) squeezed to (N,).
    stack_input = "rows"

    def __init__(self, d_in: int, width: int = 256, depth: int = 3, activation: str = "relu",
                 norm: str = "none"):
        super().__init__()
        self.net = _mlp(d_in, width, depth, 1, activation, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)
