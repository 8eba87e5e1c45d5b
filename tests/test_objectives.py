import math

import pytest
import torch

from wgan.objectives import OBJECTIVES, get_objective


def test_wasserstein_losses_are_the_negated_gap_and_negated_fake_mean():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.5, -0.5])
    obj = get_objective("wasserstein")
    assert obj.critic_loss(real, fake).item() == pytest.approx(-(2.0 - 0.0))
    assert obj.generator_loss(fake).item() == pytest.approx(0.0)
    assert obj.wasserstein_gap


def test_minimax_and_non_saturating_match_log_sigmoid_formulas():
    real, fake = torch.tensor([0.3, -1.2]), torch.tensor([2.0, -0.7])
    d = torch.sigmoid
    expected_d = -(torch.log(d(real)).mean() + torch.log(1 - d(fake)).mean())
    for name in ("minimax", "non_saturating"):
        assert get_objective(name).critic_loss(real, fake).item() == pytest.approx(expected_d.item(), rel=1e-6)
    assert get_objective("minimax").generator_loss(fake).item() == pytest.approx(
        torch.log(1 - d(fake)).mean().item(), rel=1e-6)
    assert get_objective("non_saturating").generator_loss(fake).item() == pytest.approx(
        -torch.log(d(fake)).mean().item(), rel=1e-6)


def test_optimal_discriminator_value_is_minus_2_log_2_at_equal_scores():
    # D = 1/2 everywhere (score 0): the minimax critic loss is 2 log 2 (Goodfellow et al., theorem 1)
    z = torch.zeros(5)
    assert get_objective("minimax").critic_loss(z, z).item() == pytest.approx(2 * math.log(2))


def test_hinge():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    obj = get_objective("hinge")
    # real: max(0, 1-2)=0, max(0, 0.5)=0.5 -> 0.25; fake: max(0,-1)=0, max(0,1)=1 -> 0.5
    assert obj.critic_loss(real, fake).item() == pytest.approx(0.75)
    assert obj.generator_loss(fake).item() == pytest.approx(1.0)


def test_unknown_objective_names_the_accepted_ones():
    with pytest.raises(ValueError, match="wasserstein"):
        get_objective("nope")
    assert set(OBJECTIVES) == {"wasserstein", "minimax", "non_saturating", "hinge"}


@pytest.mark.parametrize("name", [name for name, obj in OBJECTIVES.items() if obj.critic_loss_grads is not None])
def test_closed_form_score_gradients_equal_autograd(name):
    """An objective's closed-form critic loss and score gradients (used by the written-out and compiled
    engines instead of autograd) against the loss itself and autograd's gradients, unequal batch sizes."""
    obj = get_objective(name)
    g = torch.Generator().manual_seed(0)
    real = torch.randn(7, dtype=torch.float64, generator=g).requires_grad_(True)
    fake = torch.randn(5, dtype=torch.float64, generator=g).requires_grad_(True)
    loss = obj.critic_loss(real, fake)
    d_real, d_fake = torch.autograd.grad(loss, [real, fake])
    got = obj.critic_loss_grads(real.detach(), fake.detach())
    for a, b in zip(got, (loss.detach(), d_real, d_fake)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


def test_wasserstein_has_its_closed_form():
    assert get_objective("wasserstein").critic_loss_grads is not None
