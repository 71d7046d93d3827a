"""Downstream use: do synthetic slices help a tumour / no-tumour classifier?

The paper's stated aim is data augmentation. The same small CNN is trained on
real training slices only, on real + synthetic, and on synthetic only, and
each is tested on held-out real patients. Labels of synthetic slices come
from the generator's tumour condition when it has one; an unconditional
generator has no such labels, so the report labels its slices with the
evaluation encoder's tumour head (trained on the real training slices) and
says so: then "synthetic only" measures how much of that labeller the
synthetic slices can carry, not an independent source of labels.
"""

from __future__ import annotations

import numpy as np

from kgan.evaluation import cnn
from kgan.evaluation.two_sample import auc


def scores(p_tumour: np.ndarray, truth: np.ndarray) -> dict:
    """Accuracy, balanced accuracy, sensitivity (tumour found), specificity and AUC."""
    truth = np.asarray(truth).astype(bool)
    chosen = np.asarray(p_tumour) >= 0.5
    tp, tn = np.sum(chosen & truth), np.sum(~chosen & ~truth)
    sens = float(tp / truth.sum()) if truth.sum() else None
    spec = float(tn / (~truth).sum()) if (~truth).sum() else None
    balanced = None if sens is None or spec is None else (sens + spec) / 2
    return {
        "n": int(len(truth)),
        "tumour_share": float(truth.mean()),
        "accuracy": float(np.mean(chosen == truth)),
        "balanced_accuracy": balanced,
        "sensitivity": sens,
        "specificity": spec,
        "auc": auc(p_tumour, truth),
    }


def _weighted_scores(p: np.ndarray, truth: np.ndarray, w: np.ndarray) -> dict:
    """Balanced accuracy and AUC of predictions under weights [B, N] (one value per resample)."""
    from kgan.evaluation import bootstrap

    chosen = p >= 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = (w @ (chosen & truth)) / (w @ truth)
        spec = (w @ (~chosen & ~truth)) / (w @ ~truth)
    return {
        "balanced_accuracy": (sens + spec) / 2,
        "sensitivity": sens,
        "specificity": spec,
        "auc": bootstrap.weighted_auc(p, truth, w),
    }


def augmentation(
    real_x,
    real_y,
    synthetic_x,
    synthetic_y,
    test_x,
    test_y,
    test_clusters,
    *,
    test_half_a=None,
    seed: int = 0,
    epochs: int = 5,
    min_steps: int = cnn.MIN_STEPS,
    resamples: int = 1000,
    label_source: str = "",
) -> dict:
    """The augmentation scenario: few real patients, with and without synthetic slices.

    Three classifiers (real only, real + synthetic, synthetic only; same
    seed, class-balanced) are trained once and tested on many new patients.
    Test patients are resampled (the same resamples for every classifier, so
    the difference between two classifiers is a paired bootstrap): read
    "real + synthetic beats real only" off the difference's interval.

    Args:
      real_x, real_y: the few real patients' slices and 0/1 tumour labels.
      synthetic_x, synthetic_y: synthetic slices and their 0/1 labels.
      test_x, test_y, test_clusters: test slices, labels and patient ids.
      test_half_a: optional mask of half the test patients; the floor is the
        real-only classifier's score on half A minus half B (how far a score
        moves between two groups of patients).
      seed, epochs, min_steps: classifier training.
      resamples: bootstrap resamples.
      label_source: how the synthetic labels were obtained (for the report).
    """
    from kgan.evaluation import bootstrap

    real_y, synthetic_y = np.asarray(real_y).astype(int), np.asarray(synthetic_y).astype(int)
    truth = np.asarray(test_y).astype(bool)
    w = bootstrap.cluster_weights(test_clusters, resamples, np.random.default_rng([seed, 3]))
    sets = {
        "real_only": (real_x, real_y),
        "real_plus_synthetic": (
            np.concatenate([real_x, synthetic_x]),
            np.concatenate([real_y, synthetic_y]),
        ),
        "synthetic_only": (synthetic_x, synthetic_y),
    }
    counts = {"test_slices": len(truth), "test_patients": len(np.unique(test_clusters))}
    results, resampled, preds = {}, {}, {}
    for name, (x, y) in sets.items():
        if len(np.unique(y)) < 2:
            results[name] = {
                "skipped": f"training labels are all {int(y[0]) if len(y) else 'missing'}"
            }
            continue
        model = cnn.fit_binary(
            x,
            y,
            seed=seed,
            epochs=epochs,
            sample_weight=cnn.balanced_weights(y),
            min_steps=min_steps,
        )
        p = cnn.predict(model, test_x)[:, 0]
        preds[name] = p
        point = scores(p, truth)
        resampled[name] = _weighted_scores(p, truth, w)
        results[name] = {
            k: bootstrap.estimate(point[k], resampled[name][k], **counts)
            for k in ("balanced_accuracy", "sensitivity", "specificity", "auc")
        }
        results[name]["train_slices"] = int(len(y))
        results[name]["train_tumour_share"] = float(np.mean(y))
    differences = {}
    for name in ("real_plus_synthetic", "synthetic_only"):
        if name in resampled and "real_only" in resampled:
            differences[name + "_minus_real_only"] = {
                k: bootstrap.estimate(
                    results[name][k]["value"] - results["real_only"][k]["value"],
                    resampled[name][k] - resampled["real_only"][k],
                    **counts,
                )
                for k in ("balanced_accuracy", "auc")
            }
    floor = None
    if test_half_a is not None and "real_only" in preds:
        half = np.asarray(test_half_a, bool)
        p = preds["real_only"]
        wa = bootstrap.cluster_weights(
            np.asarray(test_clusters)[half], resamples, np.random.default_rng([seed, 4])
        )
        wb = bootstrap.cluster_weights(
            np.asarray(test_clusters)[~half], resamples, np.random.default_rng([seed, 5])
        )
        sa, sb = scores(p[half], truth[half]), scores(p[~half], truth[~half])
        ra, rb = (
            _weighted_scores(p[half], truth[half], wa),
            _weighted_scores(p[~half], truth[~half], wb),
        )
        floor = {
            k: bootstrap.estimate(
                None if sa[k] is None or sb[k] is None else sa[k] - sb[k],
                ra[k] - rb[k],
                patients_a=len(np.unique(np.asarray(test_clusters)[half])),
                patients_b=len(np.unique(np.asarray(test_clusters)[~half])),
            )
            for k in ("balanced_accuracy", "auc")
        }
        floor["meaning"] = (
            "real-only classifier: score on test half A minus half B (patient-disjoint): "
            "how much a score moves between two groups of patients"
        )
    return {
        **results,
        "differences": differences,
        "floor": floor,
        "label_source": label_source,
        "train_real_slices": int(len(real_y)),
        "train_synthetic_slices": int(len(synthetic_y)),
        "synthetic_tumour_share": float(np.mean(synthetic_y)) if len(synthetic_y) else None,
        "real_tumour_share": float(np.mean(real_y)),
        **counts,
        "seed": seed,
        "epochs": epochs,
        "min_steps": min_steps,
    }
