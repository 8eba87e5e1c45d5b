r"""Every seed of a run, derived from ``config.seed`` in one place.

A run draws from several independent streams: the initial weights, the training loop (one per
rank), the fixed latent batch of the samples, the evaluation's data and latents, the diagnostics of
each tick. Each stream has a *purpose*; :func:`derive_seed` turns (seed, purpose, rank, step) into
the stream's seed with one formula,

.. math:: s = (\text{seed} \cdot m_p + c_p + \text{rank} + 7919\, \text{step}) \bmod 2^{63},

where :math:`(m_p, c_p)` is the purpose's pair in :data:`PURPOSES`. The pairs reproduce the streams
of earlier versions, so results already seen stay the same.

Example:
    >>> g = torch.Generator().manual_seed(derive_seed(3, "fixed_z"))  # doctest: +SKIP
"""

from __future__ import annotations

# purpose -> (multiplier, offset) of the seed
PURPOSES: dict[str, tuple[int, int]] = {
    "init": (1, 0),  # initial weights (and the data set's own draws while it is built)
    "loop": (1_000_003, 17),  # the training loop: data draws, z, interpolation coefficients (per rank)
    "fixed_z": (1, 1),  # the fixed latent batch of the samples (and of the toy evaluation)
    "eval_data": (7, 3),  # toy evaluation: the fresh data samples, the same at every tick
    "w1_floor": (7, 5),  # toy evaluation: the two data sets of the W1 floor
    "fd_floor": (7, 11),  # image evaluation: the training images of the Fréchet-distance floor
    "eval_z": (7, 13),  # image evaluation: the latent batch of the generated images
    "diagnostics": (1_000_003, 0x5EED),  # the tick's diagnostics (with the step)
}


def derive_seed(seed: int, purpose: str, rank: int = 0, step: int = 0) -> int:
    """The seed of the stream ``purpose`` of the run seeded ``seed``.

    Args:
        seed: ``config.seed``.
        purpose: a key of :data:`PURPOSES`.
        rank: the process's rank (per-rank streams).
        step: the generator step (per-step streams: the diagnostics; the loop reseeded after a
            resume on another world size).

    Returns:
        A seed in ``[0, 2**63)``.

    Raises:
        KeyError: an unknown purpose.
    """
    mult, offset = PURPOSES[purpose]
    return (int(seed) * mult + offset + int(rank) + 7_919 * int(step)) % (2 ** 63)
