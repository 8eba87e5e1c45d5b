"""Engines: how one critic step and one generator step of a run are computed.

* ``compiled`` (:mod:`~wgan.engines.compiled`): MLP steps in single C++ calls, up to a whole round with
  both Adam updates (``native.py``, ``csrc/mlp.cpp``); for MLP stacks on a CPU with the Wasserstein
  objective (and the gradient penalty, for the critic step);
* ``written_out`` (:mod:`~wgan.engines.written_out`): the penalised critic step with no autograd graph
  of the critic (``fastgrad.py``); for critics declaring a stack of Linear / Conv2d / (Leaky)ReLU layers
  and a penalty in closed form;
* ``autograd`` (:mod:`~wgan.engines.autograd`): everything, with a double backward for the penalty;
  for any nets and recipe.

:func:`choose_engine` takes the first in :data:`ENGINES` that applies, once per run; the trainer keeps
it (``Trainer.engine``). Applicability comes from what the parts declare, not from their classes: the
objective's closed-form score gradients (:attr:`wgan.objectives.Objective.critic_loss_grads`), the
Lipschitz method's closed-form penalty and after-step work
(:meth:`~wgan.lipschitz.LipschitzMethod.closed_form_penalty`,
:attr:`~wgan.lipschitz.LipschitzMethod.has_after_step`), and the nets' layer stacks
(:func:`wgan.engines.fastgrad.declared_stack`). Every engine gives the same losses and gradients up to
rounding and makes the same random draws (``tests/test_fastgrad.py``, ``tests/test_native.py``).

A new engine is one module with an :class:`Engine` subclass (its ``applies`` and the step parts it
computes) and one line in :data:`ENGINES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from wgan.engines.autograd import AutogradEngine
from wgan.engines.base import Engine
from wgan.engines.compiled import CompiledEngine
from wgan.engines.written_out import WrittenOutEngine
from wgan.lipschitz import LipschitzMethod
from wgan.objectives import Objective

if TYPE_CHECKING:
    from wgan.training.distributed import Comm

# Fastest first; the last applies to everything.
ENGINES: tuple[type[Engine], ...] = (CompiledEngine, WrittenOutEngine, AutogradEngine)


def choose_engine(generator: nn.Module, critic: nn.Module, objective: Objective, lipschitz: LipschitzMethod,
                  optimisers: tuple[torch.optim.Optimizer, torch.optim.Optimizer | None], comm: Comm) -> Engine:
    """The fastest engine that applies to these nets and this recipe, built for them.

    Args:
        generator, critic: the nets, on their device and in their dtype (the choice depends on both).
        objective, lipschitz: the recipe.
        optimisers: ``(critic_opt, gen_opt)``; ``gen_opt`` may be ``None`` for critic steps alone.
        comm: the process group.

    Example:
        >>> from wgan.lipschitz.gradient_penalty import GradientPenalty
        >>> from wgan.nets.conv import ConvCritic, ConvGenerator
        >>> from wgan.objectives import get_objective
        >>> from wgan.training.distributed import Comm
        >>> g, f = ConvGenerator(8, 1, 28, width=4), ConvCritic(1, 28, width=4)
        >>> opts = (torch.optim.Adam(f.parameters()), torch.optim.Adam(g.parameters()))
        >>> choose_engine(g, f, get_objective("wasserstein"), GradientPenalty(10.0), opts, Comm()).name
        'written_out'
        >>> choose_engine(g, f, get_objective("wasserstein"), GradientPenalty(10.0, fast=False), opts, Comm()).name
        'autograd'
    """
    for engine in ENGINES:
        if engine.applies(generator, critic, objective, lipschitz, comm):
            return engine(generator, critic, optimisers[0], optimisers[1], objective, lipschitz, comm)
    raise AssertionError("the last engine applies to everything")


__all__ = ["ENGINES", "AutogradEngine", "CompiledEngine", "Engine", "WrittenOutEngine", "choose_engine"]
