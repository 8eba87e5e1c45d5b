"""Plain step functions with explicit arguments, in one order:
zero grads, forward, loss (+ penalty), backward, all-reduce grads, optimiser step (:func:`optim.step`),
after_step.

They return detached statistics tensors and never synchronise with the host (no ``.item()``).
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from wgan.lipschitz import LipschitzMethod
from wgan.lipschitz.gradient_penalty import interpolate
from wgan.nets import native
from wgan.nets.fastgrad import NormPenalty, WassersteinScores
from wgan.objectives import Objective
from wgan.training import optim
from wgan.training.distributed import Comm


_INDEPENDENT: "weakref.WeakKeyDictionary[nn.Module, bool]" = weakref.WeakKeyDictionary()


def scores_samples_independently(critic: nn.Module) -> bool:
    """True when the critic's score of a sample does not depend on the rest of the batch (no BatchNorm),
    so real and fake batches may share one forward. Cached per critic."""
    ok = _INDEPENDENT.get(critic)
    if ok is None:
        ok = not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())
        _INDEPENDENT[critic] = ok
    return ok


# Closed-form score gradients by objective name, for the written-out backward (autograd's engine
# costs about as much as the arithmetic of a small critic step); others go through autograd.
_CLOSED_FORMS = {"wasserstein": WassersteinScores()}


def compiled_penalty(objective: Objective, lipschitz: LipschitzMethod) -> NormPenalty | None:
    """The penalty in closed form when the objective and method are those of the compiled critic step
    (the Wasserstein loss and the gradient penalty), else ``None``."""
    if objective.name != "wasserstein":
        return None
    return getattr(lipschitz, "norm_penalty", lambda: None)()


def critic_step(critic: nn.Module, generator: nn.Module, critic_opt: torch.optim.Optimizer,
                objective: Objective, lipschitz: LipschitzMethod, comm: Comm,
                x_real: torch.Tensor, z: torch.Tensor, rng: torch.Generator,
                apply_penalty: bool = True) -> dict[str, torch.Tensor]:
    """One critic update. Critic: maximise E[f(x_real)] - E[f(G(z))] (or the objective's form)."""
    optim.zero_grad(critic_opt)
    # MLPs, the Wasserstein loss and the gradient penalty on a CPU: the whole step in one compiled
    # call, the fake and interpolated rows made inside (tests/test_native.py)
    closed = compiled_penalty(objective, lipschitz) if apply_penalty else None
    out = native.wgan_gp_critic_step(generator, critic, x_real, z, rng, closed) if closed is not None else None
    if out is None:
        with torch.no_grad():
            x_fake = generator(z)  # the generator is not trained here: no graph through it
        x_hat = interpolate(x_real, x_fake, rng) if apply_penalty and lipschitz.needs_interpolates else None
        # Fast path: the method and the critic write the whole backward out (no autograd graph of the
        # critic); the same loss and gradients as the general path below (tests/test_fastgrad.py).
        fused = getattr(lipschitz, "penalised_backward", None) if apply_penalty else None
        out = (fused(critic, objective.critic_loss, x_real, x_fake, x_hat,
                     critic_loss_grad=_CLOSED_FORMS.get(objective.name)) if fused is not None else None)
    if out is not None:
        loss, score_real, score_fake, term, norms = out
        stats = {"loss/critic": loss, "critic/gap": score_real.mean() - score_fake.mean(),
                 "lipschitz/penalty": term, "lipschitz/grad_norm_mean": norms.mean()}
        comm.all_reduce_grads(critic.parameters())
        optim.step(critic_opt)
        lipschitz.after_step(critic)
        stats["loss/critic_total"] = loss + term
        return stats
    if scores_samples_independently(critic):
        # one forward over both batches: the same arithmetic, half the per-op overhead
        scores = critic(torch.cat([x_real, x_fake]))  # (2N,)
        score_real, score_fake = scores[: len(x_real)], scores[len(x_real):]
    else:  # BatchNorm: real and fake keep their own batch statistics
        score_real = critic(x_real)  # (N,)
        score_fake = critic(x_fake)  # (N,)
    loss = objective.critic_loss(score_real, score_fake)
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
    comm.all_reduce_grads(critic.parameters())
    optim.step(critic_opt)
    lipschitz.after_step(critic)
    stats["loss/critic_total"] = loss.detach()
    return stats


def generator_step(generator: nn.Module, critic: nn.Module, gen_opt: torch.optim.Optimizer,
                   objective: Objective, comm: Comm, z: torch.Tensor) -> dict[str, torch.Tensor]:
    """One generator update. Generator: minimise the objective's generator loss on f(G(z))."""
    optim.zero_grad(gen_opt)
    # MLPs and the Wasserstein loss on a CPU: one compiled call (the same loss and gradients)
    loss = native.wgan_generator_step(generator, critic, z) if objective.name == "wasserstein" else None
    if loss is None:
        critic.requires_grad_(False)  # the critic is frozen: gradients flow through it, not into it
        try:
            loss = objective.generator_loss(critic(generator(z)))
            loss.backward()
        finally:
            critic.requires_grad_(True)
    comm.all_reduce_grads(generator.parameters())
    optim.step(gen_opt)
    return {"loss/generator": loss.detach()}


def compiled_round(generator: nn.Module, critic: nn.Module, critic_opt: torch.optim.Optimizer,
                   gen_opt: torch.optim.Optimizer, objective: Objective, lipschitz: LipschitzMethod, comm: Comm):
    """A whole generator step in one compiled call, when it is what n_critic :func:`critic_step` calls and
    one :func:`generator_step` call would do: MLPs on a CPU, the Wasserstein loss, the gradient penalty
    on every step, one process, plain fused Adams (past their first step) and no after-step work.

    Returns ``run(x_reals, zs, alphas, z) -> (critic statistics summed over the steps, generator
    statistics)``, the draws made by the caller in the order the steps make them (x_real, z, then the
    interpolation weights as :func:`~wgan.lipschitz.gradient_penalty.interpolate` draws them, per critic
    step; then z); ``None`` when it does not apply (nothing drawn yet, so the steps one by one take over).
    """
    penalty = compiled_penalty(objective, lipschitz)
    if (penalty is None or comm.world_size > 1 or lipschitz.interval != 1
            or type(lipschitz).after_step is not LipschitzMethod.after_step):
        return None
    nets = native.generator_and_critic(generator, critic)
    if nets is None:
        return None
    c_params, g_params = native.parameters(nets[2]), native.parameters(nets[1])
    if not all(p.requires_grad for p in c_params + g_params):
        return None
    c_adam, g_adam = optim.fused_adam_args(critic_opt, c_params), optim.fused_adam_args(gen_opt, g_params)
    if c_adam is None or g_adam is None:
        return None

    def run(x_reals, zs, alphas, z):
        stats, gen_loss = native.wgan_gp_round(nets, x_reals, zs, alphas, z, penalty, c_adam, g_adam)
        sums = stats.sum(0)
        critic_stats = dict(zip(("loss/critic", "critic/gap", "lipschitz/penalty", "lipschitz/grad_norm_mean",
                                 "loss/critic_total"), sums.unbind()))
        return critic_stats, {"loss/generator": gen_loss}

    return run
