import pytest
import torch
from torch import nn

from wgan.errors import ConfigError
from wgan.lipschitz.gradient_penalty import GradientPenalty, gradient_norms, gradient_penalty, interpolate
from wgan.lipschitz.spectral_norm import SpectralNorm
from wgan.lipschitz.weight_clipping import WeightClipping


class Linear(nn.Module):
    """f(x) = <a, x> over every non-batch axis; its gradient is a everywhere."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.a = nn.Parameter(a.clone())

    def forward(self, x):
        return (x * self.a).flatten(1).sum(1)


def test_penalty_is_zero_for_unit_norm_linear_critic(seed):
    critic = Linear(torch.tensor([0.6, 0.8], dtype=torch.float64))
    pen, norms = gradient_penalty(critic, torch.randn(16, 2, dtype=torch.float64),
                                  torch.randn(16, 2, dtype=torch.float64))
    assert pen.item() == pytest.approx(0.0, abs=1e-10)
    torch.testing.assert_close(norms, torch.ones(16, dtype=torch.float64))


def test_penalty_of_linear_critic_is_squared_norm_excess(seed):
    a = torch.tensor([3.0, 4.0], dtype=torch.float64)  # |a| = 5
    pen, _ = gradient_penalty(Linear(a), torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64))
    assert pen.item() == pytest.approx(16.0, rel=1e-9)
    one_sided, _ = gradient_penalty(Linear(a / 10), torch.randn(8, 2, dtype=torch.float64),
                                    torch.randn(8, 2, dtype=torch.float64), one_sided=True)
    assert one_sided.item() == 0.0  # |a| = 0.5 < 1: nothing to penalise one-sidedly


def test_norm_runs_over_every_non_batch_axis_of_images(seed):
    a = torch.randn(3, 4, 5, dtype=torch.float64)
    x = torch.randn(6, 3, 4, 5, dtype=torch.float64)
    _, norms = gradient_penalty(Linear(a), x, torch.randn_like(x))
    # the trap: a norm over one axis (dim=1) would give a (6, 4, 5) tensor of smaller values
    torch.testing.assert_close(norms, torch.full((6,), a.norm().item(), dtype=torch.float64))


def test_one_interpolation_coefficient_per_sample(seed):
    x_real = torch.randn(10, 3, 4, 4, dtype=torch.float64)
    x_fake = torch.randn(10, 3, 4, 4, dtype=torch.float64)
    x_hat = interpolate(x_real, x_fake, torch.Generator().manual_seed(0))
    alpha = (x_hat - x_fake) / (x_real - x_fake)  # (N, C, H, W): constant within each sample
    per_sample = alpha.flatten(1)
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample), atol=1e-9)
    assert per_sample[:, 0].std() > 0.05  # and different between samples
    assert ((per_sample >= 0) & (per_sample <= 1)).all()


def test_penalty_finite_at_zero_gradient():
    critic = Linear(torch.zeros(2))
    pen, norms = gradient_penalty(critic, torch.randn(4, 2), torch.randn(4, 2))
    pen.backward()
    assert torch.isfinite(norms).all() and pen.item() == pytest.approx(1.0, abs=1e-5)
    assert torch.isfinite(critic.a.grad).all()
    assert torch.isfinite(gradient_norms(torch.zeros(3, 5))).all()


def test_batchnorm_critic_is_refused_with_layernorm_advice():
    critic = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    with pytest.raises(ConfigError, match="LayerNorm"):
        GradientPenalty(10.0).wrap(critic)
    GradientPenalty(10.0).wrap(nn.Sequential(nn.Linear(2, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 1)))


def test_weight_clipping_bounds_every_parameter():
    critic = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    WeightClipping(0.01).after_step(critic)
    for p in critic.parameters():
        assert p.abs().max().item() <= 0.01
    with pytest.raises(ValueError):
        WeightClipping(0.0)


def test_spectral_norm_matches_largest_singular_value(seed):
    critic = SpectralNorm().wrap(nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)))
    x = torch.randn(4, 5)
    for _ in range(100):  # power iteration runs once per training-mode forward
        critic(x)
    critic.eval()
    for layer in (critic[0], critic[2]):
        raw = layer.parametrizations.weight.original
        sigma = torch.linalg.matrix_norm(raw.detach(), ord=2)
        torch.testing.assert_close(layer.weight.detach(), raw.detach() / sigma, rtol=1e-4, atol=1e-5)
        assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item() == pytest.approx(1.0, abs=1e-4)
