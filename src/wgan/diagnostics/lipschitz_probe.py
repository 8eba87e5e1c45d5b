r"""Empirical Lipschitz constant of a critic: the largest slope over sampled pairs of points.

.. math::
    \hat L = \max_{(x, y) \in \mathcal P} \frac{|f(x) - f(y)|}{\|x - y\|_2}

Every term is a secant slope, so :math:`\hat L \le L` for the true Lipschitz constant :math:`L` of
``f``: the probe is a lower bound, comparable across weight clipping, the gradient penalty and
spectral normalisation (Arjovsky et al. 2017 require :math:`L \le K`; Gulrajani et al. 2017 aim at
:math:`L = 1`; Miyato et al. 2018 bound it by the product of the layers' spectral norms).

The pairs :math:`\mathcal P` are drawn from real points, generated points and their interpolates:
real-generated (the coupled pairs), real-real, generated-generated and interpolate-interpolate
(random partners), interpolate-real and interpolate-generated, and one short step from each
interpolate along the critic's gradient. Random directions in high dimension are nearly orthogonal
to the gradient and would make the probe very loose for images; the gradient steps make it tight
(exact for a linear critic).
"""

from __future__ import annotations

import torch
from torch import nn

from wgan.lipschitz.gradient_penalty import gradient_norms, input_gradient, interpolate

_MIN_DIST = 1e-8  # pairs closer than this (duplicates) are skipped: their slope is 0/0

PAIR_KINDS = ("real-fake", "real-real", "fake-fake", "hat-hat", "hat-real", "hat-fake", "gradient-step")


def pair_slopes(score_x: torch.Tensor, score_y: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pair slopes :math:`|f(x_i) - f(y_i)| / \\|x_i - y_i\\|` (norm over every non-batch axis).

    Pairs closer than 1e-8 get slope 0 (they carry no information). Shape: (N,).
    """
    dist = (x - y).flatten(1).double().norm(dim=1)
    diff = (score_x.double() - score_y.double()).abs()
    return torch.where(dist > _MIN_DIST, diff / dist.clamp_min(_MIN_DIST), torch.zeros_like(dist))


def empirical_lipschitz(critic: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor,
                        x_hat: torch.Tensor | None = None, grad_hat: torch.Tensor | None = None,
                        rng: torch.Generator | None = None, step_frac: float = 1e-2,
                        return_kinds: bool = False):
    r"""The largest secant slope of ``critic`` over pairs of real, generated and interpolated points.

    .. math:: \hat L = \max_{(x, y)} |f(x) - f(y)| / \|x - y\|_2 \;\le\; \mathrm{Lip}(f)

    Args:
        critic: maps (N, ...) to scores (N,); put it in eval mode first if it has modes.
        x_real, x_fake: paired batches of the same shape (N, ...).
        x_hat: interpolates (N, ...); drawn here with ``rng`` when ``None``.
        grad_hat: the critic's input gradient at ``x_hat``; computed here when ``None``. Used for
            the gradient-step pairs :math:`(\hat x, \hat x + \varepsilon\, g / \|g\|)`.
        rng: the generator for interpolation coefficients and random partners (never the global
            RNG when given).
        step_frac: the gradient step :math:`\varepsilon` as a fraction of the median real-fake
            distance (large enough that float32 rounding of the scores stays far below the slope).
        return_kinds: also return the largest slope of each pair kind (:data:`PAIR_KINDS`).

    Returns:
        A 0-d float64 tensor :math:`\hat L` on the inputs' device (no host sync), or
        ``(L, {kind: tensor})`` with ``return_kinds``.

    Example:
        >>> a = torch.tensor([3.0, 4.0])
        >>> L = empirical_lipschitz(lambda x: x @ a, torch.randn(64, 2), torch.randn(64, 2))
        >>> round(float(L), 3)
        5.0

    References:
        Arjovsky, Chintala, Bottou, "Wasserstein GAN", ICML 2017, eq. 3 (the K-Lipschitz dual);
        Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017, sec. 4.
    """
    x_real = x_real.detach()
    x_fake = x_fake.detach()
    n = len(x_real)
    if x_hat is None:
        x_hat = interpolate(x_real, x_fake, rng)
    x_hat = x_hat.detach()
    if grad_hat is None:
        grad_hat = input_gradient(critic, x_hat, create_graph=False)
    grad_hat = grad_hat.detach()
    # one short step along the gradient direction from every interpolate
    scale = (x_real - x_fake).flatten(1).norm(dim=1).median().clamp_min(1e-6)
    direction = grad_hat / gradient_norms(grad_hat).view((n,) + (1,) * (grad_hat.dim() - 1))
    x_step = x_hat + step_frac * scale * direction
    with torch.no_grad():
        scores = critic(torch.cat([x_real, x_fake, x_hat, x_step])).reshape(4, n)
    s_real, s_fake, s_hat, s_step = scores
    perm = torch.randperm(n, generator=rng, device=rng.device if rng is not None else x_real.device)
    perm = perm.to(x_real.device)
    kinds = {
        "real-fake": pair_slopes(s_real, s_fake, x_real, x_fake),
        "real-real": pair_slopes(s_real, s_real[perm], x_real, x_real[perm]),
        "fake-fake": pair_slopes(s_fake, s_fake[perm], x_fake, x_fake[perm]),
        "hat-hat": pair_slopes(s_hat, s_hat[perm], x_hat, x_hat[perm]),
        "hat-real": pair_slopes(s_hat, s_real, x_hat, x_real),
        "hat-fake": pair_slopes(s_hat, s_fake, x_hat, x_fake),
        "gradient-step": pair_slopes(s_step, s_hat, x_step, x_hat),
    }
    maxes = {k: v.max() for k, v in kinds.items()}
    L = torch.stack(list(maxes.values())).max()
    return (L, maxes) if return_kinds else L
