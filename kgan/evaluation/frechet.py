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
    value = float(
        np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(root)
    )
    return max(value, 0.0)


def kid(
    a: np.ndarray, b: np.ndarray, *, subsets: int = 50, subset_size: int = 1000, seed: int = 0
) -> dict:
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
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "subsets": subsets,
        "subset_size": int(m),
    }


def _check(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be [N, D] with equal D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 feature vectors per set, got {len(a)} and {len(b)}")
    return a, b


def _weighted_moments(x: np.ndarray, outer: np.ndarray, w: np.ndarray):
    """Means [B, D] and covariances [B, D, D] of x under frequency weights w [B, N]."""
    total = w.sum(1)[:, None]
    mu = w @ x / total
    second = (w @ outer).reshape(len(w), x.shape[1], x.shape[1]) / total[:, :, None]
    cov = (second - mu[:, :, None] * mu[:, None, :]) * (total / np.maximum(total - 1.0, 1.0))[
        :, :, None
    ]
    return mu, cov


def fid_resampled(
    a: np.ndarray, b: np.ndarray, weights_a: np.ndarray, weights_b: np.ndarray, chunk: int = 100
) -> np.ndarray:
    """FID of each resample: a and b repeated by weights [B, N_a] and [B, N_b] (frequency weights).

    Means and covariances of all resamples come from one product of the
    weights with the per-item outer products; Tr((C_a C_b)^(1/2)) from the
    eigenvalues of C_a C_b (real and >= 0 for covariance matrices).
    """
    a, b = _check(a, b)
    outer_a = np.einsum("ni,nj->nij", a, a).reshape(len(a), -1)
    outer_b = np.einsum("ni,nj->nij", b, b).reshape(len(b), -1)
    out = []
    for start in range(0, len(weights_a), chunk):
        mu_a, cov_a = _weighted_moments(
            a, outer_a, np.asarray(weights_a[start : start + chunk], float)
        )
        mu_b, cov_b = _weighted_moments(
            b, outer_b, np.asarray(weights_b[start : start + chunk], float)
        )
        eig = np.linalg.eigvals(cov_a @ cov_b)
        root = np.sum(np.sqrt(np.clip(eig.real, 0.0, None)), axis=1)
        value = (
            np.sum((mu_a - mu_b) ** 2, 1)
            + np.trace(cov_a, axis1=1, axis2=2)
            + np.trace(cov_b, axis1=1, axis2=2)
            - 2.0 * root
        )
        out.append(np.maximum(value, 0.0))
    return np.concatenate(out)


def _unbiased_mmd2(kxx, kyy, kxy, wa: np.ndarray, wb: np.ndarray) -> np.ndarray:
    """Unbiased MMD^2 under weights [B, N]: within-set pairs of two *different* slices only.

    A slice drawn twice by the bootstrap is not paired with itself (that pair
    would add k(x, x) and bias the number upwards), so the within-set sums
    leave out every w_i^2 k(x_i, x_i) and their pair counts leave out w_i^2.
    """
    na, nb = wa.sum(1), wb.sum(1)
    sxx = np.sum((wa @ kxx) * wa, 1) - (wa**2) @ np.diag(kxx)
    syy = np.sum((wb @ kyy) * wb, 1) - (wb**2) @ np.diag(kyy)
    sxy = np.sum((wa @ kxy) * wb, 1)
    pairs_a = na**2 - np.sum(wa**2, 1)
    pairs_b = nb**2 - np.sum(wb**2, 1)
    return sxx / pairs_a + syy / pairs_b - 2.0 * sxy / (na * nb)


def kid_full(a: np.ndarray, b: np.ndarray, weights_a=None, weights_b=None):
    """KID as the unbiased MMD^2 (cubic kernel) over the whole sets, and per resample.

    Unlike `kid`, no random subsets: the number is a plain function of the two
    sets, so its interval comes from the bootstrap alone.

    Returns:
      The point value, or (point value, [B] resampled values) when weights are given.
    """
    a, b = _check(a, b)
    d = a.shape[1]
    kxx = (a @ a.T / d + 1.0) ** 3
    kyy = (b @ b.T / d + 1.0) ** 3
    kxy = (a @ b.T / d + 1.0) ** 3
    point = float(_unbiased_mmd2(kxx, kyy, kxy, np.ones((1, len(a))), np.ones((1, len(b))))[0])
    if weights_a is None:
        return point
    return point, _unbiased_mmd2(
        kxx, kyy, kxy, np.asarray(weights_a, float), np.asarray(weights_b, float)
    )
