"""The automated Visual Turing Test: a classifier two-sample test (Lopez-Paz & Oquab 2017).

A small CNN learns to tell real from synthetic slices on one set of patients
and samples, then answers for patients and samples it never saw, exactly as
the paper's physician did. If the two distributions were the same, no
classifier could beat chance on unseen data; its table (the paper's layout,
see `confusion`) and an exact binomial test say how far from chance it is.
Test sets are balanced (as many real as synthetic slices), as in the paper.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from kgan.evaluation import cnn
from kgan.evaluation.confusion import TuringTable


def auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve from ranks (Mann-Whitney); None when one class is absent."""
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = stats.rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _take(x: np.ndarray, clusters: np.ndarray, n: int, rng: np.random.Generator):
    pick = np.sort(rng.permutation(len(x))[:n])
    return x[pick], np.asarray(clusters)[pick]


def cross_fitted(
    folds,
    *,
    seed: int = 0,
    epochs: int = 5,
    batch_size: int = 64,
    min_steps: int = cnn.MIN_STEPS,
    max_per_class: int | None = None,
    resamples: int = 1000,
    labels=("real", "synthetic"),
    strata=("real", "synthetic"),
) -> dict:
    """A two-sample test whose classifiers always answer for patients and samples they never saw.

    Each fold trains one classifier on (positive, negative) training sets and
    predicts its (positive, negative) test sets; every test item is held out
    from its fold's training. Folds may come from several random splits of the
    patients ("repeat" in each fold): with a few dozen patients, one split's
    answer swings far around chance (its test groups are whatever its
    training groups left over, so the accuracy depends on how that one draw
    happened to fall; 9 points standard deviation for 24 toy patients),
    and averaging over several random splits shrinks that swing.
    Each class is subsampled to the same count within a fold (balanced, as in
    the paper). The pooled predictions give the paper's table; their cluster
    bootstrap gives 95 % intervals without retraining: the clusters of each
    stratum (patients for real slices, single slices for synthetic ones) are
    drawn with replacement, and a drawn patient brings its answers from every
    fold and split, whichever class it played there.

    Args:
      folds: list of dicts with "pos_train", "neg_train", "pos_test", "neg_test"
        (image arrays), "pos_test_clusters", "neg_test_clusters" ([N] ids) and
        optionally "repeat" (which patient split the fold belongs to).
      seed: seeds subsampling, classifier weights and the bootstrap.
      epochs, batch_size, min_steps: classifier budget.
      max_per_class: cap on slices per class and set within a fold.
      resamples: bootstrap resamples.
      labels: names of the positive and negative class (for the report).
      strata: the population each class's clusters come from; equal names
        (real vs real) resample one pool of patients.

    Returns:
      The table (`TuringTable.to_dict`), "accuracy"/"sensitivity"/"specificity"/"auc"
      as estimates with intervals, counts of slices and clusters per class, and
      accuracies per fold and per split.
    """
    from kgan.evaluation import bootstrap

    rng = np.random.default_rng(seed)
    scores, truth, clusters, fold_acc, n_train, repeat_of = [], [], [], [], [], []
    for k, fold in enumerate(folds):
        n = min(len(fold["pos_train"]), len(fold["neg_train"]))
        m = min(len(fold["pos_test"]), len(fold["neg_test"]))
        if max_per_class:
            n, m = min(n, max_per_class), min(m, max_per_class)
        if n < 2 or m < 1:
            raise ValueError(
                f"two-sample test fold {k} needs data: {n} training and {m} test slices per class"
            )
        pos_tr, _ = _take(fold["pos_train"], np.zeros(len(fold["pos_train"])), n, rng)
        neg_tr, _ = _take(fold["neg_train"], np.zeros(len(fold["neg_train"])), n, rng)
        pos_te, pos_c = _take(fold["pos_test"], fold["pos_test_clusters"], m, rng)
        neg_te, neg_c = _take(fold["neg_test"], fold["neg_test_clusters"], m, rng)
        x = np.concatenate([pos_tr, neg_tr])
        y = np.concatenate([np.ones(n), np.zeros(n)])
        model = cnn.fit_binary(
            x, y, seed=seed + k, epochs=epochs, batch_size=batch_size, min_steps=min_steps
        )
        p = cnn.predict(model, np.concatenate([pos_te, neg_te]))[:, 0]
        t = np.concatenate([np.ones(m, bool), np.zeros(m, bool)])
        fold_acc.append(float(np.mean((p >= 0.5) == t)))
        n_train.append(int(n))
        repeat_of.append(int(fold.get("repeat", 0)))
        scores.append(p)
        truth.append(t)
        clusters.append(
            np.concatenate(
                [[f"{strata[0]}:{c}" for c in pos_c], [f"{strata[1]}:{c}" for c in neg_c]]
            )
        )
    p, t, c = np.concatenate(scores), np.concatenate(truth), np.concatenate(clusters)
    table = TuringTable.from_labels(t, p >= 0.5)
    brng = np.random.default_rng([seed, 7])
    # Resample each stratum's clusters separately (real and synthetic are independent samples).
    stratum = np.array([name.split(":", 1)[0] for name in c])
    w = np.zeros((resamples, len(p)))
    for name in dict.fromkeys(strata):
        idx = np.flatnonzero(stratum == name)
        w[:, idx] = bootstrap.cluster_weights(c[idx], resamples, brng)
    correct = ((p >= 0.5) == t).astype(float)
    sens = bootstrap.weighted_mean(correct[t], w[:, t])
    spec = bootstrap.weighted_mean(correct[~t], w[:, ~t])
    counts = {
        "n_pos": int(t.sum()),
        "n_neg": int((~t).sum()),
        "clusters_pos": int(len(np.unique(c[t]))),
        "clusters_neg": int(len(np.unique(c[~t]))),
    }
    repeats = sorted(set(repeat_of))
    repeat_acc = [
        float(np.mean([a for a, r in zip(fold_acc, repeat_of) if r == q])) for q in repeats
    ]
    return {
        **table.to_dict(),
        "table": table,
        "accuracy": bootstrap.estimate(table.accuracy, (sens + spec) / 2, **counts),
        "sensitivity": bootstrap.estimate(table.sensitivity, sens, **counts),
        "specificity": bootstrap.estimate(table.specificity, spec, **counts),
        "auc": bootstrap.estimate(
            bootstrap.weighted_auc(p, t), bootstrap.weighted_auc(p, t, w), **counts
        ),
        "folds": len(folds),
        "fold_accuracy": fold_acc,
        "train_per_class": n_train,
        "repeats": len(repeats),
        "repeat_accuracy": repeat_acc,
        "test_per_class": int(t.sum() // len(folds)),
        "positive": labels[0],
        "negative": labels[1],
        "seed": seed,
        "epochs": epochs,
        "min_steps": min_steps,
    }
