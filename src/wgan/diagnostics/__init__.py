"""Critic diagnostics: gradient norms at interpolates, Lipschitz probes, the health verdict.

:func:`tick_diagnostics` runs once per tick (rank 0) and returns the values merged into the tick's
record in ``metrics.jsonl``:

=========================  ==========================================================================
``grad_norm/mean`` ...     mean, std, min, median, max of the critic's gradient norm at interpolates
``grad_norm/hist``         counts in the fixed bins of :data:`~wgan.diagnostics.gradnorm.GRAD_NORM_EDGES`
``grad_norm/verdict``      the source texts' reading: excellent, acceptable, poor (or n/a)
``lipschitz/empirical``    the largest secant slope over sampled pairs (a lower bound on Lip(f))
``critic/gap_eval``        toy data: the critic gap on the evaluation samples (fixed z, fresh data)
``critic/gap_val``         images: the critic gap on a held-out real batch (``x_test``) ...
``critic/gap_train``       ... and on a training batch against the same generated batch
=========================  ==========================================================================

The diagnostics change no state of the run: the critic and generator run in eval mode (spectral
norm's power iteration would otherwise move its vectors; BatchNorm its running statistics) and are
restored after; every random draw comes from a private ``torch.Generator`` seeded by
(``config.seed``, ``step``), never from the trainer's generator or the global one. So N steps and
N/2 + resume + N/2 stay bit-identical with diagnostics on. The values are read with one host
synchronisation per tick.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from wgan import stats
from wgan.diagnostics.gradnorm import GRAD_NORM_EDGES, grad_norm_stats, grad_norm_summary, grad_norm_verdict
from wgan.diagnostics.health import HealthCheck, HealthVerdict, health_verdict, run_health_verdict
from wgan.diagnostics.lipschitz_probe import empirical_lipschitz
from wgan.lipschitz.gradient_penalty import gradient_norms, input_gradient, interpolate
from wgan.seeds import derive_seed

__all__ = [
    "tick_diagnostics", "diagnostics_rng", "eval_mode", "GRAD_NORM_EDGES", "grad_norm_stats",
    "grad_norm_summary", "grad_norm_verdict", "empirical_lipschitz", "health_verdict", "run_health_verdict",
    "HealthVerdict", "HealthCheck",
]


def diagnostics_rng(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A private generator for the diagnostics of ``step``: the same draws on every run and resume."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, "diagnostics", step=step))


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` in eval mode and restore each submodule's own mode afterwards."""
    saved = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for m, mode in saved:
            m.training = mode


def tick_diagnostics(trainer) -> dict[str, Any]:
    """Diagnostics of the trainer's critic at this tick, as plain numbers for the tick record.

    Draws a fresh real batch and a generated batch (the trained generator, not the EMA copy: the one
    the critic is trained against), their interpolates, and measures there the gradient norms and
    the empirical Lipschitz constant; adds the critic gaps the data kind's evaluator defines (on the
    evaluation samples for toy data, on held-out images for images).

    Args:
        trainer: a :class:`wgan.training.trainer.Trainer` (uses ``critic``, ``generator``,
            ``sample_generator``, ``data``, ``lipschitz``, ``evaluator``, ``config``, ``step``, ``device``).

    Returns:
        ``{"grad_norm/mean": float, ..., "grad_norm/hist": [int], "grad_norm/verdict": str,
        "lipschitz/empirical": float, "critic/gap_eval" | "critic/gap_val", "critic/gap_train": float}``
    """
    config = trainer.config
    rng = diagnostics_rng(config.seed, trainer.step, trainer.device)
    n = trainer.evaluator.probe_samples(config.batch_size)
    critic, generator = trainer.critic, trainer.generator
    scalars: dict[str, torch.Tensor] = {}
    with eval_mode(critic, generator):
        x_real = trainer.data.sample(n, rng)
        z = torch.randn(n, config.z_dim, generator=rng, device=trainer.device)
        with torch.no_grad():
            x_fake = generator(z)
        x_hat = interpolate(x_real, x_fake, rng)
        grad = input_gradient(critic, x_hat, create_graph=False).detach()
        grad_stats = grad_norm_summary(gradient_norms(grad))
        for k in stats.GRAD_NORMS:
            scalars[k] = grad_stats[k.split("/", 1)[1]]
        scalars[stats.LIPSCHITZ_EMPIRICAL] = empirical_lipschitz(critic, x_real, x_fake, x_hat, grad, rng)
        scalars.update(trainer.evaluator.critic_gaps(critic, trainer.sample_generator, x_real, x_fake, rng))
    keys = list(scalars)
    packed = torch.cat([torch.stack([scalars[k].double() for k in keys]), grad_stats["hist"].double()])
    values = packed.tolist()  # the diagnostics' one host-device sync per tick
    out: dict[str, Any] = dict(zip(keys, values[:len(keys)]))
    out[stats.GN_HIST] = [int(c) for c in values[len(keys):]]
    out[stats.GN_VERDICT] = grad_norm_verdict(out[stats.GN_MEAN], trainer.lipschitz.name).level
    return out

