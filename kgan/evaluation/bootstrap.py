"""Seeded cluster bootstrap: 95 % intervals for every number of the report.

Slices of one patient are not independent (neighbouring slices look alike,
and a patient's anatomy and contrast run through all of them), so resampling
slices would give intervals far too narrow. Real slices are therefore
resampled **by patient**: a resample draws patients with replacement and
takes all their slices, each as often as its patient was drawn. Synthetic
slices are independent draws of the generator and are resampled one by one.

Every statistic here is computed from per-item *weights* (how often each
slice appears in a resample), so a resample costs one weighted sum rather
than recomputing features or retraining a classifier: classifiers are
trained once and their test-set predictions are resampled.

Intervals are percentile intervals (2.5th and 97.5th percentiles of the
resampled statistic) over `RESAMPLES` resamples from a seeded generator.
"""

from __future__ import annotations

import numpy as np

#: Resamples for the cheap statistics (shares, accuracies, AUC, FID/KID, histograms).
RESAMPLES = 1000
#: Resamples for the sliced Wasserstein distance (a resample re-sums sorted patch projections).
SWD_RESAMPLES = 100
LEVEL = 0.95


def cluster_weights(clusters, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicity of each item in each resample when its cluster is drawn with replacement.

    Args:
      clusters: [N] cluster label of each item (patient id; for synthetic
        slices pass `np.arange(N)`, one cluster per slice).
      resamples: number of resamples B.
      rng: the seeded generator.

    Returns:
      float64 [B, N]: item i appears W[b, i] times in resample b.
    """
    _, inverse = np.unique(np.asarray(clusters), return_inverse=True)
    k = int(inverse.max()) + 1 if len(inverse) else 0
    draws = rng.integers(0, k, size=(resamples, k))
    counts = np.zeros((resamples, k))
    np.add.at(counts, (np.repeat(np.arange(resamples), k), draws.ravel()), 1.0)
    return counts[:, inverse]


def interval(values, level: float = LEVEL) -> list | None:
    """Percentile interval [lo, hi] of resampled values (NaN resamples dropped)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]


def estimate(
    point, resampled, *, bias_corrected: bool = False, floor_zero: bool = False, **counts
) -> dict:
    """A number with its interval, as every report entry holds it.

    Args:
      point: the statistic on the data as drawn.
      resampled: its values over the resamples.
      bias_corrected: shift the percentile interval by the bootstrap's bias
        (mean of resamples minus point). Needed for FID and SWD: a resample
        repeats slices, which lowers the effective sample size and raises
        these distances, so their raw percentiles sit above the point value.
      floor_zero: clip the interval at 0 (distances).
      **counts: sample and patient counts to record with the number.
    """
    resampled = np.asarray(resampled, np.float64)
    valid = point is not None and np.isfinite(point)
    ci = interval(resampled)
    shift = 0.0
    if bias_corrected and valid and ci is not None:
        shift = float(np.mean(resampled[np.isfinite(resampled)]) - point)
        ci = [ci[0] - shift, ci[1] - shift]
    if floor_zero and ci is not None:
        ci = [max(ci[0], 0.0), max(ci[1], 0.0)]
    out = {"value": float(point) if valid else None, "ci95": ci, "resamples": int(len(resampled))}
    if bias_corrected:
        out["bootstrap_bias"] = shift
    out.update({k: int(v) for k, v in counts.items()})
    return out


def weighted_mean(values, weights: np.ndarray) -> np.ndarray:
    """Per-resample weighted mean of `values` [N] under weights [B, N]."""
    values = np.asarray(values, np.float64)
    total = weights.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ values) / total


def weighted_auc(scores, positive, weights: np.ndarray | None = None) -> np.ndarray | float:
    """AUC (probability a positive outscores a negative, ties half) under item weights.

    Args:
      scores: [N] classifier scores.
      positive: [N] booleans.
      weights: [B, N] resample multiplicities, or None for the plain AUC.

    Returns:
      The AUC (float) without weights, else [B] AUCs (NaN where a class is absent).
    """
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(positive, bool)
    single = weights is None
    w = np.ones((1, len(scores))) if single else np.asarray(weights, np.float64)
    uniq, inv = np.unique(scores, return_inverse=True)
    onehot = np.zeros((len(scores), len(uniq)))
    onehot[np.arange(len(scores)), inv] = 1.0
    pos = (w * positive) @ onehot  # [B, U] weight of positives at each distinct score
    neg = (w * ~positive) @ onehot
    below = np.cumsum(neg, axis=1) - neg  # negatives strictly below each score
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.sum(pos * (below + 0.5 * neg), axis=1) / (pos.sum(1) * neg.sum(1))
    return float(auc[0]) if single else auc


def proportion(flags, clusters, *, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Share of True in `flags` with a cluster-bootstrap interval (e.g. a modality's share)."""
    flags = np.asarray(flags, np.float64)
    w = cluster_weights(clusters, resamples, np.random.default_rng(seed))
    return estimate(
        flags.mean() if len(flags) else np.nan,
        weighted_mean(flags, w),
        n=len(flags),
        clusters=len(np.unique(clusters)),
    )
