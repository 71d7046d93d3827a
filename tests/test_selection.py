"""The realism filter (kgan.selection): drops what real slices do not look like, keeps shares."""

import numpy as np
import pytest
from test_evaluate import toy_slice

from kgan import selection


def _toy_real(n, rng, modalities=(0, 1, 2, 3), weights=None):
    mods = rng.choice(modalities, n, p=weights)
    return np.stack(
        [toy_slice(rng, int(m), k % 2 == 1, 16)[..., None] for k, m in enumerate(mods)]
    ), mods


def _partly_noise_generator():
    """Toy slices of every modality, every fourth one uniform noise; deterministic per seed."""

    def generate(count, seed=0, modality=None, tumour=None):
        rng = np.random.default_rng(seed)
        good, _ = _toy_real(count, rng)
        noise = rng.uniform(-1, 1, good.shape).astype(np.float32)
        return np.where((np.arange(count) % 4 != 0)[:, None, None, None], good, noise)

    return generate


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    real, mods = _toy_real(400, rng, weights=[0.3, 0.2, 0.25, 0.25])
    generate = _partly_noise_generator()
    flt = selection.RealismFilter.fit(
        lambda n, s: generate(n, seed=s), real, mods, seed=0, per_class=400, epochs=1, min_steps=60
    )
    return flt, generate


def test_filter_drops_noise_and_keeps_the_real_modality_shares(fitted):
    flt, generate = fitted
    draw = selection.filtered_generate(generate, flt, keep=0.5, conditional=False)
    kept = draw(200, seed=5)
    picked = flt.select(generate(400, seed=5), 200)  # what draw kept, by candidate index
    np.testing.assert_array_equal(kept, generate(400, seed=5)[picked])
    assert kept.shape == (200, 16, 16, 1) and np.mean(picked % 4 == 0) < 0.05  # every 4th was noise
    shares = np.bincount(flt.modality_of(kept), minlength=4) / 200
    np.testing.assert_allclose(
        shares, flt.shares, atol=0.1
    )  # T1 kept near its real 30 %, not the drawn 25 %
    assert draw(200, seed=5).tobytes() == kept.tobytes()  # same seed, same slices


def test_conditional_filter_keeps_the_requested_condition_per_slice(fitted):
    flt, _ = fitted
    asked = []

    def generate(count, seed=0, modality=None, tumour=None):
        asked.append(np.asarray(modality))
        return _partly_noise_generator()(count, seed)

    draw = selection.filtered_generate(generate, flt, keep=0.25, conditional=True)
    out = draw(6, seed=1, modality=np.array([0, 1, 2, 3, 0, 1]), tumour=np.zeros(6, int))
    assert out.shape[0] == 6
    np.testing.assert_array_equal(
        asked[0], np.repeat([0, 1, 2, 3, 0, 1], 4)
    )  # 4 candidates per request
    best = flt.best_of_groups(_partly_noise_generator()(24, 1), 6)
    assert all(4 * g <= i < 4 * g + 4 for g, i in enumerate(best))


def test_keep_must_be_a_fraction():
    assert selection.candidates_per_slice(0.5) == 2 and selection.candidates_per_slice(1.0) == 1
    assert selection.candidates_per_slice(0.3) == 4
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="fraction"):
            selection.candidates_per_slice(bad)
