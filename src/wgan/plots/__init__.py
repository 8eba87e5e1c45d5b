"""Figures. The only package that imports matplotlib, and only inside functions (Agg backend)."""

from __future__ import annotations

from pathlib import Path

from wgan.io import atomic_write_bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, **kwargs) -> Path:
    """Write a matplotlib figure to ``path`` atomically (format from the suffix), then close it.

    Args:
        fig: the figure.
        path: the file; without a suffix, ``.png`` is appended, as ``fig.savefig`` does.
        kwargs: passed to ``fig.savefig`` (``dpi`` ...).

    Returns:
        The path written.
    """
    path = Path(path)
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    try:
        atomic_write_bytes(path, lambda f: fig.savefig(f, format=path.suffix[1:].lower(), **kwargs))
    finally:
        _plt().close(fig)
    return path


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
    save_figure(fig, path)
