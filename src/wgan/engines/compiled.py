"""The compiled engine: MLP steps in single C++ calls (:mod:`wgan.engines.native`), on a CPU.

It applies when the critic declares a plain MLP stack taking rows (``Linear``, then ``ReLU`` /
``LeakyReLU`` and ``Linear`` in turn, one output; :func:`wgan.engines.fastgrad.declared_stack`) with CPU
float parameters, and the extension is built. Each part runs compiled where its closed forms are the
ones written into ``csrc/mlp.cpp``, and otherwise as :class:`~wgan.engines.written_out.WrittenOutEngine`
(or autograd) runs it:

* the penalised critic step: the Wasserstein objective
  (:func:`wgan.objectives.wasserstein_critic_loss_grads`) and the norm penalty
  (:class:`wgan.lipschitz.gradient_penalty.NormPenalty`) — from the generator's noise when the
  generator is an MLP stack too, else on its samples;
* the generator step: the Wasserstein generator loss (:func:`wgan.objectives.wasserstein_generator_loss`)
  with MLP stacks for both nets; the generator's forward in the other critic steps likewise;
* the whole generator step (:meth:`CompiledEngine.round`: n_critic critic steps, the generator step and
  both Adam updates in one call, bit-identical to the steps one by one) when, besides, the penalty is
  on every step, the method has no after-step work, there is one process, every parameter is trained,
  and both optimisers are plain fused Adams (:func:`wgan.engines.optim.fused_adam_args`).
"""

from __future__ import annotations

import torch

import wgan.engines.native as native
import wgan.engines.optim as optim
from wgan.engines.base import Stats
from wgan.engines.fastgrad import declared_stack
from wgan.engines.written_out import WrittenOutEngine
from wgan.lipschitz.gradient_penalty import NormPenalty, interpolate
from wgan.objectives import wasserstein_critic_loss_grads, wasserstein_generator_loss

_ROUND_STATS = ("loss/critic", "critic/gap", "lipschitz/penalty", "lipschitz/grad_norm_mean", "loss/critic_total")


def _mlp_spec(module, rows_only: bool):
    """The compiled code's spec of a module's declared MLP stack, or ``None``."""
    stack = declared_stack(module)
    if stack is None or (rows_only and not stack[1]):
        return None
    spec = native.mlp_layers(stack[0])
    return spec if spec is not None and native.fits(spec) else None


def compiled_nets(generator, critic):
    """``(generator spec or None, critic spec)`` when the critic is an MLP stack the compiled code takes
    (and the extension is built); ``None`` otherwise. The generator's spec is given when it is an MLP
    stack too, of the critic's dtype, whose output is the critic's input."""
    c_spec = _mlp_spec(critic, rows_only=True)
    if c_spec is None or c_spec[0][-1].shape[0] != 1:
        return None
    g_spec = _mlp_spec(generator, rows_only=False)
    if g_spec is not None and (g_spec[0][0].dtype != c_spec[0][0].dtype
                               or g_spec[0][-1].shape[0] != c_spec[0][0].shape[1]
                               or getattr(generator, "out_shape", None) is None):
        g_spec = None
    if native.load() is None:
        return None
    return g_spec, c_spec


class CompiledEngine(WrittenOutEngine):
    """MLP steps compiled; see the module's docstring for which parts and when."""

    name = "compiled"

    @staticmethod
    def applies(generator, critic, objective, lipschitz, comm) -> bool:
        if not (_critic_part(objective, lipschitz) or objective.generator_loss is wasserstein_generator_loss):
            return False  # nothing to compile (and nothing to build)
        nets = compiled_nets(generator, critic)
        return nets is not None and (_critic_part(objective, lipschitz) or _generator_part(nets, objective))

    def __init__(self, generator, critic, critic_opt, gen_opt, objective, lipschitz, comm):
        super().__init__(generator, critic, critic_opt, gen_opt, objective, lipschitz, comm)
        nets = compiled_nets(generator, critic)
        assert nets is not None, "CompiledEngine built where it does not apply"
        self.g_spec, self.c_spec = nets
        self.compiled_critic = _critic_part(objective, lipschitz)
        self.compiled_generator = _generator_part(nets, objective)
        self.penalty: NormPenalty | None = lipschitz.closed_form_penalty() if self.compiled_critic else None
        self.parallel_rows = self.compiled_critic
        # the whole round: what n_critic critic_step calls and one generator_step call would do
        self.c_params, self.g_params = native.parameters(self.c_spec), (
            native.parameters(self.g_spec) if self.g_spec is not None else [])
        self.compiled_round = (
            self.compiled_critic and self.compiled_generator and lipschitz.interval == 1
            and not lipschitz.has_after_step and comm.world_size == 1
            and all(p.requires_grad for p in self.c_params + self.g_params)
            and gen_opt is not None and _plain_fused_adam_over(critic_opt, self.c_params)
            and _plain_fused_adam_over(gen_opt, self.g_params))

    def fake(self, z: torch.Tensor) -> torch.Tensor:
        if self.g_spec is None:
            return super().fake(z)
        with torch.no_grad():
            return native.forward(self.g_spec, z).view(len(z), *self.generator.out_shape)

    def critic_backward(self, x_real, z, rng, apply_penalty) -> Stats:
        if not (apply_penalty and self.compiled_critic):
            return super().critic_backward(x_real, z, rng, apply_penalty)
        rows = x_real.flatten(1)
        if self.g_spec is not None:  # the fake and interpolated rows made inside the compiled call
            out = native.wgan_gp_critic_step(self.g_spec, self.c_spec, rows, z, rng, self.penalty)
        else:
            x_fake = self.fake(z)
            x_hat = interpolate(x_real, x_fake, rng)
            out = native.wgan_gp_critic(self.c_spec, rows, x_fake.flatten(1), x_hat.flatten(1), self.penalty)
        loss, score_real, score_fake, term, norms = out
        return {"loss/critic": loss, "critic/gap": score_real.mean() - score_fake.mean(), "lipschitz/penalty": term,
                "lipschitz/grad_norm_mean": norms.mean(), "loss/critic_total": loss + term}

    def generator_backward(self, z) -> torch.Tensor:
        if not self.compiled_generator:
            return super().generator_backward(z)
        return native.wgan_generator_step(self.g_spec, self.c_spec, z)

    def round(self, draw_real, draw_z, rng, n_critic, critic_iters):
        # Adam makes its state at its first step, and load_state_dict (resume, rollback) replaces it:
        # read where it is now (a few dict lookups), never a copy kept from an earlier round.
        c_adam = optim.fused_adam_args(self.critic_opt, self.c_params) if self.compiled_round else None
        g_adam = optim.fused_adam_args(self.gen_opt, self.g_params) if c_adam is not None else None
        if g_adam is None:
            return super().round(draw_real, draw_z, rng, n_critic, critic_iters)
        # the draws the steps one by one make, in their order (the interpolation weights as
        # wgan.lipschitz.gradient_penalty.interpolate draws them)
        x_reals, zs, alphas = [], [], []
        for _ in range(n_critic):
            x_reals.append(draw_real())
            zs.append(draw_z())
            alphas.append(torch.rand(len(x_reals[-1]), generator=rng, dtype=x_reals[-1].dtype))
        z = draw_z()
        stats, gen_loss = native.wgan_gp_round(self.g_spec, self.c_spec, x_reals, zs, alphas, z, self.penalty,
                                               c_adam, g_adam)
        return [(dict(zip(_ROUND_STATS, stats.sum(0).unbind())), n_critic)], {"loss/generator": gen_loss}


def _critic_part(objective, lipschitz) -> bool:
    """The penalised critic step compiles: the Wasserstein objective and the norm penalty at interpolates."""
    return (objective.critic_loss_grads is wasserstein_critic_loss_grads and lipschitz.needs_interpolates
            and isinstance(lipschitz.closed_form_penalty(), NormPenalty))


def _generator_part(nets, objective) -> bool:
    """The generator step compiles: the Wasserstein generator loss, both nets MLP stacks."""
    return nets[0] is not None and objective.generator_loss is wasserstein_generator_loss


def _plain_fused_adam_over(opt, params) -> bool:
    """``opt.step()`` is one fused Adam kernel call over exactly ``params`` (its state may not exist yet)."""
    group = optim.plain_fused_adam(opt)
    return group is not None and len(group["params"]) == len(params) and {id(p) for p in group["params"]} == {
        id(p) for p in params}

