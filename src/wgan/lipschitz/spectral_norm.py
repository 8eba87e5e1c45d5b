r"""Spectral normalisation (Miyato et al., "Spectral Normalization for GANs", ICLR 2018, eq. 8).

Every linear and convolution weight is divided by an estimate of its largest singular value,

.. math:: \bar W = W / \sigma(W), \qquad \sigma(W) = \max_{\|h\| \le 1} \|W h\|_2,

kept by one power iteration per forward pass in training mode (PyTorch's parametrisation
``torch.nn.utils.parametrizations.spectral_norm``). Each layer is then 1-Lipschitz, and so is their
composition with 1-Lipschitz activations (a bound, usually not tight).
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from wgan.lipschitz.base import LipschitzMethod

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)


class SpectralNorm(LipschitzMethod):
    """Parametrise every Linear/Conv weight of the critic by W / sigma(W).

    Example:
        >>> critic = SpectralNorm().wrap(nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1)))
    """

    name = "sn"
    grad_norm_reading = ("spectral norm makes each layer 1-Lipschitz, a bound that is usually loose: norms "
                         "below 1 are expected and the gap is a lower bound")
    remedy_unstable = "check that every critic layer is normalised; lower --lr-c"
    remedy_explosion = "lower the learning rates; check the data scale"
    duality_reading = ("spectral norm bounds the constant by 1 (loosely), so the raw estimate is a lower bound "
                       "on W1")

    def __init__(self, n_power_iterations: int = 1):
        self.n_power_iterations = n_power_iterations

    def wrap(self, critic: nn.Module) -> nn.Module:
        for module in list(critic.modules()):
            if isinstance(module, _LAYERS) and not hasattr(module, "parametrizations"):
                spectral_norm(module, n_power_iterations=self.n_power_iterations)
        return critic
