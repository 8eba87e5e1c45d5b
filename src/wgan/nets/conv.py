r"""DCGAN-style convolutional generator and critic for 28x28, 32x32 and 64x64 images, 1 or 3 channels.

The layout follows the paper code of Gulrajani et al. 2017 (``gan_mnist.py`` and the DCGAN
model of ``gan_64x64.py``): 5x5 kernels, stride 2, the critic halving the resolution down to 4x4 and
the generator doubling it up from 4x4, channels ``width, 2 width, 4 width (, 8 width for 64x64)``.

=========  ==============================  ==============================
size       critic (stride-2 convs)          generator (stride-2 transposed convs)
=========  ==============================  ==============================
28         28 -> 14 -> 7 -> 4                4 -> 8 (crop to 7) -> 14 -> 28
32         32 -> 16 -> 8 -> 4                4 -> 8 -> 16 -> 32
64         64 -> 32 -> 16 -> 8 -> 4          4 -> 8 -> 16 -> 32 -> 64
=========  ==============================  ==============================

With ``width=64`` and size 28 the critic is exactly the paper's MNIST critic (conv 64, 128, 256,
LeakyReLU 0.2, linear to one score). The critic is one ``nn.Sequential`` of Conv2d, LeakyReLU,
GroupNorm(1, C) (LayerNorm over C, H, W with a per-channel affine, as the paper's code), Flatten
and Linear only, so it is piecewise linear in its input when ``norm="none"``.

References:
    Radford, Metz, Chintala, "Unsupervised Representation Learning with Deep Convolutional GANs", ICLR 2016.
    Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017 (sec. 4: no BatchNorm in the
    critic, layer normalisation as a drop-in replacement).
"""

from __future__ import annotations

import torch
from torch import nn

from wgan.errors import ConfigError

SIZES = (28, 32, 64)
KERNEL = 5  # 5x5 kernels, stride 2, padding 2: a stride-2 conv maps s -> ceil(s / 2)


def _check(channels: int, size: int) -> None:
    if size not in SIZES:
        raise ConfigError(f"conv nets support image sizes 28, 32 and 64, got {size}; use --image-size")
    if channels not in (1, 3):
        raise ConfigError(f"conv nets support 1 or 3 channels, got {channels}; use --channels")


def _num_stages(size: int) -> int:
    return 4 if size == 64 else 3  # stride-2 stages between 4x4 and the image size


class Crop(nn.Module):
    """Keep the top-left ``size`` x ``size`` pixels: (N, C, H, W) -> (N, C, size, size)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : self.size, : self.size]

    def extra_repr(self) -> str:
        return f"size={self.size}"


class ConvGenerator(nn.Module):
    """z (N, z_dim) -> images (N, channels, size, size) in [-1, 1] (tanh).

    Linear to a 4x4 map of ``width * 2**(stages - 1)`` channels, then stride-2 5x5 transposed
    convolutions halving the channels, each followed by BatchNorm (``norm="batch"``, the DCGAN
    recipe) and ReLU; the last one maps to ``channels`` and tanh.

    Args:
        z_dim: latent size.
        channels: 1 or 3.
        size: 28, 32 or 64.
        width: channels of the last hidden map (the paper's ``DIM``).
        norm: ``"batch"`` or ``"none"`` (the paper's MNIST generator has none).

    Shape:
        z (N, z_dim) -> (N, channels, size, size).

    Example:
        >>> g = ConvGenerator(64, 1, 28, width=16)
        >>> g(torch.randn(5, 64)).shape
        torch.Size([5, 1, 28, 28])
    """

    def __init__(self, z_dim: int, channels: int = 1, size: int = 28, width: int = 64, norm: str = "batch"):
        super().__init__()
        _check(channels, size)
        if norm not in ("batch", "none"):
            raise ValueError(f"generator norm must be batch or none, got {norm!r}")
        self.z_dim, self.channels, self.size, self.width, self.norm = z_dim, channels, size, width, norm
        stages = _num_stages(size)
        c0 = width * 2 ** (stages - 1)
        self.c0 = c0
        self.fc = nn.Linear(z_dim, c0 * 4 * 4)
        self.fc_post = nn.Sequential(*([nn.BatchNorm1d(c0 * 16)] if norm == "batch" else []), nn.ReLU())
        layers: list[nn.Module] = []
        c, s = c0, 4
        for i in range(stages):
            last = i == stages - 1
            c_out = channels if last else c // 2
            # s -> 2 s: (s - 1) * 2 - 2 * 2 + 5 + 1
            layers.append(nn.ConvTranspose2d(c, c_out, KERNEL, stride=2, padding=2, output_padding=1))
            s *= 2
            if size == 28 and s == 8:
                layers.append(Crop(7))  # 8 -> 7, as the paper's MNIST generator
                s = 7
            if last:
                layers.append(nn.Tanh())
            else:
                if norm == "batch":
                    layers.append(nn.BatchNorm2d(c_out))
                layers.append(nn.ReLU())
            c = c_out
        assert s == size, (s, size)
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc_post(self.fc(z)).view(len(z), self.c0, 4, 4)  # (N, c0, 4, 4)
        return self.net(h)  # (N, C, size, size)


class ConvCritic(nn.Module):
    """Images (N, channels, size, size) -> unbounded scores (N,). For the vanilla GAN the score is a logit.

    ``self.net`` is one ``nn.Sequential``: stride-2 5x5 ``Conv2d`` layers with ``width * 2**i``
    channels, each followed (from the second on) by the normalisation and by ``LeakyReLU(0.2)``,
    then ``Flatten`` and ``Linear(4 * 4 * C_last, 1)``.

    Args:
        channels: 1 or 3.
        size: 28, 32 or 64.
        width: channels of the first conv (the paper's ``DIM``).
        norm: ``"none"``; ``"layer"`` (``GroupNorm(1, C)``: per-sample normalisation over C, H, W
            with a per-channel scale and shift: each sample's score depends on that sample alone);
            ``"batch"`` (BatchNorm2d: it mixes the samples of a batch).
        activation: ``"leaky_relu"`` (slope 0.2, the default) or ``"relu"``.

    Shape:
        x (N, channels, size, size) -> (N,).

    Example:
        >>> f = ConvCritic(1, 28, width=16)
        >>> f(torch.randn(5, 1, 28, 28)).shape
        torch.Size([5])
    """

    # Declared for code that runs the layers itself (the training engines): forward is ``self.net`` on the
    # input as given, its output (N, 1) squeezed to (N,).
    stack_input = "as_is"

    def __init__(self, channels: int = 1, size: int = 28, width: int = 64, norm: str = "none",
                 activation: str = "leaky_relu"):
        super().__init__()
        _check(channels, size)
        if norm not in ("none", "layer", "batch"):
            raise ValueError(f"critic norm must be none, layer or batch, got {norm!r}")
        if activation not in ("leaky_relu", "relu"):
            raise ValueError(f"conv critic activation must be leaky_relu or relu, got {activation!r}")
        self.channels, self.size, self.width, self.norm, self.activation = channels, size, width, norm, activation
        layers: list[nn.Module] = []
        c, s = channels, size
        for i in range(_num_stages(size)):
            c_out = width * 2 ** i
            layers.append(nn.Conv2d(c, c_out, KERNEL, stride=2, padding=2))
            s = (s + 1) // 2
            if i > 0 and norm == "layer":
                layers.append(nn.GroupNorm(1, c_out))
            elif i > 0 and norm == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2) if activation == "leaky_relu" else nn.ReLU())
            c = c_out
        assert s == 4, (s, size)
        layers += [nn.Flatten(), nn.Linear(c * 4 * 4, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)  # (N, 1) -> (N,)
