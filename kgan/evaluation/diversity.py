"""Diversity: mean MS-SSIM of random pairs, synthetic against real.

MS-SSIM (Wang et al. 2003) compares two images' structure at several scales;
two random real slices of different patients share the head's outline and
the black background, so their MS-SSIM is far from 0. What matters is the
comparison: a generator that collapses onto a few modes makes pairs that look
alike, and its mean pairwise MS-SSIM rises well above that of real pairs.

For small slices the number of scales is the most that fit the 7x7 Gaussian
window (sigma 1.0): 4 scales at 64x64, 3 at 32x32, 2 at 16x16, weighted by
the first entries of Wang et al.'s power factors, renormalised to sum to 1.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

WANG_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
FILTER_SIZE = 7
FILTER_SIGMA = 1.0


def scales_for(size: int, filter_size: int = FILTER_SIZE) -> int:
    """How many dyadic scales fit: the coarsest must still be >= the window."""
    scales = 1
    while scales < len(WANG_POWER_FACTORS) and size // (2**scales) >= filter_size:
        scales += 1
    return scales


def power_factors(size: int) -> tuple[float, ...]:
    """Wang et al.'s weights for the scales that fit, renormalised to sum to 1."""
    weights = np.array(WANG_POWER_FACTORS[: scales_for(size)])
    return tuple(float(w) for w in weights / weights.sum())


def ms_ssim(a: np.ndarray, b: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """MS-SSIM of image pairs a[i], b[i] ([N, S, S, 1] in [-1, 1]), each in [0, 1]."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(
            f"MS-SSIM needs two [N, S, S, 1] batches of one shape, got {a.shape} and {b.shape}"
        )
    if a.shape[1] < FILTER_SIZE:
        raise ValueError(
            f"MS-SSIM needs slices of at least {FILTER_SIZE}x{FILTER_SIZE}, got {a.shape[1]}"
        )
    factors = power_factors(a.shape[1])
    out = []
    for start in range(0, len(a), batch_size):
        out.append(
            tf.image.ssim_multiscale(
                a[start : start + batch_size],
                b[start : start + batch_size],
                max_val=2.0,
                power_factors=factors,
                filter_size=FILTER_SIZE,
                filter_sigma=FILTER_SIGMA,
            ).numpy()
        )
    return np.concatenate(out) if out else np.zeros([0], np.float32)


def random_pairs(n: int, pairs: int, seed: int, groups=None) -> np.ndarray:
    """`pairs` index pairs (i, j), i != j, drawn with a seed; within one group when given."""
    if n < 2:
        raise ValueError(f"need at least 2 images to draw pairs, got {n}")
    rng = np.random.default_rng(seed)
    if groups is None:
        i = rng.integers(0, n, pairs)
        j = (i + rng.integers(1, n, pairs)) % n  # never equal to i
        return np.stack([i, j], 1)
    groups = np.asarray(groups)
    i = rng.integers(0, n, pairs)
    out = []
    for first in i:
        members = np.flatnonzero(groups == groups[first])
        members = members[members != first]
        if len(members):
            out.append((first, rng.choice(members)))
    if not out:
        raise ValueError("no group holds two images: cannot draw within-group pairs")
    return np.array(out)


def mean_pairwise_ms_ssim(
    images: np.ndarray, *, pairs: int = 500, seed: int = 0, groups=None
) -> dict:
    """Mean MS-SSIM over random pairs of one set (higher = less diverse).

    Args:
      images: [N, S, S, 1] in [-1, 1].
      pairs: number of random pairs.
      seed: seeds the pairs.
      groups: optional labels (e.g. modality); pairs are then drawn within a label.

    Returns:
      {"mean", "std", "sem", "pairs"}.
    """
    idx = random_pairs(len(images), pairs, seed, groups)
    values = ms_ssim(np.asarray(images)[idx[:, 0]], np.asarray(images)[idx[:, 1]])
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "sem": float(values.std() / np.sqrt(len(values))),
        "pairs": int(len(values)),
    }
