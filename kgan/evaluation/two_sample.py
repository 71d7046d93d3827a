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


def _balanced(a: np.ndarray, b: np.ndarray, rng: np.random.Generator):
    n = min(len(a), len(b))
    return a[np.sort(rng.permutation(len(a))[:n])], b[np.sort(rng.permutation(len(b))[:n])]


def auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve from ranks (Mann-Whitney); None when one class is absent."""
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = stats.rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classifier_test(real_train: np.ndarray, other_train: np.ndarray, real_test: np.ndarray,
                    other_test: np.ndarray, *, seed: int = 0, epochs: int = 5,
                    batch_size: int = 64, min_steps: int = cnn.MIN_STEPS) -> dict:
    """Trains real-vs-other on the train sets, answers on the test sets.

    Args:
      real_train, other_train: [N, S, S, 1] training slices of each kind (the
        larger is subsampled so both count the same).
      real_test, other_test: unseen slices, balanced the same way.
      seed: seeds subsampling, weights and shuffles.
      epochs, batch_size, min_steps: training budget (at least min_steps updates).

    Returns:
      The paper's table as a dict plus "auc", "train_per_class", "test_per_class",
      "seed", "epochs".
    """
    rng = np.random.default_rng(seed)
    real_train, other_train = _balanced(real_train, other_train, rng)
    real_test, other_test = _balanced(real_test, other_test, rng)
    if len(real_train) < 2 or len(real_test) < 1:
        raise ValueError(f"two-sample test needs data: {len(real_train)} training and "
                         f"{len(real_test)} test slices per class")
    x = np.concatenate([real_train, other_train])
    y = np.concatenate([np.ones(len(real_train)), np.zeros(len(other_train))])
    model = cnn.fit_binary(x, y, seed=seed, epochs=epochs, batch_size=batch_size, min_steps=min_steps)
    test = np.concatenate([real_test, other_test])
    truth_real = np.concatenate([np.ones(len(real_test), bool), np.zeros(len(other_test), bool)])
    p_real = cnn.predict(model, test)[:, 0]
    table = TuringTable.from_labels(truth_real, p_real >= 0.5)
    return {**table.to_dict(), "auc": auc(p_real, truth_real),
            "train_per_class": int(len(real_train)), "test_per_class": int(len(real_test)),
            "seed": seed, "epochs": cnn.epochs_for(len(x), epochs, batch_size, min_steps), "table": table}
