"""Every registered variant and Lipschitz method goes through real training steps."""

import copy

import pytest
import torch

from wgan.config import resolve
from wgan.lipschitz import LIPSCHITZ, build_lipschitz
from wgan.objectives import get_objective
from wgan.training.distributed import Comm
from wgan.training.steps import critic_step, generator_step
from wgan.training.trainer import Trainer
from wgan.variants import VARIANTS


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_trains_and_changes_both_nets(variant, tiny):
    trainer = Trainer(resolve({**tiny, "variant": variant, "steps": 3, "tick_every_steps": 3}))
    g0 = copy.deepcopy(trainer.generator.state_dict())
    c0 = copy.deepcopy(trainer.critic.state_dict())
    summary = trainer.train()
    assert summary["step"] == 3
    for before, net in ((g0, trainer.generator), (c0, trainer.critic)):
        after = net.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before), f"{variant}: a net did not move"
        assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert "metrics/modes" in summary and "metrics/w1" in summary


@pytest.mark.parametrize("method", LIPSCHITZ)
def test_every_lipschitz_method_through_a_critic_step(method, tiny, seed):
    cfg = resolve({**tiny, "variant": "wgan-gp", "gp_weight": 1.0, "clip_value": 0.01})
    trainer = Trainer(cfg)
    lip = build_lipschitz(method, cfg)
    critic = lip.wrap(copy.deepcopy(trainer.critic if method != "sn" else _plain_critic(trainer)))
    opt = torch.optim.SGD(critic.parameters(), lr=10.0)  # a big step, so clipping must act after it
    rng = torch.Generator().manual_seed(0)
    stats = critic_step(critic, trainer.generator, opt, get_objective("wasserstein"), lip, Comm(),
                        trainer.data.sample(32, rng), torch.randn(32, cfg.z_dim), rng)
    assert torch.isfinite(stats["loss/critic_total"])
    assert ("lipschitz/penalty" in stats) == (method == "gp")
    if method == "clip":
        assert max(p.abs().max().item() for p in critic.parameters()) <= 0.01 + 1e-12


def _plain_critic(trainer):
    from wgan.nets import build_nets

    return build_nets(trainer.config, trainer.data)[1]


def test_critic_is_frozen_during_generator_step(tiny, seed):
    trainer = Trainer(resolve({**tiny, "variant": "wgan-gp"}))
    critic_before = copy.deepcopy(trainer.critic.state_dict())
    generator_step(trainer.generator, trainer.critic, trainer.gen_opt, trainer.objective, Comm(),
                   torch.randn(32, trainer.config.z_dim))
    for k, v in trainer.critic.state_dict().items():
        assert torch.equal(v, critic_before[k])
    assert all(p.grad is None for p in trainer.critic.parameters())
    assert all(p.requires_grad for p in trainer.critic.parameters())  # unfrozen again afterwards


def test_lazy_penalty_applies_every_k_steps_with_gain_k(tiny):
    cfg = resolve({**tiny, "variant": "wgan-gp", "penalty_every": 4, "gp_weight": 2.0})
    lip = build_lipschitz("gp", cfg)
    assert lip.interval == 4
    trainer = Trainer(cfg)
    x = trainer.data.sample(32, torch.Generator().manual_seed(1))
    term, _ = lip.penalty(trainer.critic, x, x.flip(0), x)
    lip1 = build_lipschitz("gp", resolve({**tiny, "variant": "wgan-gp", "gp_weight": 2.0}))
    term1, _ = lip1.penalty(trainer.critic, x, x.flip(0), x)
    assert term.item() == pytest.approx(4 * term1.item(), rel=1e-6)
