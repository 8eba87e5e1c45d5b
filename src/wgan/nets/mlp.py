"""Fully connected generator and critic for vector (toy) data, or flattened images."""

from __future__ import annotations

import math

import torch
from torch import nn

from wgan.nets import fastgrad, native

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

    def __init__(self, z_dim: int, out_shape: tuple[int, ...], width: int = 256, depth: int = 3,
                 activation: str = "relu"):
        super().__init__()
        self.z_dim = z_dim
        self.out_shape = tuple(out_shape)
        self.net = _mlp(z_dim, width, depth, math.prod(self.out_shape), activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = native.forward(self.net, z)  # without a graph on a CPU: one compiled call (None otherwise)
        return (self.net(z) if x is None else x).view(len(z), *self.out_shape)


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
        """True when :meth:`input_gradient` applies: ReLU/LeakyReLU, no norm layers, plain
        (not parametrised) weights — see :func:`wgan.nets.fastgrad.supports`."""
        return fastgrad.supports(self.net)

    def input_gradient(self, x: torch.Tensor) -> torch.Tensor:
        r"""The input gradient written out, so a penalty on it needs only a first-order backward.

        .. math:: \nabla_x f(x) = W_1^T D_1 W_2^T \cdots D_{L-1} W_L^T, \quad
                  D_l = \mathrm{diag}(\sigma'(a_l))

        The activation slopes :math:`\sigma'` are piecewise constant, so they carry no gradient:
        autograd's double backward gives the same parameter gradients (``tests/test_fastgrad.py``).
        Call only when :meth:`has_input_gradient` is True.

        Shape: x (N, ...) -> (N, ...).
        """
        return fastgrad.input_gradient(self.net, x.flatten(1), check=False).view_as(x)

    def penalised_backward(self, x_real, x_fake, x_hat, critic_loss, gradient_loss, **closed_forms):
        """The critic loss on the scores plus a loss on the input gradient at ``x_hat``, its parameter
        gradients accumulated with no autograd graph of the network (see
        :func:`wgan.nets.fastgrad.penalised_loss_backward`). Call only when :meth:`has_input_gradient`."""
        x_real, x_fake, x_flat = x_real.flatten(1), x_fake.flatten(1), x_hat.flatten(1)
        out = native.wgan_gp_critic(self.net, x_real, x_fake, x_flat, closed_forms.get("critic_loss_grad"),
                                    closed_forms.get("gradient_loss_grad"))
        if out is not None:  # the compiled step: the same algorithm, fused (tests/test_native.py)
            return out
        shape = x_hat.shape  # the gradient terms see it shaped like the input, the net sees it flat
        closed = dict(closed_forms)
        if closed.get("gradient_loss_grad") is not None and not isinstance(closed["gradient_loss_grad"],
                                                                           fastgrad.NormPenalty):
            outer = closed["gradient_loss_grad"]

            def flat_grad(g):
                value, aux, d_g = outer(g.view(shape))
                return value, aux, d_g.reshape(g.shape)

            closed["gradient_loss_grad"] = flat_grad
        return fastgrad.penalised_loss_backward(self.net, x_real, x_fake, x_flat, critic_loss,
                                                lambda g: gradient_loss(g.view(shape)), check=False, **closed)
