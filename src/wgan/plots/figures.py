"""Figures for the diagnostics and the report, returned as PNG bytes (matplotlib, Agg backend).

matplotlib is imported inside each function, never at import time.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from wgan.plots import _plt

# colours shared by the figures
C_GAP, C_W1, C_EVAL, C_NORM, C_PEN, C_REAL, C_FAKE = ("tab:blue", "k", "tab:cyan", "tab:purple", "tab:red",
                                                     "0.55", "tab:orange")


def fig_to_png(fig, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def _plain_log_ticks(axis) -> None:
    """Ticks of a log axis at 1-2-5 values written plainly (0.2, 0.5, 1, 2) instead of 2 x 10^-1."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    values = [m * 10.0 ** e for e in range(-4, 4) for m in (1, 2, 5)]
    axis.set_major_locator(FixedLocator(values))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def critic_contour_png(grid_x: np.ndarray, grid_y: np.ndarray, values: np.ndarray, x_real=None, x_fake=None,
                       centers=None, title: str = "") -> bytes:
    """Filled contours of the critic's value over a 2-D grid, with data and generated samples on top
    (as the WGAN-GP paper's toy figures, Gulrajani et al. 2017, fig. 2).

    Args:
        grid_x, grid_y: (H, W) coordinates (``numpy.meshgrid``).
        values: (H, W) critic scores at those points.
        x_real, x_fake: (N, 2) points or ``None``.
        centers: (K, 2) mode centres or ``None``.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    cs = ax.contourf(grid_x, grid_y, values, levels=30, cmap="viridis", alpha=0.85)
    ax.contour(grid_x, grid_y, values, levels=12, colors="w", linewidths=0.4, alpha=0.6)
    fig.colorbar(cs, ax=ax, label="critic value f(x)")
    if x_real is not None:
        ax.scatter(x_real[:, 0], x_real[:, 1], s=2, c=C_REAL, label="data")
    if x_fake is not None:
        ax.scatter(x_fake[:, 0], x_fake[:, 1], s=2, c=C_FAKE, alpha=0.7, label="generated")
    if centers is not None:
        ax.scatter(centers[:, 0], centers[:, 1], marker="x", c="r", s=30, label="centres")
    ax.set_xlim(grid_x.min(), grid_x.max())
    ax.set_ylim(grid_y.min(), grid_y.max())
    ax.set_aspect("equal")
    ax.set_title(title or "critic value", fontsize=10)
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
    fig.tight_layout()
    return fig_to_png(fig)


def w1_curves_png(steps, gap, w1, w1_floor: float | None = None, gap_eval=None, gap_normalized=None,
                  pearson: float | None = None, ratio: float | None = None) -> bytes:
    """The critic's W1 estimate against the exact W1 over the run: curves on the left, the estimate
    plotted against the exact value on the right (a straight line through 0 means the estimate is a
    fixed multiple of W1)."""
    plt = _plt()
    steps, gap, w1 = (np.asarray(a, dtype=float) for a in (steps, gap, w1))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax.plot(steps, gap, "-o", ms=3, c=C_GAP, label="critic gap E f(real) - E f(fake) (training)")
    if gap_eval is not None:
        ax.plot(steps, gap_eval, "-", c=C_EVAL, lw=1, label="critic gap on the evaluation samples")
    if gap_normalized is not None:
        ax.plot(steps, gap_normalized, "--", c=C_NORM, lw=1.2, label="gap / mean gradient norm")
    ax.plot(steps, w1, "-s", ms=3, c=C_W1, label="exact W1 (optimal transport)")
    if w1_floor:
        ax.axhline(w1_floor, c="0.5", ls=":", lw=1, label=f"W1 floor (data vs data) {w1_floor:.3f}")
    ax.set_xlabel("generator step")
    ax.set_ylabel("distance")
    ax.set_yscale("log" if np.all(gap > 0) and np.all(w1 > 0) and gap.max() / max(gap.min(), 1e-12) > 20 else "linear")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("W estimate vs exact W1", fontsize=10)
    sc = ax2.scatter(w1, gap, c=steps, cmap="viridis", s=18)
    fig.colorbar(sc, ax=ax2, label="step")
    lim = max(float(np.nanmax(w1)), 1e-9)
    if ratio is not None and np.isfinite(ratio):
        xs = np.linspace(0, lim, 10)
        ax2.plot(xs, ratio * xs, c="0.4", ls="--", lw=1, label=f"gap = {ratio:.2f} x W1 (median ratio)")
        ax2.legend(fontsize=7, loc="upper left")
    ax2.set_xlabel("exact W1")
    ax2.set_ylabel("critic gap")
    r = "n/a" if pearson is None else f"{pearson:.3f}"
    ax2.set_title(f"estimate vs truth: Pearson r = {r}", fontsize=10)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return fig_to_png(fig)


def training_curves_png(steps, curves: dict[str, Sequence[float]], title: str = "training curves") -> bytes:
    """One panel per named curve (W estimate, losses, Lipschitz constant), sharing the step axis."""
    plt = _plt()
    names = [k for k, v in curves.items() if v is not None and len(v)]
    n = max(1, len(names))
    fig, axes = plt.subplots(n, 1, figsize=(7, 1.9 * n + 0.4), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        s, v = curves[name] if isinstance(curves[name], tuple) else (steps, curves[name])
        ax.plot(s, v, "-o", ms=2.5, lw=1.2)
        ax.set_ylabel(name, fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    axes[-1, 0].set_xlabel("generator step")
    axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout()
    return fig_to_png(fig)


def penalty_png(steps, penalty=None, grad_norm_mean=None, grad_norm_min=None, grad_norm_max=None,
                lipschitz_empirical=None) -> bytes:
    """The Lipschitz picture over the run: the penalty term (left axis) and the gradient norms at
    interpolates with the empirical Lipschitz constant (right panel), the target 1 marked."""
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    if penalty is not None and len(penalty):
        s, p = penalty
        ax.plot(s, p, "-o", ms=3, c=C_PEN)
        if np.all(np.asarray(p) > 0):
            ax.set_yscale("log")
        ax.set_title("gradient penalty term (weighted)", fontsize=10)
    else:
        ax.text(0.5, 0.5, "no penalty term in this run", ha="center", va="center", transform=ax.transAxes)
        ax.set_title("penalty", fontsize=10)
    ax.set_xlabel("generator step")
    ax.grid(alpha=0.3)
    if grad_norm_mean is not None and len(grad_norm_mean[0]):
        s, m = grad_norm_mean
        ax2.plot(s, m, "-o", ms=3, c=C_NORM, label="mean gradient norm at interpolates")
        if grad_norm_min is not None and grad_norm_max is not None:
            ax2.fill_between(grad_norm_min[0], grad_norm_min[1], grad_norm_max[1], color=C_NORM, alpha=0.15,
                             label="min .. max")
    if lipschitz_empirical is not None and len(lipschitz_empirical[0]):
        ax2.plot(*lipschitz_empirical, "-", c="k", lw=1, label="empirical Lipschitz constant")
    _norm_bands(ax2.axhspan, ax2.axhline, alpha=0.15, labels=True)
    ax2.set_yscale("log")
    _plain_log_ticks(ax2.yaxis)
    ax2.set_xlabel("generator step")
    ax2.set_title("gradient norms and Lipschitz constant", fontsize=10)
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig_to_png(fig)


def _norm_bands(span, line, alpha: float, labels: bool) -> None:
    """Shade the source's gradient-norm bands: |n - 1| < 0.1 excellent, < 0.3 acceptable; mark 1."""
    span(0.9, 1.1, color="tab:green", alpha=alpha, label="|n - 1| < 0.1 excellent" if labels else None)
    span(0.7, 0.9, color="gold", alpha=alpha, label="< 0.3 acceptable" if labels else None)
    span(1.1, 1.3, color="gold", alpha=alpha)
    line(1.0, c="tab:green", lw=1.2, label=None if labels else "target 1")


def grad_norm_hist_png(edges: Sequence[float], counts_last: Sequence[int], counts_first: Sequence[int] | None = None,
                       step_last: int | None = None, step_first: int | None = None) -> bytes:
    """Histogram of gradient norms at interpolates in the fixed log-spaced bins; the target 1 and
    the source's bands (excellent |n-1| < 0.1, acceptable < 0.3) shaded.

    ``counts_*`` have ``len(edges) + 1`` entries: below the first edge, the bins, at/above the last.
    """
    plt = _plt()
    edges = np.asarray(edges, dtype=float)
    fig, ax = plt.subplots(figsize=(7, 3.6))

    def draw(counts, label, color, alpha):
        c = np.asarray(counts, dtype=float)
        total = c.sum()
        if total <= 0:
            return
        frac = c[1:-1] / total
        ax.stairs(frac, edges, fill=True, alpha=alpha, color=color, label=label)
        if c[0] or c[-1]:
            ax.text(0.01, 0.95 if color == C_GAP else 0.87,
                    f"{label}: {c[0] / total:.1%} below {edges[0]:g}, {c[-1] / total:.1%} above {edges[-1]:g}",
                    transform=ax.transAxes, fontsize=7, va="top")

    if counts_first is not None:
        draw(counts_first, f"first tick (step {step_first})", "0.6", 0.5)
    draw(counts_last, f"last tick (step {step_last})", C_GAP, 0.65)
    _norm_bands(ax.axvspan, ax.axvline, alpha=0.2, labels=False)
    ax.set_xscale("log")
    nz = [np.nonzero(np.asarray(c)[1:-1])[0] for c in (counts_last, counts_first) if c is not None]
    nz = np.concatenate(nz) if nz else np.array([], dtype=int)
    if len(nz):
        lo, hi = edges[max(nz.min() - 2, 0)], edges[min(nz.max() + 3, len(edges) - 1)]
        ax.set_xlim(min(lo, 0.5), max(hi, 2.0))
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel("gradient norm of the critic at interpolates (all non-batch axes)")
    ax.set_ylabel("fraction of samples")
    ax.set_title("gradient-norm histogram", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig_to_png(fig)


def validation_gap_png(steps, gap_train, gap_val, gap_step=None) -> bytes:
    """Images: the critic gap on a training batch and on held-out real images (a widening distance
    means the critic memorises the training set)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    if gap_step is not None:
        ax.plot(*gap_step, "-", c="0.6", lw=1, label="critic gap in training steps")
    ax.plot(steps, gap_train, "-o", ms=3, c=C_GAP, label="gap, training images")
    ax.plot(steps, gap_val, "-s", ms=3, c=C_FAKE, label="gap, held-out images (validation)")
    ax.set_xlabel("generator step")
    ax.set_ylabel("critic gap")
    ax.set_title("W estimate on training vs held-out data", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig_to_png(fig)
