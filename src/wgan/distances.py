r"""Distances between distributions: pure functions, arrays in, floats out.

``None`` weights mean uniform. Nothing here touches a device or the global RNG.
"""

from __future__ import annotations

import numpy as np

#: Largest sample count per side for :func:`wasserstein_exact` (the cost matrix is n x m float64).
EXACT_MAX_SAMPLES = 6000


def _as_1d(values, weights, name: str) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError(f"{name}_values is empty; give at least one value")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name}_values contains NaN or Inf")
    if weights is None:
        return v, np.full(v.size, 1.0 / v.size)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != v.shape:
        raise ValueError(f"{name}_weights has {w.size} entries for {v.size} values; they must match")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"{name}_weights must be finite, non-negative and not all zero")
    return v, w / w.sum()


def wasserstein_1d(u_values, v_values, u_weights=None, v_weights=None) -> float:
    r"""Wasserstein-1 distance between two 1-D distributions by the CDF formula.

    .. math:: W_1(u, v) = \int_{-\infty}^{\infty} |F_u(x) - F_v(x)|\, dx

    Exact for discrete distributions given as samples (uniform weights) or weighted support
    points: both CDFs are step functions, so the integral is a finite sum over the gaps between
    consecutive support points.

    Args:
        u_values, v_values: support points (any shape, flattened).
        u_weights, v_weights: non-negative masses, normalised to sum to 1; ``None`` = uniform.

    Returns:
        The distance, a Python float.

    Example:
        >>> wasserstein_1d([0, 1, 2], [2, 3, 4])
        2.0

    References:
        Villani, "Optimal Transport: Old and New", 2009, remark 2.19 (the 1-D formula);
        Arjovsky et al., "Wasserstein GAN", 2017, example 1 (W1(delta_0, delta_theta) = |theta|).
    """
    u, uw = _as_1d(u_values, u_weights, "u")
    v, vw = _as_1d(v_values, v_weights, "v")
    allv = np.concatenate([u, v])
    order = np.argsort(allv, kind="mergesort")
    allv = allv[order]
    mass = np.concatenate([uw, -vw])[order]  # +u mass, -v mass at each point
    gap = np.cumsum(mass)[:-1]  # F_u - F_v on each interval [x_i, x_{i+1})
    return float(np.sum(np.abs(gap) * np.diff(allv)))


def wasserstein_exact(x, y, x_weights=None, y_weights=None, max_samples: int = EXACT_MAX_SAMPLES) -> float:
    r"""Exact Wasserstein-1 distance between two sample sets in any dimension (Euclidean ground cost).

    .. math:: W_1(\mu, \nu) = \min_{\gamma \in \Pi(\mu, \nu)} \sum_{ij} \gamma_{ij} \|x_i - y_j\|_2

    Solved as a linear program by POT's network simplex (``ot.emd2``) on the Euclidean (not
    squared) distance matrix, so the result is W1, not W2 squared.

    Args:
        x: (n, d) or (n,) samples; y: (m, d) or (m,) samples.
        x_weights, y_weights: optional masses (uniform if ``None``).
        max_samples: refuse more samples per side than this (memory is n x m x 8 bytes).

    Returns:
        The distance, a Python float.

    Example:
        >>> wasserstein_exact([[0.0, 0.0]], [[3.0, 4.0]])
        5.0

    References:
        Kantorovich, 1942; Bonneel et al., "Displacement interpolation using Lagrangian mass
        transport", 2011 (the network simplex solver in POT).
    """
    import ot

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x.reshape(len(x), -1) if x.ndim != 1 else x[:, None]
    y = y.reshape(len(y), -1) if y.ndim != 1 else y[:, None]
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has dimension {x.shape[1]} and y has {y.shape[1]}; they must match")
    for name, s in (("x", x), ("y", y)):
        if len(s) == 0:
            raise ValueError(f"{name} is empty")
        if len(s) > max_samples:
            raise ValueError(f"{name} has {len(s)} samples; wasserstein_exact accepts at most "
                             f"max_samples={max_samples} per side (subsample, or raise max_samples)")
        if not np.all(np.isfinite(s)):
            raise ValueError(f"{name} contains NaN or Inf")
    a = np.full(len(x), 1.0 / len(x)) if x_weights is None else _as_1d(np.zeros(len(x)), x_weights, "x")[1]
    b = np.full(len(y), 1.0 / len(y)) if y_weights is None else _as_1d(np.zeros(len(y)), y_weights, "y")[1]
    cost = ot.dist(x, y, metric="euclidean")
    return float(ot.emd2(a, b, cost, numItermax=10_000_000))


def _as_prob(p, name: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if p.size == 0 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"{name} must be a non-empty vector of finite, non-negative masses, not all zero")
    return p / p.sum()


def kl_divergence(p, q) -> float:
    r"""Kullback-Leibler divergence of two discrete distributions on the same support (natural log).

    .. math:: KL(p \| q) = \sum_i p_i \log \frac{p_i}{q_i}

    Terms with :math:`p_i = 0` contribute 0; a :math:`p_i > 0` where :math:`q_i = 0` gives ``inf``.
    Inputs are normalised to sum to 1.

    Example:
        >>> kl_divergence([0.5, 0.5], [0.5, 0.5])
        0.0
    """
    p, q = _as_prob(p, "p"), _as_prob(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p has {p.size} entries and q has {q.size}; they must match")
    mask = p > 0
    if np.any(q[mask] == 0):
        return float("inf")
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def js_divergence(p, q) -> float:
    r"""Jensen-Shannon divergence of two discrete distributions (natural log, so at most log 2).

    .. math:: JS(p, q) = \tfrac12 KL(p \| m) + \tfrac12 KL(q \| m), \quad m = \tfrac12 (p + q)

    Disjoint supports give exactly :math:`\log 2`, however far apart they are: the saturation
    that starves the vanilla GAN's generator of gradient.

    Example:
        >>> round(js_divergence([1, 0], [0, 1]), 6)
        0.693147

    References:
        Lin, "Divergence measures based on the Shannon entropy", 1991;
        Goodfellow et al., "Generative Adversarial Nets", 2014, theorem 1.
    """
    p, q = _as_prob(p, "p"), _as_prob(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p has {p.size} entries and q has {q.size}; they must match")
    m = 0.5 * (p + q)
    return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)
