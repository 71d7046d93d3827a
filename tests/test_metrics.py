"""Each evaluation metric on cases with a known answer."""

import numpy as np
import pytest
from test_evaluate import toy_slice

from kgan.evaluation import (
    diversity,
    downstream,
    encoder,
    frechet,
    intensity,
    memorisation,
    swd,
    two_sample,
)

RNG = np.random.default_rng(1234)


def _toy_set(n, seed, size=16, shift=0.0, tumour_share=0.5):
    rng = np.random.default_rng(seed)
    images = [
        toy_slice(rng, int(rng.integers(0, 4)), rng.random() < tumour_share, size) for _ in range(n)
    ]
    return np.clip(np.stack(images)[..., None] + shift * (np.stack(images)[..., None] > -1), -1, 1)


# ------------------------------------------------------------------ SWD
def test_laplacian_pyramid_levels_and_exact_reconstruction():
    images = RNG.uniform(-1, 1, (3, 64, 64))
    levels = swd.laplacian_pyramid(images, min_resolution=16)
    assert [level.shape[1] for level in levels] == [64, 32, 16]
    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):
        rebuilt = band + swd._upsample(rebuilt, band.shape[1:])
    np.testing.assert_allclose(rebuilt, images, atol=1e-12)
    flat = np.full((2, 32, 32), 0.3)
    bands = swd.laplacian_pyramid(flat, 16)
    np.testing.assert_allclose(bands[0], 0.0, atol=1e-12)  # no detail in a flat image
    np.testing.assert_allclose(bands[1], 0.3, atol=1e-12)


def test_sliced_wasserstein_hand_computed_1d():
    a = np.array([[0.0], [1.0], [2.0]])
    b = a + 1.5  # every projection of 1-D data is +-x: distance 1.5 whichever the direction
    assert swd.sliced_wasserstein(
        a, b, np.random.default_rng(0), projections=8, repeats=2
    ) == pytest.approx(1.5)


def test_swd_identical_zero_shifted_larger_than_sampling_noise():
    real, other_real = _toy_set(60, 1), _toy_set(60, 2)
    same = swd.swd(real, real.copy(), seed=0)
    assert same["mean"] == 0.0 and list(same["levels"]) == [16]
    noise = swd.swd(real, other_real, seed=0)["mean"]
    shifted = swd.swd(real, _toy_set(60, 2, shift=0.3), seed=0)["mean"]
    assert 0 < noise < shifted / 3
    assert swd.swd(real, other_real, seed=0)["mean"] == noise  # seeded: same number again


# ------------------------------------------------------------------ FID / KID
def test_fid_hand_computed_and_known_cases():
    # N(0, var 2) vs N(2, var 8) in 1-D: 2^2 + 2 + 8 - 2 sqrt(16) = 6
    assert frechet.fid(np.array([[-1.0], [1.0]]), np.array([[0.0], [4.0]])) == pytest.approx(6.0)
    a = RNG.standard_normal((500, 6))
    assert frechet.fid(a, a) == pytest.approx(0.0, abs=1e-8)
    b = RNG.standard_normal((500, 6))
    # a mean shift of 1 in each of 6 dimensions adds 6
    assert frechet.fid(a, b + 1.0) == pytest.approx(6.0 + frechet.fid(a, b), abs=0.3)
    assert frechet.fid(a, b) < 0.3


def test_kid_unbiased_near_zero_for_same_distribution_and_grows_with_shift():
    a, b = RNG.standard_normal((300, 6)), RNG.standard_normal((300, 6))
    same = frechet.kid(a, b, subset_size=100, subsets=20, seed=0)
    shifted = frechet.kid(a, b + 1.0, subset_size=100, subsets=20, seed=0)
    assert abs(same["mean"]) < 3 * same["std"] + 0.02
    assert shifted["mean"] > 10 * abs(same["mean"]) and shifted["mean"] > 0.5
    assert same["subset_size"] == 100 and same == frechet.kid(
        a, b, subset_size=100, subsets=20, seed=0
    )
    with pytest.raises(ValueError, match="equal D"):
        frechet.fid(a, b[:, :3])


# ------------------------------------------------------------------ MS-SSIM diversity
def test_ms_ssim_scales_and_identity():
    assert [diversity.scales_for(s) for s in (16, 32, 64, 128)] == [2, 3, 4, 5]
    assert sum(diversity.power_factors(64)) == pytest.approx(1.0)
    x = _toy_set(4, 5, size=32)
    np.testing.assert_allclose(diversity.ms_ssim(x, x), 1.0, atol=1e-5)


def test_collapsed_generator_has_ms_ssim_far_above_real():
    real = _toy_set(80, 6, size=32)
    rng = np.random.default_rng(0)
    collapsed = np.clip(
        np.repeat(real[:1], 80, 0) + rng.normal(0, 0.01, real.shape) * (real[:1] > -1), -1, 1
    )
    d_real = diversity.mean_pairwise_ms_ssim(real, pairs=100, seed=0)
    d_collapsed = diversity.mean_pairwise_ms_ssim(collapsed, pairs=100, seed=0)
    assert d_collapsed["mean"] > 0.95 and d_collapsed["mean"] > d_real["mean"] + 0.2
    pairs = diversity.random_pairs(10, 50, seed=1, groups=np.arange(10) % 2)
    assert np.all(pairs[:, 0] != pairs[:, 1]) and np.all(pairs[:, 0] % 2 == pairs[:, 1] % 2)


# ------------------------------------------------------------------ intensity
def test_brain_histograms_identical_and_shifted():
    size = 16
    base = np.full((4, size, size, 1), -1.0)
    base[:, 4:12, 4:12] = 0.0
    brighter = base.copy()
    brighter[:, 4:12, 4:12] = 0.5
    same = intensity.compare(base, base.copy())
    assert same["wasserstein1"] == 0.0 and same["intersection"] == pytest.approx(1.0)
    assert same["brain_share_reference"] == pytest.approx(64 / 256)
    moved = intensity.compare(base, brighter)
    bin_width = (1 - intensity.BRAIN_THRESHOLD) / intensity.BINS
    assert moved["wasserstein1"] == pytest.approx(0.5, abs=bin_width)  # all mass moves by 0.5
    assert moved["intersection"] == 0.0
    assert (
        intensity.wasserstein1(
            np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), np.array([0, 1, 2, 3.0])
        )
        == 2.0
    )


# ------------------------------------------------------------------ memorisation
def test_nearest_neighbours_hand_computed():
    train = np.array([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]])
    idx, dist = memorisation.nearest(np.array([[3.0, 4.1], [9.0, 0.0], [0.0, 0.0]]), train)
    assert idx.tolist() == [1, 2, 0]
    np.testing.assert_allclose(dist, [0.1, 1.0, 0.0], atol=1e-6)


def test_copied_training_slices_are_flagged_and_fresh_ones_are_not():
    train, heldout = _toy_set(120, 7), _toy_set(40, 8)
    copies = train[RNG.choice(len(train), 30, replace=False)]
    flagged = memorisation.memorisation(copies, heldout, train)
    assert flagged["flagged"] and flagged["exact_copies"] == 30
    assert (
        flagged["pixels"]["synthetic"]["min"] == 0.0
        and flagged["pixels"]["synthetic"]["median"] == 0.0
    )
    assert flagged["pixels"]["synthetic_below_heldout_p1"] == 1.0
    assert flagged["pixels"]["mannwhitney_p_synthetic_closer"] < 1e-6
    fresh = memorisation.memorisation(_toy_set(30, 9), heldout, train)
    assert not fresh["flagged"] and fresh["exact_copies"] == 0
    assert fresh["pixels"]["synthetic"]["min"] > memorisation.COPY_RMS


# ------------------------------------------------------------------ classifiers
def test_auc_and_downstream_scores_hand_computed():
    assert two_sample.auc(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 1, 0, 0])) == 1.0
    assert two_sample.auc(np.array([0.9, 0.2, 0.3, 0.1]), np.array([1, 1, 0, 0])) == 0.75
    assert two_sample.auc(np.array([0.5, 0.5]), np.array([1, 1])) is None
    s = downstream.scores(np.array([0.9, 0.4, 0.6, 0.1]), np.array([1, 1, 0, 0]))
    assert (s["accuracy"], s["sensitivity"], s["specificity"], s["balanced_accuracy"]) == (
        0.5,
        0.5,
        0.5,
        0.5,
    )


def _one_fold(pos_train, neg_train, pos_test, neg_test):
    """One cross-fitting fold; each test slice its own cluster."""
    return [
        {
            "pos_train": pos_train,
            "neg_train": neg_train,
            "pos_test": pos_test,
            "neg_test": neg_test,
            "pos_test_clusters": np.arange(len(pos_test)),
            "neg_test_clusters": np.arange(len(neg_test)),
        }
    ]


def test_two_sample_test_separates_different_sets_and_not_identical_ones():
    real_a, real_b = _toy_set(64, 10), _toy_set(64, 11)
    fake_a = _toy_set(64, 12, shift=0.5)  # much brighter tissue
    fake_b = _toy_set(64, 13, shift=0.5)
    easy = two_sample.cross_fitted(
        _one_fold(real_a, fake_a, real_b, fake_b), seed=0, epochs=1, resamples=100
    )
    assert (
        easy["accuracy"]["value"] > 0.9
        and easy["binomial_p_two_sided"] < 1e-6
        and easy["test_per_class"] == 64
    )
    same = two_sample.cross_fitted(
        _one_fold(real_a, _toy_set(64, 14), real_b, _toy_set(64, 15)),
        seed=0,
        epochs=1,
        resamples=100,
    )
    assert same["accuracy"]["value"] < 0.75


def _blob(x):  # tumour blob present
    return (x.reshape(len(x), -1) > 0.9).any(1).astype(int)


def test_augmentation_settings_ceiling_differences_and_floor():
    rng = np.random.default_rng(3)
    real, test, synth, every = (
        _toy_set(96, 20),
        _toy_set(64, 21),
        _toy_set(48, 22),
        _toy_set(160, 23),
    )
    fitted = {}
    result = downstream.augmentation(
        real,
        _blob(real),
        synth,
        None,  # unconditional: the ceiling classifier labels the synthetic slices
        test,
        _blob(test),
        np.arange(64) // 4,
        all_real_x=every,
        all_real_y=_blob(every),
        test_half_a=rng.random(64) < 0.5,
        seed=0,
        epochs=1,
        min_steps=100,
        resamples=100,
        fitted=fitted,
    )
    for name in ("real_only", "real_plus_synthetic", "synthetic_only", "real_all_patients"):
        assert 0 <= result[name]["balanced_accuracy"]["value"] <= 1
        assert fitted[name].shape == (64,)
    assert result["real_all_patients"]["auc"]["value"] > 0.7  # the blob is easy to see
    assert "ceiling classifier" in result["label_source"]
    # The synthetic labels are the ceiling classifier's calls on the synthetic slices.
    calls = (fitted["labeller"].predict(synth, verbose=0)[:, 0] >= 0.5).mean()
    assert result["synthetic_tumour_share"] == pytest.approx(calls)
    headroom = result["differences"]["real_all_patients_minus_real_only"]["auc"]["value"]
    assert headroom == pytest.approx(
        result["real_all_patients"]["auc"]["value"] - result["real_only"]["auc"]["value"]
    )
    assert result["floor"]["auc"] is not None


def test_augmentation_reuses_fitted_real_classifiers():
    """A second generator against the same real sets reuses the real-only classifier."""
    real, test, synth = _toy_set(64, 24), _toy_set(40, 25), _toy_set(32, 26)
    truth = _blob(test)
    fitted = {"real_only": truth.astype(np.float32)}  # a perfect "classifier"
    result = downstream.augmentation(
        real, _blob(real), synth, _blob(synth), test, truth, np.arange(40) // 4,
        seed=0, epochs=1, min_steps=20, resamples=50, fitted=fitted,
    )  # fmt: skip
    assert result["real_only"]["balanced_accuracy"]["value"] == 1.0
    assert result["real_only"]["auc"]["value"] == 1.0
    with pytest.raises(ValueError, match="no tumour labels"):
        downstream.augmentation(
            real, _blob(real), synth, None, test, truth, np.arange(40) // 4, min_steps=1
        )  # fmt: skip


def test_mean_difference_averages_paired_draws():
    truth = np.array([1, 1, 0, 0, 1, 0])
    clusters = np.array([0, 0, 1, 1, 2, 2])
    perfect = truth.astype(float)
    always = np.full(6, 0.9)  # says tumour every time: balanced accuracy 0.5, AUC 0.5
    one_wrong = np.array([0.9, 0.2, 0.1, 0.1, 0.8, 0.3])  # misses one of 3 tumours: 5/6
    out = downstream.mean_difference(
        [(perfect, always), (one_wrong, always)], truth, clusters, resamples=200
    )
    # draw 1: 1.0 - 0.5; draw 2: (2/3 + 1) / 2 - 0.5 = 1/3; mean (0.5 + 1/3) / 2
    assert out["balanced_accuracy"]["value"] == pytest.approx((0.5 + 1 / 3) / 2)
    # AUC: perfect 1; one_wrong ranks its 0.2 tumour below the 0.3 non-tumour: 8/9; always 0.5.
    assert out["auc"]["value"] == pytest.approx((0.5 + (8 / 9 - 0.5)) / 2)
    lo, hi = out["balanced_accuracy"]["ci95"]
    assert lo <= out["balanced_accuracy"]["value"] <= hi and out["draws"] == 2


# ------------------------------------------------------------------ encoder reuse
def test_encoder_is_trained_once_then_reused_with_same_hash(tmp_path):
    images = _toy_set(64, 30)
    labels = {
        "modality": RNG.integers(0, 4, 64),
        "tumour": RNG.integers(0, 2, 64),
        "slice_index": RNG.integers(40, 60, 64),
    }
    path = str(tmp_path / "enc.keras")
    calls = []

    def data():
        calls.append(1)
        return images, labels

    first = encoder.load_or_train(path, data, dataset="toy", seed=0, epochs=1, log=lambda *_: None)
    second = encoder.load_or_train(path, data, dataset="toy", seed=0, epochs=1, log=lambda *_: None)
    assert len(calls) == 1 and first.sha256 == second.sha256 == encoder.file_sha256(path)
    np.testing.assert_allclose(first.features(images), second.features(images), atol=1e-6)
    assert second.describe()["dataset"] == "toy" and second.describe()["train_slices"] == 64
    assert first.features(images).shape == (64, 64)
    with pytest.raises(ValueError, match="takes 16x16"):
        first.features(np.zeros((2, 32, 32, 1), np.float32))


def test_few_patients_is_seeded_sorted_and_differs_by_draw():
    ids = np.repeat([f"P{i:02d}" for i in range(16)], 3)  # three slices per patient
    first = downstream.few_patients(ids, 4, seed=7)
    assert first == downstream.few_patients(ids, 4, seed=7, draw=0) == sorted(first)
    assert len(set(first)) == 4 and set(first) <= set(ids)
    assert downstream.few_patients(ids, 4, seed=7, draw=1) != first
