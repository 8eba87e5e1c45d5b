"""The written-out engine: the penalised critic step with no autograd graph of the critic.

For a critic that declares a plain layer stack the written-out backward supports
(:func:`wgan.engines.fastgrad.declared_stack`, :func:`~wgan.engines.fastgrad.supports`: the project's
MLP and conv critics without normalisation or spectral norm), and a Lipschitz method whose penalty at
interpolates has a closed form (:meth:`~wgan.lipschitz.LipschitzMethod.closed_form_penalty`), the
penalised critic step is :func:`wgan.engines.fastgrad.penalised_loss_backward`: one forward over the
stacked rows, one first-order pass for the penalty's gradient. The objective's closed-form score
gradients (:attr:`wgan.objectives.Objective.critic_loss_grads`) replace autograd on the scores when it
has them. Steps without a penalty, and the generator step, are autograd's.
"""

from __future__ import annotations

import wgan.engines.fastgrad as fastgrad
from wgan.engines.autograd import AutogradEngine
from wgan.engines.base import Stats
from wgan.lipschitz.gradient_penalty import interpolate


def written_out_critic(critic, lipschitz) -> tuple | None:
    """``(net, rows, closed-form penalty)`` when the penalised critic step can be written out, else ``None``."""
    penalty = lipschitz.closed_form_penalty()
    stack = fastgrad.declared_stack(critic)
    if penalty is None or not lipschitz.needs_interpolates or stack is None or not fastgrad.supports(stack[0]):
        return None
    return stack[0], stack[1], penalty


class WrittenOutEngine(AutogradEngine):
    """Penalised critic steps by the written-out backward; everything else as :class:`AutogradEngine`."""

    name = "written_out"

    @staticmethod
    def applies(generator, critic, objective, lipschitz, comm) -> bool:
        return written_out_critic(critic, lipschitz) is not None

    def __init__(self, generator, critic, critic_opt, gen_opt, objective, lipschitz, comm):
        super().__init__(generator, critic, critic_opt, gen_opt, objective, lipschitz, comm)
        self.written_out = written_out_critic(critic, lipschitz)  # None: autograd's critic step

    def critic_backward(self, x_real, z, rng, apply_penalty) -> Stats:
        if not apply_penalty or self.written_out is None:
            return super().critic_backward(x_real, z, rng, apply_penalty)
        net, rows, penalty = self.written_out
        x_fake = self.fake(z)
        x_hat = interpolate(x_real, x_fake, rng)
        gradient_loss_grad = penalty
        if rows:  # the net sees rows (N, d); the penalty sees the input gradient shaped like x_hat
            shape = x_hat.shape
            x_real, x_fake, x_hat = x_real.flatten(1), x_fake.flatten(1), x_hat.flatten(1)
            if len(shape) > 2:
                def gradient_loss_grad(g):
                    value, aux, d_g = penalty(g.view(shape))
                    return value, aux, d_g.reshape(g.shape)
        loss, score_real, score_fake, term, norms = fastgrad.penalised_loss_backward(
            net, x_real, x_fake, x_hat, self.objective.critic_loss, None,
            critic_loss_grad=self.objective.critic_loss_grads, gradient_loss_grad=gradient_loss_grad, check=False)
        return {"loss/critic": loss, "critic/gap": score_real.mean() - score_fake.mean(), "lipschitz/penalty": term,
                "lipschitz/grad_norm_mean": norms.mean(), "loss/critic_total": loss + term}
