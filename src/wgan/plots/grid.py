"""Sample grids as PNG files, written with Pillow (no matplotlib)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from wgan.io import atomic_write_bytes


def make_grid(x: torch.Tensor | np.ndarray, nrow: int | None = None, padding: int = 2,
              pad_value: float = 1.0) -> np.ndarray:
    """Tile images into one uint8 picture.

    Args:
        x: (N, C, H, W) with C 1 or 3, values in [-1, 1] (clipped).
        nrow: images per row; ``None`` = ceil(sqrt(N)), a square grid.
        padding: pixels between images and around the border.
        pad_value: colour of the padding in [-1, 1] (1 = white).

    Returns:
        (H_grid, W_grid) uint8 for one channel, (H_grid, W_grid, 3) for three.

    Example:
        >>> make_grid(torch.zeros(64, 1, 28, 28)).shape
        (242, 242)
    """
    x = torch.as_tensor(x).detach().float().cpu()
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images (N, C, H, W) with C 1 or 3, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    if n == 0:
        raise ValueError("no images to tile")
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol_rows = math.ceil(n / nrow)
    u8 = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
    pad = int(round((min(max(pad_value, -1.0), 1.0) + 1) * 127.5))
    grid = np.full((padding + ncol_rows * (h + padding), padding + nrow * (w + padding), c), pad, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top:top + h, left:left + w] = u8[i]
    return grid[:, :, 0] if c == 1 else grid


def save_image_grid(path: str | Path, x: torch.Tensor | np.ndarray, nrow: int | None = None, padding: int = 2,
                    scale: int | None = None) -> Path:
    """Write images (N, C, H, W) in [-1, 1] as one PNG grid.

    Args:
        path: the PNG file; written to a temporary name and renamed, so never half-written.
        x: (N, C, H, W), C 1 or 3, values in [-1, 1].
        nrow: images per row (default: a square grid).
        padding: pixels between images.
        scale: integer nearest-neighbour upscaling; ``None`` = about 480 px wide (2x for 8 x 8 MNIST digits).

    Returns:
        The path written.
    """
    from PIL import Image

    grid = make_grid(x, nrow, padding)
    if scale is None:
        scale = max(1, min(4, round(480 / grid.shape[1])))
    img = Image.fromarray(grid)  # "L" for (H, W), "RGB" for (H, W, 3) uint8
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    path = Path(path)
    atomic_write_bytes(path, lambda f: img.save(f, format="PNG"))
    return path
