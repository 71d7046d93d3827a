"""FID and KID between two sets of feature vectors (of kgan's own encoder).

FID (Heusel et al. 2017): the Frechet distance between Gaussians fitted to the
two feature sets, |mu_a - mu_b|^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)).
It is biased upwards for small sets, so compare numbers only at equal sample
counts (the report always states them, and its floor uses the same counts).

KID (Binkowski et al. 2018): the unbiased squared MMD with the cubic
polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets;
unbiased, so about 0 for two samples of one distribution at any size.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussian fits of feature sets a [N, D] and b [M, D]."""
    a, b = _check(a, b)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():
        # singular product (fewer samples than dimensions): regularise slightly
        eps = 1e-6 * np.eye(cov_a.shape[0])
        root = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    root = np.real(root)
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                  - 2.0 * np.trace(root))
    return max(value, 0.0)


def kid(a: np.ndarray, b: np.ndarray, *, subsets: int = 50, subset_size: int = 1000,
        seed: int = 0) -> dict:
    """Kernel Inception Distance (unbiased MMD^2, cubic kernel) over random subsets.

    Args:
      a, b: feature sets [N, D] and [M, D].
      subsets: number of random subsets drawn (seeded).
      subset_size: samples per subset, capped by the smaller set.
      seed: the subset draws' seed.

    Returns:
      {"mean": ..., "std": ..., "subsets": ..., "subset_size": ...}.
    """
    a, b = _check(a, b)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (x @ x.T / d + 1.0) ** 3
        kyy = (y @ y.T / d + 1.0) ** 3
        kxy = (x @ y.T / d + 1.0) ** 3
        off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(off - 2.0 * kxy.mean())
    return {"mean": float(np.mean(values)), "std": float(np.std(values)),
            "subsets": subsets, "subset_size": int(m)}


def _check(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be [N, D] with equal D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 feature vectors per set, got {len(a)} and {len(b)}")
    return a, b
