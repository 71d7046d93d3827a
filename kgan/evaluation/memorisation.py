"""Memorisation: is a synthetic slice a copy of a training slice?

For every synthetic slice, the distance to its nearest training slice, in
pixels (root-mean-square difference, [-1, 1] units) and in the encoder's
feature space. Alone those numbers mean little, so the same is measured for
held-out real slices (patients the generator never saw): they are the floor
for "a new slice of the same anatomy". A generator that copies its training
patients has synthetic nearest distances far below that floor, and exact
copies (pixel RMS below one grey level) are counted separately.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

#: Pixel RMS distance under which two slices are the same image (one uint8 grey level).
COPY_RMS = 1.0 / 127.5


def nearest(
    queries: np.ndarray, references: np.ndarray, chunk: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean nearest reference of each query (flattened), chunked to bound memory.

    Returns:
      (indices [Q], distances [Q]).
    """
    q = np.asarray(queries, np.float32).reshape(len(queries), -1)
    r = np.asarray(references, np.float32).reshape(len(references), -1)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} values each, references {r.shape[1]}")
    r_sq = np.einsum("ij,ij->i", r, r)
    idx = np.empty(len(q), np.int64)
    dist = np.empty(len(q), np.float64)
    for start in range(0, len(q), chunk):
        block = q[start : start + chunk]
        d2 = np.einsum("ij,ij->i", block, block)[:, None] + r_sq[None, :] - 2.0 * block @ r.T
        best = np.argmin(d2, axis=1)
        idx[start : start + chunk] = best
        # recompute the winners exactly: the expanded form loses precision near 0
        diff = block - r[best]
        dist[start : start + chunk] = np.sqrt(np.einsum("ij,ij->i", diff, diff, dtype=np.float64))
    return idx, dist


def _summary(values: np.ndarray) -> dict:
    values = np.asarray(values, np.float64)
    return {
        "n": int(len(values)),
        "min": float(values.min()),
        "p1": float(np.percentile(values, 1)),
        "p5": float(np.percentile(values, 5)),
        "median": float(np.median(values)),
        "mean": float(values.mean()),
    }


def compare_distances(synthetic: np.ndarray, heldout: np.ndarray) -> dict:
    """How much closer to training the synthetic slices are than held-out real ones.

    Returns:
      Summaries of both distance sets, the share of synthetic slices closer
      than the held-out 1st and 5th percentiles (about 1% and 5% when the
      generator does not copy), and a one-sided Mann-Whitney p-value for
      "synthetic distances are smaller".
    """
    p1, p5 = np.percentile(heldout, 1), np.percentile(heldout, 5)
    test = stats.mannwhitneyu(synthetic, heldout, alternative="less")
    return {
        "synthetic": _summary(synthetic),
        "heldout_real": _summary(heldout),
        "synthetic_below_heldout_p1": float(np.mean(synthetic < p1)),
        "synthetic_below_heldout_p5": float(np.mean(synthetic < p5)),
        "mannwhitney_p_synthetic_closer": float(test.pvalue),
    }


def memorisation(
    synthetic: np.ndarray,
    heldout: np.ndarray,
    train: np.ndarray,
    *,
    synthetic_features=None,
    heldout_features=None,
    train_features=None,
) -> dict:
    """Nearest-training-slice distances of synthetic and held-out real slices.

    Args:
      synthetic, heldout, train: [N, S, S, 1] images in [-1, 1].
      *_features: optional encoder features of the same sets, for the
        feature-space comparison.

    Returns:
      A dict with "pixels" (and "features") comparisons, "exact_copies" (count
      of synthetic slices within one grey level of a training slice),
      "flagged" (True when copies exist or more than 5% of synthetic slices
      lie closer than the held-out 1st percentile, five times what chance
      gives), and the per-slice arrays under "_arrays" for figures.
    """
    pixels = np.prod(np.shape(synthetic)[1:])
    s_idx, s_dist = nearest(synthetic, train)
    h_idx, h_dist = nearest(heldout, train)
    s_rms, h_rms = s_dist / np.sqrt(pixels), h_dist / np.sqrt(pixels)
    out = {"pixels": compare_distances(s_rms, h_rms), "distance_unit": "pixel RMS in [-1, 1]"}
    arrays = {
        "synthetic_rms": s_rms,
        "heldout_rms": h_rms,
        "synthetic_nearest": s_idx,
        "heldout_nearest": h_idx,
    }
    if synthetic_features is not None:
        _, s_f = nearest(synthetic_features, train_features)
        _, h_f = nearest(heldout_features, train_features)
        out["features"] = compare_distances(s_f, h_f)
        arrays.update(synthetic_feature_distance=s_f, heldout_feature_distance=h_f)
    copies = int(np.sum(s_rms <= COPY_RMS))
    out["exact_copies"] = copies
    out["exact_copy_rms"] = COPY_RMS
    out["flagged"] = bool(copies > 0 or out["pixels"]["synthetic_below_heldout_p1"] > 0.05)
    out["_arrays"] = arrays
    return out
