r"""The source texts' figure: Jensen-Shannon saturates at log 2 while W1 grows linearly.

Two sweeps, both computed with the library's own distances (:mod:`wgan.distances`):

* two unit Gaussians :math:`N(0, 1)` and :math:`N(d, 1)` moving apart, discretised on a fine grid:
  :math:`W_1 = d` exactly, while :math:`JS \to \log 2` as soon as they stop overlapping;
* two point masses :math:`\delta_0` and :math:`\delta_\theta`: :math:`W_1 = |\theta|`, and
  :math:`JS = \log 2` for every :math:`\theta \ne 0` (0 at :math:`\theta = 0`), a step with zero
  gradient almost everywhere (Arjovsky et al. 2017, example 1).

The sweeps are plain numpy (testable without matplotlib); only :func:`plot_js_vs_w1` imports it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from wgan.distances import js_divergence, wasserstein_1d
from wgan.plots import _plt, save_figure


def gaussian_sweep(shifts, grid_min: float = -10.0, grid_max: float = 22.0,
                   grid_points: int = 3201) -> dict[str, np.ndarray]:
    r"""JS and W1 between :math:`N(0, 1)` and :math:`N(d, 1)` for every shift ``d``.

    Both densities are discretised on one grid (masses proportional to the density at the grid
    points), so JS is the discrete divergence on a shared support and W1 comes from the CDF formula.

    .. math:: W_1(N(0, 1), N(d, 1)) = |d|, \qquad JS \uparrow \log 2 \text{ as } |d| \to \infty

    Args:
        shifts: the distances ``d`` between the means (each within the grid, with room for the tail).
        grid_min, grid_max, grid_points: the discretisation grid.

    Returns:
        ``{"shift", "js", "w1"}``: arrays of the same length as ``shifts``.

    Example:
        >>> s = gaussian_sweep([0.0, 4.0])
        >>> [round(float(w), 3) for w in s["w1"]]
        [0.0, 4.0]
    """
    shifts = np.asarray(shifts, dtype=np.float64).reshape(-1)
    x = np.linspace(grid_min, grid_max, grid_points)
    p = np.exp(-0.5 * x**2)
    js, w1 = [], []
    for d in shifts:
        q = np.exp(-0.5 * (x - d) ** 2)
        js.append(js_divergence(p, q))
        w1.append(wasserstein_1d(x, x, p, q))
    return {"shift": shifts, "js": np.array(js), "w1": np.array(w1)}


def point_mass_sweep(thetas) -> dict[str, np.ndarray]:
    r"""JS and W1 between the point masses :math:`\delta_0` and :math:`\delta_\theta`.

    .. math:: W_1(\delta_0, \delta_\theta) = |\theta|, \qquad
              JS(\delta_0, \delta_\theta) = \log 2 \;(\theta \ne 0), \; 0 \;(\theta = 0)

    JS is computed on the union of the two supports ({0, θ}, or {0} when θ = 0).

    Returns:
        ``{"theta", "js", "w1"}``.

    Example:
        >>> s = point_mass_sweep([-1.5, 0.0])
        >>> [float(w) for w in s["w1"]], [round(float(j), 4) for j in s["js"]]
        ([1.5, 0.0], [0.6931, 0.0])

    References:
        Arjovsky, Chintala, Bottou, "Wasserstein GAN", ICML 2017, example 1.
    """
    thetas = np.asarray(thetas, dtype=np.float64).reshape(-1)
    js, w1 = [], []
    for t in thetas:
        w1.append(wasserstein_1d([0.0], [t]))
        if t == 0:
            js.append(js_divergence([1.0], [1.0]))
        else:
            js.append(js_divergence([1.0, 0.0], [0.0, 1.0]))  # masses on the support (0, theta)
    return {"theta": thetas, "js": np.array(js), "w1": np.array(w1)}


def plot_js_vs_w1(path: str | Path, max_shift: float = 8.0, n: int = 161) -> dict[str, dict[str, np.ndarray]]:
    """Write the two-panel figure (Gaussians moving apart; point masses) to ``path``.

    Returns the sweeps that were drawn: ``{"gaussians": ..., "point_masses": ...}``.
    """
    gauss = gaussian_sweep(np.linspace(0.0, max_shift, n))
    point = point_mass_sweep(np.linspace(-2.0, 2.0, 2 * (n // 2) + 1))
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    log2 = math.log(2)

    ax = axes[0]
    ax.plot(gauss["shift"], gauss["w1"], color="tab:blue", lw=2, label=r"$W_1$ (CDF formula)")
    ax.set_xlabel(r"distance $d$ between the means of $N(0,1)$ and $N(d,1)$")
    ax.set_ylabel(r"$W_1$", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(gauss["shift"], gauss["js"], color="tab:red", lw=2, label="JS (natural log)")
    ax2.axhline(log2, color="tab:red", ls=":", lw=1)
    ax2.text(gauss["shift"][-1], log2 * 1.02, "log 2", color="tab:red", ha="right", va="bottom", fontsize=8)
    ax2.set_ylabel("JS", color="tab:red")
    ax2.set_ylim(0, log2 * 1.15)
    ax.set_title("two Gaussians moving apart: JS saturates, $W_1$ grows linearly", fontsize=9)
    lines = ax.get_lines()[:1] + ax2.get_lines()[:1]
    ax.legend(lines, [ln.get_label() for ln in lines], loc="center right", fontsize=8)

    ax = axes[1]
    ax.plot(point["theta"], point["w1"], color="tab:blue", lw=2, label=r"$W_1 = |\theta|$")
    for side, label in ((point["theta"] < 0, r"JS $= \log 2$ for $\theta \neq 0$, 0 at $\theta = 0$"),
                        (point["theta"] > 0, None)):
        ax.plot(point["theta"][side], point["js"][side], color="tab:red", lw=2, label=label)
    ax.plot([0.0], [0.0], "o", color="tab:red", ms=5)
    ax.plot([0.0], [log2], "o", color="tab:red", ms=5, mfc="white")
    ax.set_xlabel(r"$\theta$")
    ax.set_title(r"point masses $\delta_0$ and $\delta_\theta$", fontsize=9)
    ax.legend(loc="upper center", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return {"gaussians": gauss, "point_masses": point}
