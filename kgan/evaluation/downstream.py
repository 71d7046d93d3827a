"""Downstream use: do synthetic slices help a tumour / no-tumour classifier?

The paper's stated aim is data augmentation. The same small lesion CNN is
trained on a few real patients' slices, on those + synthetic, on synthetic
only, and on every real training patient (the ceiling: how much more real
data would buy), and each is tested on held-out real patients. Labels of
synthetic slices come from the generator's tumour condition when it has one;
an unconditional generator has no such labels, so the ceiling classifier
labels its slices and the report says so: then a gain measures the
generator and that labeller together, not an independent source of labels.
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


#: Updates every tumour classifier gets at least (the budget docs/quality/classifiers.md measured).
MIN_STEPS = 600

_METRICS = ("balanced_accuracy", "sensitivity", "specificity", "auc")


def few_patients(patients, count: int, seed: int, draw: int = 0) -> list[str]:
    """The `count` real patients of one draw, sorted; draw 0 is the one the report uses."""
    rng = np.random.default_rng(seed if draw == 0 else [seed, draw])
    return [str(c) for c in np.sort(rng.permutation(np.unique(patients))[:count])]


def fit_predict(x, y, test_x, *, seed, epochs=5, min_steps=MIN_STEPS, build=cnn.lesion_classifier):
    """Trains a class-balanced tumour classifier; returns it and its test predictions."""
    model = cnn.fit_binary(
        x,
        y,
        seed=seed,
        epochs=epochs,
        sample_weight=cnn.balanced_weights(y),
        min_steps=min_steps,
        build=build,
    )
    return model, cnn.predict(model, test_x)[:, 0]


def augmentation(
    real_x,
    real_y,
    synthetic_x,
    synthetic_y,
    test_x,
    test_y,
    test_clusters,
    *,
    all_real_x=None,
    all_real_y=None,
    test_half_a=None,
    seed: int = 0,
    epochs: int = 5,
    min_steps: int = MIN_STEPS,
    resamples: int = 1000,
    label_source: str = "",
    fitted: dict | None = None,
) -> dict:
    """The augmentation scenario: few real patients, with and without synthetic slices.

    Classifiers (real only, real + synthetic, synthetic only, and, given all
    the real training patients, the ceiling "real_all_patients"; same seed,
    class-balanced, `cnn.lesion_classifier`) are trained once and tested on
    many new patients. Test patients are resampled (the same resamples for
    every classifier, so the difference between two classifiers is a paired
    bootstrap): read "real + synthetic beats real only" off the difference's
    interval, and how much there is to gain off the ceiling's.

    Args:
      real_x, real_y: the few real patients' slices and 0/1 tumour labels.
      synthetic_x, synthetic_y: synthetic slices and their 0/1 labels; labels
        None (an unconditional generator) are the ceiling classifier's calls.
      test_x, test_y, test_clusters: test slices, labels and patient ids.
      all_real_x, all_real_y: every real training patient's slices and labels
        (the patients the generator learnt from), for the ceiling.
      test_half_a: optional mask of half the test patients; the floor is the
        real-only classifier's score on half A minus half B (how far a score
        moves between two groups of patients).
      seed, epochs, min_steps: classifier training.
      resamples: bootstrap resamples.
      label_source: how the synthetic labels were obtained (for the report).
      fitted: optional dict of test predictions by setting name ("real_only",
        "real_plus_synthetic", "synthetic_only", "real_all_patients") and the
        ceiling model ("labeller"). A setting found there is not trained again
        (the caller vouches it saw the same training set: several generators
        against the same few patients); every other one is trained and added.

    Raises:
      ValueError: synthetic labels are None and there is no ceiling to label them.
    """
    from kgan.evaluation import bootstrap

    fitted = {} if fitted is None else fitted
    truth = np.asarray(test_y).astype(bool)
    if all_real_x is not None and "real_all_patients" not in fitted:
        model, p = fit_predict(
            all_real_x,
            np.asarray(all_real_y).astype(int),
            test_x,
            seed=seed,
            epochs=epochs,
            min_steps=min_steps,
        )
        fitted["real_all_patients"], fitted["labeller"] = p, model
    if synthetic_y is None:
        if "labeller" not in fitted:
            raise ValueError(
                "synthetic slices have no tumour labels and no real training patients were "
                "given to train a labeller (all_real_x)"
            )
        synthetic_y = (cnn.predict(fitted["labeller"], synthetic_x)[:, 0] >= 0.5).astype(int)
        label_source = label_source or (
            "the ceiling classifier's calls (trained on all real training patients, the "
            "patients the generator learnt from)"
        )
    real_y, synthetic_y = np.asarray(real_y).astype(int), np.asarray(synthetic_y).astype(int)
    w = bootstrap.cluster_weights(test_clusters, resamples, np.random.default_rng([seed, 3]))
    sets = {
        "real_only": (real_x, real_y),
        "real_plus_synthetic": (
            np.concatenate([real_x, synthetic_x]),
            np.concatenate([real_y, synthetic_y]),
        ),
        "synthetic_only": (synthetic_x, synthetic_y),
    }
    if all_real_x is not None:
        sets["real_all_patients"] = (all_real_x, np.asarray(all_real_y).astype(int))
    counts = {"test_slices": len(truth), "test_patients": len(np.unique(test_clusters))}
    results, resampled = {}, {}
    for name, (x, y) in sets.items():
        if len(np.unique(y)) < 2:
            results[name] = {
                "skipped": f"training labels are all {int(y[0]) if len(y) else 'missing'}"
            }
            continue
        if name not in fitted:
            fitted[name] = fit_predict(x, y, test_x, seed=seed, epochs=epochs, min_steps=min_steps)[
                1
            ]
        p = fitted[name]
        point = scores(p, truth)
        resampled[name] = _weighted_scores(p, truth, w)
        results[name] = {
            k: bootstrap.estimate(point[k], resampled[name][k], **counts) for k in _METRICS
        }
        results[name]["train_slices"] = int(len(y))
        results[name]["train_tumour_share"] = float(np.mean(y))
    differences = {}
    for name in ("real_plus_synthetic", "synthetic_only", "real_all_patients"):
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
    if test_half_a is not None and "real_only" in resampled:
        floor = _half_floor(fitted["real_only"], truth, test_clusters, test_half_a, seed, resamples)
    return {
        **results,
        "differences": differences,
        "floor": floor,
        "classifier": "kgan.evaluation.cnn.lesion_classifier",
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


def _half_floor(p, truth, test_clusters, test_half_a, seed, resamples) -> dict:
    """Score on test half A minus half B: how far a score moves between groups of patients."""
    from kgan.evaluation import bootstrap

    half = np.asarray(test_half_a, bool)
    clusters = np.asarray(test_clusters)
    wa = bootstrap.cluster_weights(clusters[half], resamples, np.random.default_rng([seed, 4]))
    wb = bootstrap.cluster_weights(clusters[~half], resamples, np.random.default_rng([seed, 5]))
    sa, sb = scores(p[half], truth[half]), scores(p[~half], truth[~half])
    ra = _weighted_scores(p[half], truth[half], wa)
    rb = _weighted_scores(p[~half], truth[~half], wb)
    floor = {
        k: bootstrap.estimate(
            None if sa[k] is None or sb[k] is None else sa[k] - sb[k],
            ra[k] - rb[k],
            patients_a=len(np.unique(clusters[half])),
            patients_b=len(np.unique(clusters[~half])),
        )
        for k in ("balanced_accuracy", "auc")
    }
    floor["meaning"] = (
        "real-only classifier: score on test half A minus half B (patient-disjoint): "
        "how much a score moves between two groups of patients"
    )
    return floor


def mean_difference(pairs, test_y, test_clusters, *, resamples: int = 1000, seed: int = 0) -> dict:
    """Mean over draws of score(a) - score(b), with a paired bootstrap over test patients.

    Which few real patients a classifier gets moves its score as much as the
    synthetic slices do; averaging the paired difference over several draws
    of those patients keeps one lucky draw from deciding the verdict.

    Args:
      pairs: [(p_a, p_b), ...] test predictions of two classifiers, one pair per draw.
      test_y, test_clusters: test labels and patient ids.

    Returns:
      {"balanced_accuracy": estimate, "auc": estimate, "draws": n}.
    """
    from kgan.evaluation import bootstrap

    truth = np.asarray(test_y).astype(bool)
    w = bootstrap.cluster_weights(test_clusters, resamples, np.random.default_rng([seed, 3]))
    out = {}
    for k in ("balanced_accuracy", "auc"):
        point = np.mean([scores(a, truth)[k] - scores(b, truth)[k] for a, b in pairs])
        resampled = np.mean(
            [_weighted_scores(a, truth, w)[k] - _weighted_scores(b, truth, w)[k] for a, b in pairs],
            axis=0,
        )
        out[k] = bootstrap.estimate(
            float(point),
            resampled,
            test_slices=len(truth),
            test_patients=len(np.unique(test_clusters)),
        )
    out["draws"] = len(pairs)
    return out
