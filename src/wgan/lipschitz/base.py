"""The base of every Lipschitz method: hooks that do nothing, construction and validation from a
config, the gradient norm it aims for, and the advice the diagnostics print for it.

The trainer, the engines and the diagnostics know no method by name: they call these hooks and read
these attributes. The base class itself is "no constraint" with generic advice; it stands in for a
method name that is not registered (an old run), so its texts must not name a method.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class LipschitzMethod:
    """Base: no constraint, and the generic description of an unknown method.

    Hooks (the trainer and the engines call them; each does nothing here):

    * ``wrap(critic)`` once, before the optimiser is built (spectral normalisation);
    * ``penalty(critic, x_real, x_fake, x_hat)`` in every critic step (gradient penalty); returns the
      weighted term to add to the loss and the per-sample gradient norms at ``x_hat`` (or ``None``);
    * ``after_step(critic)`` after every critic optimiser step (weight clipping);
    * ``closed_form_penalty()`` the penalty as a function of the critic's input gradient, for the
      engines that write the critic's backward out (``None``: only ``penalty``).

    A subclass also owns :meth:`from_config` (its construction from a
    :class:`~wgan.config.TrainConfig`), :meth:`check_config` (its fields' validation), the gradient
    norm at interpolates it aims for (:attr:`grad_norm_target`) and the advice texts below.
    """

    name: ClassVar[str] = "none"
    needs_interpolates: ClassVar[bool] = False  # the step draws x_hat = a x_real + (1 - a) x_fake only when True
    interval = 1  # lazy regularisation: penalty every `interval` critic steps with gain `interval`
    has_after_step: ClassVar[bool] = False  # True when after_step does something (an engine that fuses the
    #                                         optimiser steps of a whole round, wgan.engines.compiled, cannot
    #                                         call it between them)

    #: Config fields holding this method's coefficients, with the source paper's values (used where no
    #: variant sets them: the common tests, ``wgan duality``'s record of its settings).
    coefficients: ClassVar[dict[str, Any]] = {}

    # --- what the diagnostics read (wgan.diagnostics.gradnorm, wgan.diagnostics.health, wgan.duality)
    #: The gradient norm at interpolates this method drives the critic to; ``None``: no target (the
    #: verdict on the norm is then "n/a" with :attr:`grad_norm_reading`).
    grad_norm_target: ClassVar[float | None] = None
    grad_norm_reading: ClassVar[str] = "no gradient-norm target is known for this Lipschitz method"
    grad_norm_remedy: ClassVar[str] = ""  # with no target: what to change, if anything
    remedy_above_target: ClassVar[str] = ""  # the mean norm is above the target
    remedy_below_target: ClassVar[str] = ""  # ... below it
    #: The critic's estimate grows or oscillates instead of measuring a distance.
    remedy_unstable: ClassVar[str] = ("strengthen the Lipschitz constraint (a larger --gp-weight, a smaller "
                                      "--clip-value) or lower --lr-c")
    #: A loss or the estimate explodes.
    remedy_explosion: ClassVar[str] = ("increase the penalty weight (--gp-weight), lower the learning rates, "
                                       "check the data scale")
    #: How ``wgan duality`` reads the dual estimate of a critic under this method; ``None``: the method
    #: bounds no Lipschitz constant, and ``wgan duality`` does not offer it.
    duality_reading: ClassVar[str | None] = None

    # --- construction and validation
    @classmethod
    def from_config(cls, config) -> LipschitzMethod:
        """The method with the coefficients of a validated config (a :class:`~wgan.config.TrainConfig`)."""
        return cls()

    @classmethod
    def check_config(cls, config, variant: str | None = None) -> None:
        """Raise :class:`~wgan.errors.ConfigError` for a bad value of a field this method reads.

        Called for every registered method (``variant`` None: check only the values that are set), and
        once more with the variant's name for the method the variant uses (then a coefficient it needs
        must be set, and the rest of the config must suit it).
        """

    # --- hooks
    def wrap(self, critic: nn.Module) -> nn.Module:
        return critic

    def penalty(self, critic: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor,
                x_hat: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None

    def after_step(self, critic: nn.Module) -> None:
        return None

    def closed_form_penalty(self):
        """The penalty as a closed-form function of the critic's input gradient at ``x_hat``, with its
        derivative: ``g -> (value, norms, d value / d g)`` (weighted as :meth:`penalty`'s term), for the
        engines that write the critic's backward out (:mod:`wgan.engines`); ``None``: only :meth:`penalty`."""
        return None

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class NoConstraint(LipschitzMethod):
    """No Lipschitz constraint: the vanilla GAN's discriminator (its scores are logits)."""

    name = "none"
    grad_norm_reading = ("no Lipschitz constraint (vanilla GAN): the scores are logits and their gap is no "
                         "distance estimate")
    remedy_unstable = "use a Lipschitz method: --variant wgan-gp or sngan"
    remedy_explosion = "use a Lipschitz constraint (--variant wgan-gp or sngan) or lower the learning rates"
