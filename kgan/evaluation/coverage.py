"""Modality coverage: does an unconditional generator make every modality as often as real data?

A generator trained on T1, T1ce, T2 and FLAIR slices in equal numbers may
still make mostly one of them (a partial mode collapse that FID over all
slices hides). Its slices are classified by the evaluation encoder's modality
head; the share of each modality is compared with the real share, each with
a bootstrap interval (over synthetic slices, and over patients for the real
side). The real share is given twice: from the labels and as the same head
classifies the real slices (the fair comparison: the head's own errors
cancel). A modality whose synthetic share differs from the head's real share
by more than `FLAG_POINTS` percentage points is flagged.
"""

from __future__ import annotations

import numpy as np

from kgan import names
from kgan.evaluation import bootstrap

FLAG_POINTS = 5.0


def shares(
    synthetic_modality,
    real_modality_head,
    real_modality_labels,
    real_clusters,
    *,
    modalities,
    seed: int = 0,
    resamples: int = bootstrap.RESAMPLES,
) -> dict:
    """Per-modality shares with intervals and the >5-point flag.

    Args:
      synthetic_modality: [N] modality index of each synthetic slice.
      real_modality_head: [M] modality index the encoder gives each real slice.
      real_modality_labels: [M] true modality index of each real slice.
      real_clusters: [M] patient id of each real slice.
      modalities: indices (into `names.MODALITIES`) to report.
      seed: bootstrap seed.
      resamples: bootstrap resamples.

    Returns:
      {modality name: {"synthetic", "real", "real_labels": estimates,
       "difference_points", "flagged"}, "flagged": [names]}.
    """
    synthetic_modality = np.asarray(synthetic_modality)
    n_syn = len(synthetic_modality)
    out, flagged = {}, []
    for m in modalities:
        name = names.MODALITIES[m]
        syn = bootstrap.proportion(
            synthetic_modality == m, np.arange(n_syn), resamples=resamples, seed=seed
        )
        real = bootstrap.proportion(
            np.asarray(real_modality_head) == m, real_clusters, resamples=resamples, seed=seed + 1
        )
        labels = bootstrap.proportion(
            np.asarray(real_modality_labels) == m, real_clusters, resamples=resamples, seed=seed + 1
        )
        diff = 100.0 * (syn["value"] - real["value"])
        entry = {
            "synthetic": syn,
            "real": real,
            "real_labels": labels,
            "synthetic_count": int(np.sum(synthetic_modality == m)),
            "difference_points": diff,
            "flagged": bool(abs(diff) > FLAG_POINTS),
        }
        if entry["flagged"]:
            flagged.append(name)
        out[name] = entry
    other = int(np.sum(~np.isin(synthetic_modality, list(modalities))))
    return {
        "per_modality": out,
        "flagged": flagged,
        "flag_points": FLAG_POINTS,
        "synthetic_slices": n_syn,
        "synthetic_outside_trained_modalities": other,
    }
