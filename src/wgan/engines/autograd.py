"""The general engine: autograd, with a double backward for a penalty on the input gradient.

It applies to any nets, objective and Lipschitz method; the others are faster where they apply.
"""

from __future__ import annotations

import torch
from torch import nn

from wgan.engines.base import Engine, Stats
from wgan.lipschitz.gradient_penalty import interpolate


def scores_samples_independently(critic: nn.Module) -> bool:
    """True when the critic's score of a sample does not depend on the rest of the batch (no BatchNorm),
    so real and fake batches may share one forward."""
    return not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())


class AutogradEngine(Engine):
    """Every step through autograd: the Lipschitz method's :meth:`~wgan.lipschitz.LipschitzMethod.penalty`
    (a ``create_graph=True`` input gradient for the gradient penalty) and ``loss.backward()``."""

    name = "autograd"

    @staticmethod
    def applies(generator, critic, objective, lipschitz, comm) -> bool:
        return True

    def __init__(self, generator, critic, critic_opt, gen_opt, objective, lipschitz, comm):
        super().__init__(generator, critic, critic_opt, gen_opt, objective, lipschitz, comm)
        self.one_forward = scores_samples_independently(critic)

    def fake(self, z: torch.Tensor) -> torch.Tensor:
        """``G(z)`` without a graph: the generator is not trained in a critic step."""
        with torch.no_grad():
            return self.generator(z)

    def critic_backward(self, x_real, z, rng, apply_penalty) -> Stats:
        critic, lipschitz = self.critic, self.lipschitz
        x_fake = self.fake(z)
        x_hat = interpolate(x_real, x_fake, rng) if apply_penalty and lipschitz.needs_interpolates else None
        if self.one_forward:
            # one forward over both batches: the same arithmetic, half the per-op overhead
            scores = critic(torch.cat([x_real, x_fake]))  # (2N,)
            score_real, score_fake = scores[: len(x_real)], scores[len(x_real):]
        else:  # BatchNorm: real and fake keep their own batch statistics
            score_real = critic(x_real)  # (N,)
            score_fake = critic(x_fake)  # (N,)
        loss = self.objective.critic_loss(score_real, score_fake)
        stats = {"loss/critic": loss.detach(),
                 "critic/gap": (score_real.mean() - score_fake.mean()).detach()}  # the W1 estimate
        if apply_penalty:
            out = lipschitz.penalty(critic, x_real, x_fake, x_hat)
            if out is not None:
                term, norms = out
                loss = loss + term
                stats["lipschitz/penalty"] = term.detach()
                stats["lipschitz/grad_norm_mean"] = norms.detach().mean()
        loss.backward()
        stats["loss/critic_total"] = loss.detach()
        return stats

    def generator_backward(self, z) -> torch.Tensor:
        critic = self.critic
        critic.requires_grad_(False)  # the critic is frozen: gradients flow through it, not into it
        try:
            loss = self.objective.generator_loss(critic(self.generator(z)))
            loss.backward()
        finally:
            critic.requires_grad_(True)
        return loss.detach()
