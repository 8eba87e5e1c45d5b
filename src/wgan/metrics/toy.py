"""Toy metrics on the VEEGAN / PacGAN protocol (Srivastava et al. 2017, sec. 5.1; Lin et al. 2018).

From 2,500 generated samples: a sample is *high quality* when it lies within 3 standard deviations
of its nearest mode centre; a mode is *captured* when it is the nearest centre of at least one
high-quality sample. We add the exact W1 (Euclidean optimal transport) between the generated
samples and as many fresh data samples, and its floor: the W1 between two independent data sets
of that size, which is what a perfect generator would score.
"""

from __future__ import annotations

import numpy as np
import torch

from wgan.distances import wasserstein_exact


def mode_statistics(x_fake, centers, std: float) -> dict[str, float]:
    """Modes captured, % high quality and per-mode shares for samples around known centres."""
    x = torch.as_tensor(np.asarray(x_fake), dtype=torch.float64)
    c = torch.as_tensor(np.asarray(centers), dtype=torch.float64)
    dist = torch.cdist(x, c)  # (n, K)
    nearest_dist, nearest = dist.min(1)
    hq = nearest_dist < 3 * std
    counts = torch.bincount(nearest[hq], minlength=len(c))
    share = counts.double() / len(x)
    return {
        "modes": int((counts > 0).sum()),
        "modes_total": len(c),
        "modes_1pct": int((share >= 0.01).sum()),  # modes holding >= 1% of all samples as high quality
        "high_quality_pct": 100.0 * float(hq.double().mean()),
    }


def toy_metrics(x_fake, data, rng: torch.Generator, with_w1: bool = True) -> dict[str, float]:
    """Every toy metric for ``x_fake`` (n, 2) against the data source ``data`` (n fresh samples)."""
    x_fake = np.asarray(x_fake, dtype=np.float64)
    out: dict[str, float] = {}
    if data.centers is not None:
        out.update(mode_statistics(x_fake, data.centers.cpu(), data.std))
    if with_w1:
        x_data = data.sample(len(x_fake), rng).double().cpu().numpy()
        out["w1"] = wasserstein_exact(x_fake, x_data)
    return out


def w1_floor(data, n: int, rng: torch.Generator) -> float:
    """W1 between two independent data sets of ``n`` samples: the score of a perfect generator."""
    a = data.sample(n, rng).double().cpu().numpy()
    b = data.sample(n, rng).double().cpu().numpy()
    return wasserstein_exact(a, b)
