"""Plain step functions with explicit arguments, for library use (``wgan duality``, tests, benchmarks).

Each builds the engine :func:`wgan.engines.choose_engine` picks for its arguments and runs one step,
in the one order: zero grads, forward, loss (+ penalty), backward, all-reduce grads, optimiser step,
after_step. The trainer does not call these: it chooses its engine once per run and keeps it.

They return detached statistics tensors and never synchronise with the host (no ``.item()``).
"""

from __future__ import annotations

import torch
from torch import nn

from wgan.engines import choose_engine
from wgan.lipschitz import LipschitzMethod
from wgan.objectives import Objective
from wgan.training.distributed import Comm


def critic_step(critic: nn.Module, generator: nn.Module, critic_opt: torch.optim.Optimizer,
                objective: Objective, lipschitz: LipschitzMethod, comm: Comm,
                x_real: torch.Tensor, z: torch.Tensor, rng: torch.Generator | None,
                apply_penalty: bool = True) -> dict[str, torch.Tensor]:
    """One critic update. Critic: maximise E[f(x_real)] - E[f(G(z))] (or the objective's form).

    ``x_fake = G(z)`` without a graph; the penalty (when ``apply_penalty``) at interpolates drawn from
    ``rng``. Returns ``loss/critic``, ``critic/gap`` (the W1 estimate), the penalty's
    ``lipschitz/penalty`` and ``lipschitz/grad_norm_mean`` (when there is one) and ``loss/critic_total``.
    """
    engine = choose_engine(generator, critic, objective, lipschitz, (critic_opt, None), comm)
    return engine.critic_step(x_real, z, rng, apply_penalty)


def generator_step(generator: nn.Module, critic: nn.Module, gen_opt: torch.optim.Optimizer,
                   objective: Objective, comm: Comm, z: torch.Tensor) -> dict[str, torch.Tensor]:
    """One generator update. Generator: minimise the objective's generator loss on f(G(z)); the critic
    is frozen (gradients flow through it, not into it). Returns ``loss/generator``."""
    engine = choose_engine(generator, critic, objective, LipschitzMethod(), (None, gen_opt), comm)
    return engine.generator_step(z)
