"""The interface every engine implements, and the order of a step that they all share.

A step is, in this order: zero grads, forward, loss (+ penalty), backward, all-reduce grads, optimiser
step (:func:`wgan.engines.optim.step`), ``lipschitz.after_step``. :class:`Engine` fixes the order; an
engine supplies the middle (forward to backward) of the critic step and of the generator step, and may
run a whole generator step at once (:meth:`Engine.round`).

Steps return detached statistics tensors and never synchronise with the host (no ``.item()``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

import wgan.engines.optim as optim
from wgan.lipschitz import LipschitzMethod
from wgan.objectives import Objective

if TYPE_CHECKING:
    from wgan.training.distributed import Comm

Stats = dict[str, torch.Tensor]


class Engine:
    """How the critic and generator steps of one run are computed.

    An engine is built once per run for its nets, optimisers, objective, Lipschitz method and process
    group (:func:`wgan.engines.choose_engine`); whatever it can decide from them it decides then, not
    at every step. Every engine gives the same losses, statistics and gradients up to rounding (the
    tests compare each with autograd's double backward) and makes the same random draws.

    Args:
        generator, critic: the nets.
        critic_opt, gen_opt: their optimisers (``gen_opt`` may be ``None`` for critic steps alone).
        objective: the losses.
        lipschitz: the Lipschitz method.
        comm: the process group (its ``all_reduce_grads`` after every backward).

    Attributes:
        name: the engine's name (``"autograd"``, ``"written_out"``, ``"compiled"``).
        parallel_rows: True when the critic step cuts a batch into one block of rows per thread, so
            every core helps even a small net (the trainer's default thread count asks).
    """

    name = "engine"
    parallel_rows = False

    @staticmethod
    def applies(generator: nn.Module, critic: nn.Module, objective: Objective, lipschitz: LipschitzMethod,
                comm: Comm) -> bool:
        """True when this engine computes some part of the steps itself for these nets and this recipe
        (:func:`~wgan.engines.choose_engine` takes the first engine that does)."""
        raise NotImplementedError

    def __init__(self, generator: nn.Module, critic: nn.Module, critic_opt: torch.optim.Optimizer,
                 gen_opt: torch.optim.Optimizer | None, objective: Objective, lipschitz: LipschitzMethod, comm: Comm):
        self.generator, self.critic = generator, critic
        self.critic_opt, self.gen_opt = critic_opt, gen_opt
        self.objective, self.lipschitz, self.comm = objective, lipschitz, comm

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # ------------------------------------------------------------------ what an engine supplies
    def critic_backward(self, x_real: torch.Tensor, z: torch.Tensor, rng: torch.Generator | None,
                        apply_penalty: bool) -> Stats:
        """The critic's loss (+ penalty) and its gradients accumulated into ``.grad``; returns the
        statistics: ``loss/critic``, ``critic/gap``, (``lipschitz/penalty``,
        ``lipschitz/grad_norm_mean``,) ``loss/critic_total``, in this order."""
        raise NotImplementedError

    def generator_backward(self, z: torch.Tensor) -> torch.Tensor:
        """The generator's loss and its gradients accumulated into the generator's ``.grad`` (the critic's
        stay untouched); returns the loss, detached."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the steps, in one order
    def critic_step(self, x_real: torch.Tensor, z: torch.Tensor, rng: torch.Generator | None,
                    apply_penalty: bool = True) -> Stats:
        """One critic update. Critic: maximise E[f(x_real)] - E[f(G(z))] (or the objective's form)."""
        optim.zero_grad(self.critic_opt)
        stats = self.critic_backward(x_real, z, rng, apply_penalty)
        self.comm.all_reduce_grads(self.critic.parameters())
        optim.step(self.critic_opt)
        self.lipschitz.after_step(self.critic)
        return stats

    def generator_step(self, z: torch.Tensor) -> Stats:
        """One generator update. Generator: minimise the objective's generator loss on f(G(z))."""
        optim.zero_grad(self.gen_opt)
        loss = self.generator_backward(z)
        self.comm.all_reduce_grads(self.generator.parameters())
        optim.step(self.gen_opt)
        return {"loss/generator": loss}

    def round(self, draw_real: Callable[[], torch.Tensor], draw_z: Callable[[], torch.Tensor],
              rng: torch.Generator | None, n_critic: int, critic_iters: int) -> tuple[list[tuple[Stats, int]], Stats]:
        """A whole generator step: ``n_critic`` critic steps, then one generator step.

        The draws are made in this order: per critic step ``draw_real()``, ``draw_z()``, then the
        interpolation weights from ``rng`` (when the step has a penalty at interpolates); then
        ``draw_z()`` for the generator step. Critic step ``k`` is penalised when
        ``(critic_iters + k) % lipschitz.interval == 0`` (lazy regularisation).

        Returns:
            ``(critic statistics as (stats, count) pairs — stats summed over count steps —,
            generator statistics)``.
        """
        critic_stats = []
        for k in range(n_critic):
            x_real = draw_real()
            z = draw_z()
            apply_penalty = (critic_iters + k) % self.lipschitz.interval == 0
            critic_stats.append((self.critic_step(x_real, z, rng, apply_penalty), 1))
        return critic_stats, self.generator_step(draw_z())
