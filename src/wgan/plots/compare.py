"""The comparison figure: every variant's samples side by side, above its W-estimate curves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from wgan.plots import _plt
from wgan.plots.figures import fig_to_png
from wgan.plots.grid import make_grid


def _finite(values) -> np.ndarray:
    return np.array([v if isinstance(v, (int, float)) and v is not None else np.nan for v in values], dtype=float)


def compare_png(panels: Sequence[dict[str, Any]], x_real=None, centers=None, title: str = "",
                floor: float | None = None, distance_label: str = "exact W1") -> bytes:
    """One column per variant: final samples on top, W-estimate curves below.

    Args:
        panels: per variant ``{"variant", "samples" (toy (n, 2) or images (N, C, H, W), or None),
            "seed", "curves": [{"seed", "ok", "steps", "gap", "distance"}], "errors": [str]}``.
        x_real: (n, 2) data samples drawn in grey behind toy samples.
        centers: (K, 2) mode centres (crosses).
        title: the figure title.
        floor: the distance of a perfect generator (dotted line), if known.
        distance_label: what ``distance`` is: the exact W1 (toy data) or the classifier FD (images).

    Returns:
        PNG bytes.

    The lower panels show the distance between generated and data samples (the exact W1, or on
    images the classifier-feature Frechet distance) on the left axis (one
    scale for every variant, so they compare) and the critic's gap
    :math:`E[f(x_{real})] - E[f(x_{fake})]` on the right axis (each variant's own scale: clipping's
    critic is K-Lipschitz with a small K, and the vanilla GAN's and SNGAN's gaps are logit and
    hinge margins, not distances). One line per seed.
    """
    plt = _plt()
    n = max(1, len(panels))
    fig, axes = plt.subplots(2, n, figsize=(3.3 * n, 6.6), squeeze=False,
                             gridspec_kw={"height_ratios": [1.15, 1.0]})
    lim = None
    if x_real is not None and len(x_real):
        lo, hi = np.min(x_real, 0), np.max(x_real, 0)
        pad = 0.25 * float(np.max(hi - lo))
        lim = (lo - pad, hi + pad)
    top = 0.0  # the largest distance: one scale for every variant
    for p in panels:
        for c in p["curves"]:
            w = _finite(c["distance"])
            if np.isfinite(w).any():
                top = max(top, float(np.nanmax(w)))
    for i, p in enumerate(panels):
        ax = axes[0, i]
        samples = p.get("samples")
        if samples is None:
            ax.axis("off")
            msg = "no samples" + ("\n\n" + "\n".join(_wrap(e) for e in p.get("errors", [])) if p.get("errors") else "")
            ax.text(0.5, 0.5, msg, ha="center", va="center", fontsize=7, color="tab:red", transform=ax.transAxes,
                    wrap=True)
        elif np.asarray(samples).ndim == 4:
            grid = make_grid(np.asarray(samples)[:64])
            ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            s = np.asarray(samples)
            if x_real is not None:
                ax.scatter(x_real[:, 0], x_real[:, 1], s=0.5, c="0.55", rasterized=True)
            ax.scatter(s[:, 0], s[:, 1], s=1, c="tab:orange", alpha=0.5, rasterized=True)
            if centers is not None:
                ax.scatter(centers[:, 0], centers[:, 1], marker="x", c="k", s=12, linewidths=0.8)
            if lim is not None:
                ax.set_xlim(lim[0][0], lim[1][0])
                ax.set_ylim(lim[0][1], lim[1][1])
                outside = int(np.sum(np.any((s < lim[0]) | (s > lim[1]), axis=1)))
                if outside:
                    ax.text(0.02, 0.02, f"{outside} samples outside the view", fontsize=6,
                            transform=ax.transAxes, color="0.3")
            ax.set_aspect("equal")
            ax.tick_params(labelsize=6)
        seed = f" (seed {p['seed']})" if p.get("seed") is not None else ""
        ax.set_title(f"{p['variant']}{seed}", fontsize=9)

        ax = axes[1, i]
        ax2 = ax.twinx()
        any_distance = False
        for c in p["curves"]:
            steps = _finite(c["steps"])
            if not len(steps):
                continue
            distance, gap = _finite(c["distance"]), _finite(c["gap"])
            style = "-" if c.get("ok", True) else ":"
            marker = "o" if len(steps) == 1 else None  # one evaluation: a point, not an invisible line
            if np.isfinite(distance).any():
                any_distance = True
                ax.plot(steps, distance, style, color="k", lw=1, alpha=0.8, marker=marker, ms=3)
            ax2.plot(steps, gap, style, color="tab:blue", lw=1, alpha=0.8, marker=marker, ms=3)
        if floor is not None and any_distance:
            ax.axhline(floor, color="k", ls=":", lw=0.8)
        if any_distance and top > 0:
            ax.set_ylim(0, 1.05 * top)
        ax.set_xlabel("generator step", fontsize=7)
        if i == 0:
            ax.set_ylabel(f"{distance_label} (black)", fontsize=7)
        ax2.set_ylabel("critic gap (blue)", fontsize=7, color="tab:blue")
        ax.tick_params(labelsize=6)
        ax2.tick_params(labelsize=6, colors="tab:blue")
        if p.get("errors"):
            ax.text(0.02, 0.98, f"{len(p['errors'])} failed run(s): dotted", fontsize=6, va="top",
                    transform=ax.transAxes, color="tab:red")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig_to_png(fig, dpi=100)


def _wrap(text: str, width: int = 38) -> str:
    words = [w if len(w) <= width else "..." + w[-(width - 3):] for w in text.split()]  # long paths
    lines, line = [], ""
    for w in words:
        if len(line) + len(w) + 1 > width and line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    if line:
        lines.append(line)
    return "\n".join(lines[:8]) + ("\n..." if len(lines) > 8 else "")

