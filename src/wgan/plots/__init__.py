"""Figures. The only package that imports matplotlib, and only inside functions (Agg backend)."""

from __future__ import annotations

from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scatter_png(path: Path, x_fake, x_real=None, centers=None, title: str = "") -> None:
    """Generated 2-D samples over the data (grey) and the mode centres (crosses)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=100)
    if x_real is not None:
        ax.scatter(x_real[:, 0], x_real[:, 1], s=2, c="0.7", label="data")
    ax.scatter(x_fake[:, 0], x_fake[:, 1], s=2, c="tab:orange", alpha=0.6, label="generated")
    if centers is not None:
        ax.scatter(centers[:, 0], centers[:, 1], marker="x", c="k", s=30, label="centres")
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    legend = ax.legend(loc="upper right", fontsize=7)
    for handle in legend.legend_handles:
        handle.set_sizes([20])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
