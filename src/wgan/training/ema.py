r"""Exponential moving average of generator weights (Yazici et al., "The Unusual Effectiveness of
Averaging in GAN Training", ICLR 2019), with a warm-up.

.. math::
    \bar\theta_t = \beta_t \bar\theta_{t-1} + (1 - \beta_t) \theta_t, \qquad
    \beta_t = \min\Bigl(\beta, \frac{t}{t + 9}\Bigr) \quad\text{after the } t\text{-th generator step}

The average starts as a copy of the initial (random) weights :math:`\theta_0`. With a constant
:math:`\beta = 0.999` their share after :math:`t` updates is :math:`\beta^t`: still 22% at step 1,500,
where the toy preset's averaged generator found 1 of 8 modes while the trained one had all 8. The
warm-up is TensorFlow's ``tf.train.ExponentialMovingAverage(decay, num_updates)``, whose decay is
:math:`\min(\beta, (1 + n) / (10 + n))` with :math:`n = t - 1` updates done before this one. It
averages over about the last :math:`t / 9` steps until that window reaches :math:`1 / (1 - \beta)`
(step 8,991 for 0.999), and the initial weights' share after :math:`t` updates is

.. math:: \prod_{s=1}^{t} \beta_s \le \prod_{s=1}^{t} \frac{s}{s + 9} = \frac{t!\, 9!}{(t + 9)!}
          = \binom{t + 9}{9}^{-1}

(1/10 after one update, 1.1e-5 after ten, 2.3e-13 after a hundred). We chose it over a
bias-corrected average (Adam's :math:`1 / (1 - \beta^t)`), which drops :math:`\theta_0` at once but
then weighs every early iterate about equally (the first 500 of 1,500 steps would still hold 19%
of the average), and over StyleGAN2-ADA's ``ema_rampup`` (a half-life of 5% of the images seen),
which ramps in the same way but needs the batch size; the TF form is one line and its bound is
exact.

References:
    TensorFlow, ``tf.compat.v1.train.ExponentialMovingAverage`` (``num_updates``).
    Karras et al., "Training Generative Adversarial Networks with Limited Data", NeurIPS 2020
    (``training/training_loop.py``: ``ema_rampup``).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

WARMUP_OFFSET = 9  # beta_t = t / (t + 9): TF's (1 + num_updates) / (10 + num_updates)


class EMA:
    """A frozen copy of ``module`` whose floating parameters track it with decay ``decay`` after a
    warm-up (see the module docstring); buffers (e.g. BatchNorm statistics) are copied, not averaged.

    Args:
        module: the network to average; copied at construction.
        decay: :math:`\\beta` in [0, 1), reached after the warm-up.

    Attributes:
        updates: how many times :meth:`update` ran (:math:`t`); with the average, what a resumed
            run needs to continue exactly (:meth:`load_state_dict`).
    """

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        self.updates = 0

    def decay_at(self, t: int) -> float:
        """:math:`\\beta_t`, the weight of the old average in the ``t``-th update (``t`` >= 1)."""
        return min(self.decay, t / (t + WARMUP_OFFSET))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        ema_p = list(self.module.parameters())
        torch._foreach_lerp_(ema_p, list(module.parameters()), 1.0 - self.decay_at(self.updates))
        for b_ema, b in zip(self.module.buffers(), module.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict:
        """The averaged module's own state dict: checkpoints store it under ``"ema"``, and
        ``wgan export`` and ``wgan sample`` load it into a generator as it is, so the update count
        is not in it (see :attr:`updates`)."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict, updates: int | None = None) -> None:
        """Load the averaged weights and the update count.

        Args:
            state: what :meth:`state_dict` returned.
            updates: :attr:`updates` when ``state`` was saved. ``None`` (checkpoints written
                before the warm-up existed carry no count) counts the average as warmed up: it was
                built with the constant decay, which is what it then continues with.
        """
        self.module.load_state_dict(state)
        # past the warm-up, decay_at(t) == decay for every later t: the old behaviour
        self.updates = int(updates) if updates is not None else self._warmed_up_updates()

    def _warmed_up_updates(self) -> int:
        # decay_at(s) == decay for every s >= 9 decay / (1 - decay); the next update, ceil(that) + 1, is past
        # the bound by at least 1, far more than its float rounding
        return math.ceil(WARMUP_OFFSET * self.decay / (1.0 - self.decay))
