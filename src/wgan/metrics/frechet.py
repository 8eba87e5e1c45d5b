r"""Distances between two sets of feature vectors: Fréchet distance, KID, k-NN precision and recall.

Pure functions on arrays (N, D): they know nothing of networks. ``wgan.metrics.image`` feeds them
the penultimate features of the project's own classifier, so the numbers are *classifier-feature*
metrics, not comparable with Inception FID/KID values published elsewhere.
"""

from __future__ import annotations

import numpy as np
import torch


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    f = np.asarray(torch.as_tensor(features).detach().cpu().double().numpy() if torch.is_tensor(features)
                   else features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    r"""Fréchet (2-Wasserstein) distance squared between two Gaussians.

    .. math::
        d^2 = \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{Tr}\big(\Sigma_1 + \Sigma_2
              - 2 (\Sigma_1 \Sigma_2)^{1/2}\big)

    The trace of the matrix square root is computed as
    :math:`\operatorname{Tr}(\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2})^{1/2}` = the sum of the square
    roots of the eigenvalues of a symmetric positive semi-definite matrix: real, no complex parts to
    discard, and stable for singular covariances (fewer samples than dimensions), where ``sqrtm``
    needs the ``eps * I`` offset of pytorch-fid. Tiny negative eigenvalues from rounding are set to 0.

    Args:
        mu1, mu2: means (D,).
        sigma1, sigma2: covariances (D, D), symmetric positive semi-definite.

    Returns:
        :math:`d^2` (the quantity called FID when the features are Inception's), >= 0.

    Example:
        >>> frechet_distance(np.zeros(2), np.eye(2), np.array([3.0, 4.0]), np.eye(2))
        25.0

    References:
        Dowson and Landau, "The Fréchet distance between multivariate normal distributions", 1982.
        Heusel et al., "GANs trained by a two time-scale update rule converge to a local Nash
        equilibrium", NeurIPS 2017 (eq. 6, FID).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"shapes differ: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    r1 = _psd_sqrt(s1)
    m = r1 @ s2 @ r1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    d2 = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)
    return max(d2, 0.0)


def frechet_distance_features(f1, f2) -> float:
    """:func:`frechet_distance` between the Gaussians fitted to two feature sets (N1, D) and (N2, D)."""
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))


def kernel_inception_distance(f1, f2, n_subsets: int = 10, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    r"""Unbiased squared MMD with the cubic polynomial kernel, averaged over random subsets (KID).

    .. math::
        k(x, y) = \big(\tfrac{1}{D} x^\top y + 1\big)^3, \quad
        \widehat{\mathrm{MMD}}^2 = \frac{\sum_{i \ne j} k(x_i, x_j)}{m(m-1)}
        + \frac{\sum_{i \ne j} k(y_i, y_j)}{m(m-1)} - \frac{2}{m^2} \sum_{i, j} k(x_i, y_j)

    Unbiased, so it can be slightly negative for two samples of one distribution.

    Args:
        f1, f2: features (N1, D), (N2, D).
        n_subsets: random subsets of each set.
        subset_size: m, at most min(N1, N2).
        seed: for the subsets.

    Returns:
        ``(mean, std)`` over the subsets.

    References:
        Bińkowski et al., "Demystifying MMD GANs", ICLR 2018 (sec. 4, KID).
    """
    a = torch.as_tensor(np.asarray(f1), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(f2), dtype=torch.float64)
    d = a.shape[1]
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(a)} and {len(b)}")
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(n_subsets):
        x = a[torch.randperm(len(a), generator=g)[:m]]
        y = b[torch.randperm(len(b), generator=g)[:m]]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
               + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean())
        vals.append(float(mmd))
    return float(np.mean(vals)), float(np.std(vals))


def _kth_neighbour_radius(f: torch.Tensor, k: int) -> torch.Tensor:
    d = torch.cdist(f, f)  # (N, N), the diagonal is the point itself (0)
    return d.kthvalue(k + 1, dim=1).values  # skip the self-distance


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    r"""Improved precision and recall of generated samples (k-nearest-neighbour manifolds).

    Each set's manifold is the union of balls around its points, each of radius the distance to
    the point's k-th nearest neighbour in the same set. Precision is the share of generated samples
    inside the real manifold (quality); recall the share of real samples inside the generated
    manifold (coverage).

    .. math::
        \mathrm{precision} = \frac{1}{M} \sum_j \mathbf 1\big[\exists i:
            \lVert \phi_g^j - \phi_r^i \rVert \le \lVert \phi_r^i - \mathrm{NN}_k(\phi_r^i) \rVert\big]

    Args:
        real: features (N, D).
        fake: features (M, D); use N = M (the paper's protocol).
        k: neighbourhood size (3 in the paper).

    Returns:
        ``(precision, recall)`` in [0, 1].

    References:
        Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing Generative Models",
        NeurIPS 2019 (sec. 2, eq. 1-2; k = 3).
    """
    r = torch.as_tensor(np.asarray(real), dtype=torch.float32)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float32)
    if len(r) <= k or len(f) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set, got {len(r)}, {len(f)}")
    rad_r = _kth_neighbour_radius(r, k)  # (N,)
    rad_f = _kth_neighbour_radius(f, k)  # (M,)
    d = torch.cdist(f, r)  # (M, N)
    precision = (d <= rad_r[None, :]).any(1).float().mean()
    recall = (d.T <= rad_f[None, :]).any(1).float().mean()
    return float(precision), float(recall)
