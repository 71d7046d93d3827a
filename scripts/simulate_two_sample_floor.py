#!/usr/bin/env python
"""How far one patient split's real-vs-real two-sample floor swings, on toy cohorts (numpy).

The evaluation's floor trains on quarter A1 vs B1 and tests on A2 vs B2 (and the reverse). Here
each toy patient is a random feature vector, its slices that vector plus noise, and the
classifier a mean-difference linear rule. Over many toy cohorts it prints the floor of one split
and of the mean of several splits: its average (near 50 % when the design is unbiased) and its
spread (what one split alone can show by chance). docs/evaluation.md quotes its output.

  python scripts/simulate_two_sample_floor.py --patients 24 --splits 5
"""

import argparse

import numpy as np


def floor_of_split(x: np.ndarray, split_seed: int) -> float:
    """Cross-fitted accuracy of one split of patients x [P, S, D] into four quarters."""
    order = np.random.default_rng(split_seed).permutation(len(x))
    a1, b1, a2, b2 = (order[k::4] for k in range(4))
    accuracies = []
    flat = x.reshape(len(x), -1, x.shape[2])
    for train_a, train_b, test_a, test_b in ((a1, b1, a2, b2), (a2, b2, a1, b1)):
        mean_a = flat[train_a].reshape(-1, x.shape[2]).mean(0)
        mean_b = flat[train_b].reshape(-1, x.shape[2]).mean(0)
        w, b = mean_a - mean_b, (mean_a - mean_b) @ (mean_a + mean_b) / 2
        says_a = [flat[g].reshape(-1, x.shape[2]) @ w - b > 0 for g in (test_a, test_b)]
        accuracies.append((np.mean(says_a[0]) + np.mean(~says_a[1])) / 2)
    return float(np.mean(accuracies))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--patients", type=int, default=24)
    p.add_argument("--slices", type=int, default=40)
    p.add_argument("--dims", type=int, default=20)
    p.add_argument("--noise", type=float, default=0.7, help="slice noise against patient spread 1")
    p.add_argument("--splits", type=int, default=5, help="splits averaged in the repeated design")
    p.add_argument("--cohorts", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    def cohort(k):
        rng = np.random.default_rng([args.seed, k])
        patients = rng.normal(size=(args.patients, 1, args.dims))
        return patients + args.noise * rng.normal(size=(args.patients, args.slices, args.dims))

    one, pooled = [], []
    for k in range(args.cohorts):
        x = cohort(k)
        floors = [floor_of_split(x, split) for split in range(args.splits)]
        one.append(floors[0])
        pooled.append(np.mean(floors))
    for name, values in (("one split", one), (f"mean of {args.splits} splits", pooled)):
        values = np.asarray(values)
        print(
            f"{name}: mean {values.mean():.1%}, standard deviation {values.std():.1%} "
            f"({args.cohorts} toy cohorts of {args.patients} patients)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
