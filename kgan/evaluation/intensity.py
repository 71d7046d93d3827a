"""Intensity histograms inside the brain, synthetic against real.

Slices are normalised per volume to [-1, 1] with the background at -1, so
"inside the brain" is every pixel above `BRAIN_THRESHOLD` (2.5% of the range
above black). The histograms of those pixels are compared with the
Wasserstein-1 distance (in [-1, 1] units: how far, on average, intensity mass
must move; 0 for identical histograms) and the histogram intersection (1 for
identical histograms, 0 for disjoint ones). The share of brain pixels per
slice is compared too: a generator can get the tissue contrast right and the
head size wrong.
"""

from __future__ import annotations

import numpy as np

BRAIN_THRESHOLD = -0.95
BINS = 64


def brain_mask(images: np.ndarray, threshold: float = BRAIN_THRESHOLD) -> np.ndarray:
    """Boolean mask of pixels brighter than the background."""
    return np.asarray(images) > threshold


def brain_histogram(
    images: np.ndarray, bins: int = BINS, threshold: float = BRAIN_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised histogram (sums to 1) of brain pixels over [threshold, 1], and bin edges."""
    values = np.asarray(images)[brain_mask(images, threshold)]
    edges = np.linspace(threshold, 1.0, bins + 1)
    counts, _ = np.histogram(np.clip(values, threshold, 1.0), bins=edges)
    total = counts.sum()
    return (counts / total if total else counts.astype(np.float64)), edges


def wasserstein1(p: np.ndarray, q: np.ndarray, edges: np.ndarray) -> float:
    """W1 between two histograms on the same bins: sum |CDF_p - CDF_q| * bin width."""
    return float(np.sum(np.abs(np.cumsum(p) - np.cumsum(q)) * np.diff(edges)))


def intersection(p: np.ndarray, q: np.ndarray) -> float:
    """Histogram intersection sum(min(p, q)); 1 for identical normalised histograms."""
    return float(np.sum(np.minimum(p, q)))


def compare(reference: np.ndarray, candidate: np.ndarray, bins: int = BINS) -> dict:
    """Brain-intensity comparison of two image sets.

    Returns:
      W1 and intersection of the brain-pixel histograms, the mean brain
      share of each set, and both histograms (for figures).
    """
    p, edges = brain_histogram(reference, bins)
    q, _ = brain_histogram(candidate, bins)
    share_ref = brain_mask(reference).reshape(len(reference), -1).mean(1)
    share_cand = brain_mask(candidate).reshape(len(candidate), -1).mean(1)
    return {
        "wasserstein1": wasserstein1(p, q, edges),
        "intersection": intersection(p, q),
        "brain_share_reference": float(share_ref.mean()),
        "brain_share_candidate": float(share_cand.mean()),
        "mean_intensity_reference": float(np.sum(p * (edges[:-1] + edges[1:]) / 2)),
        "mean_intensity_candidate": float(np.sum(q * (edges[:-1] + edges[1:]) / 2)),
        "histogram_reference": p.tolist(),
        "histogram_candidate": q.tolist(),
        "bin_edges": edges.tolist(),
    }


def per_slice_histograms(
    images: np.ndarray, bins: int = BINS, threshold: float = BRAIN_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Brain-pixel counts per slice [N, bins] (unnormalised) and the brain share per slice [N]."""
    flat = np.asarray(images).reshape(len(images), -1)
    edges = np.linspace(threshold, 1.0, bins + 1)
    idx = np.clip(
        np.searchsorted(edges, np.clip(flat, threshold, 1.0), side="right") - 1, 0, bins - 1
    )
    inside = flat > threshold
    counts = np.zeros((len(flat), bins))
    rows = np.broadcast_to(np.arange(len(flat))[:, None], flat.shape)
    np.add.at(counts, (rows[inside], idx[inside]), 1.0)
    return counts, inside.mean(1)


def wasserstein1_resampled(
    counts_a: np.ndarray,
    counts_b: np.ndarray,
    weights_a: np.ndarray,
    weights_b: np.ndarray,
    bins: int = BINS,
    threshold: float = BRAIN_THRESHOLD,
) -> np.ndarray:
    """W1 between the pooled brain histograms of two sets for each resample (weights [B, N])."""
    edges = np.linspace(threshold, 1.0, bins + 1)
    p = weights_a @ counts_a
    q = weights_b @ counts_b
    p = p / np.maximum(p.sum(1, keepdims=True), 1e-12)
    q = q / np.maximum(q.sum(1, keepdims=True), 1e-12)
    return np.sum(np.abs(np.cumsum(p, 1) - np.cumsum(q, 1)) * np.diff(edges), axis=1)
