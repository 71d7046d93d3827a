"""Quality levers: EMA of the generator's weights and differentiable augmentation (DiffAugment)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from kgan import augment as aug
from kgan.gans import build_gan

GANS = ("dcgan", "wgan", "wgan-gp", "began")


def _batches(count, batch, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, (batch, size, size, 1)).astype("float32") for _ in range(count)]


def _gan(name, n_critic=2, **params):
    extra = {"n_critic": n_critic} if name in ("wgan", "wgan-gp") else {}
    return build_gan(
        name, image_size=16, width=4, bottleneck=8, latent_dim=8, seed=3, **extra, **params
    )


# ------------------------------------------------------------------------------------ EMA


def test_ema_weights_are_the_hand_computed_average_of_the_trajectory():
    decay = 0.9
    gan = _gan("dcgan", ema_decay=decay)
    gan.compile(jit_compile=False)
    shadow = gan.ema_generator
    assert shadow is not None and gan.sampling_generator is shadow
    assert not shadow.trainable_variables  # never touched by an optimizer
    expected = [w.copy() for w in gan.generator.get_weights()]
    np.testing.assert_array_equal(shadow.get_weights()[0], expected[0])
    for t, images in enumerate(_batches(4, 4)):
        gan.train_on_batch(images)
        d = min(decay, (1 + t) / (10 + t))  # 0.1, 0.1818, 0.25, 0.3077: the warm-up
        expected = [d * e + (1 - d) * w for e, w in zip(expected, gan.generator.get_weights())]
    assert int(gan.ema_updates.numpy()) == 4
    for got, want in zip(shadow.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # ... and it is not simply the current generator.
    assert not np.allclose(shadow.get_weights()[0], gan.generator.get_weights()[0])


def test_ema_off_by_default_serves_the_trained_generator():
    gan = _gan("began")
    assert gan.ema_generator is None and gan.sampling_generator is gan.generator
    assert not gan.augment_policy
    with pytest.raises(ValueError, match="ema_decay"):
        _gan("dcgan", ema_decay=1.0)


@pytest.mark.parametrize("name", ["wgan", "began"])
def test_ema_follows_every_generator_update(name):
    gan = _gan(name, ema_decay=0.5)
    gan.compile(jit_compile=False)
    before = gan.ema_generator.get_weights()[0].copy()
    for images in _batches(2, 4 * gan.real_batches_per_step):
        gan.train_on_batch(images)
    assert int(gan.ema_updates.numpy()) == 2  # one per generator update, not per critic update
    assert not np.allclose(gan.ema_generator.get_weights()[0], before)


def test_ema_copy_saves_and_reloads_with_the_weights(tmp_path):
    gan = _gan("dcgan", ema_decay=0.99)
    gan.compile(jit_compile=False)
    for images in _batches(2, 4):
        gan.train_on_batch(images)
    gan.save_weights(tmp_path / "m.weights.h5")
    fresh = _gan("dcgan", ema_decay=0.99)
    fresh.compile(jit_compile=False)
    fresh.load_weights(tmp_path / "m.weights.h5")
    assert int(fresh.ema_updates.numpy()) == 2
    for a, b in zip(gan.ema_generator.get_weights(), fresh.ema_generator.get_weights()):
        np.testing.assert_array_equal(a, b)
    # The saved copy is a plain generator: same inputs, loadable without kgan.
    path = tmp_path / "g.keras"
    gan.sampling_generator.save(path)
    loaded = keras.saving.load_model(path)
    z = np.random.default_rng(1).standard_normal((3, 8)).astype("float32")
    np.testing.assert_allclose(loaded(z), gan.ema_generator(z), atol=1e-6)
    assert [t.name for t in loaded.inputs] == [t.name for t in gan.generator.inputs]


@pytest.mark.parametrize("name", ["dcgan", "began"])
def test_ema_copy_of_a_conditional_generator_keeps_the_export_contract(name):
    from kgan.export import describe_generator

    gan = _gan(name, ema_decay=0.99, conditional=True)
    assert describe_generator(gan.ema_generator) == describe_generator(gan.generator)
    assert [t.name for t in gan.ema_generator.inputs] == [t.name for t in gan.generator.inputs]
    assert gan.ema_generator.name == gan.generator.name


# ----------------------------------------------------------------------------- DiffAugment


def test_translation_shifts_with_background_fill():
    x = np.arange(1, 17, dtype="float32").reshape(1, 4, 4, 1) / 16.0
    params = {"shift": tf.constant([[1, -2]], tf.int32)}  # down 1, left 2
    got = aug.apply_params(tf.constant(x), params).numpy()[0, :, :, 0]
    want = np.full((4, 4), -1.0, "float32")
    want[1:, :2] = x[0, :3, 2:, 0]
    np.testing.assert_array_equal(got, want)


def test_cutout_blanks_a_square_clipped_at_the_border():
    x = np.zeros((2, 8, 8, 1), "float32")
    params = {"cutout": tf.constant([[2, 3], [-2, 6]], tf.int32)}
    got = aug.apply_params(tf.constant(x), params).numpy()[..., 0]
    hole = aug.cutout_size(8)
    assert hole == 4
    want = np.zeros((2, 8, 8), "float32")
    want[0, 2:6, 3:7] = -1.0
    want[1, 0:2, 6:8] = -1.0
    np.testing.assert_array_equal(got, want)


def test_brightness_and_contrast_formulas():
    x = np.random.default_rng(0).uniform(-1, 1, (2, 4, 4, 1)).astype("float32")
    params = {"brightness": tf.constant([0.25, -0.5]), "contrast": tf.constant([1.5, 0.5])}
    got = aug.apply_params(tf.constant(x), params).numpy()
    y = x + np.array([0.25, -0.5], "float32")[:, None, None, None]
    mean = y.mean(axis=(1, 2, 3), keepdims=True)
    want = (y - mean) * np.array([1.5, 0.5], "float32")[:, None, None, None] + mean
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_augmentation_is_seeded_and_ranges_hold():
    x = tf.constant(np.random.default_rng(1).uniform(-1, 1, (16, 16, 16, 1)).astype("float32"))
    policy = aug.POLICIES
    a = aug.diff_augment(x, [4, 7], policy).numpy()
    b = aug.diff_augment(x, [4, 7], policy).numpy()
    c = aug.diff_augment(x, [4, 8], policy).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    p = aug.draw_params(tf.constant([4, 7]), 500, 16, policy)
    shift = p["shift"].numpy()
    assert shift.min() == -2 and shift.max() == 2  # 0.125 * 16 pixels either way, inclusive
    corner = p["cutout"].numpy()
    assert corner.min() >= -4 and corner.max() <= 13
    assert -0.5 <= p["brightness"].numpy().min() and p["brightness"].numpy().max() < 0.5
    assert 0.5 <= p["contrast"].numpy().min() and p["contrast"].numpy().max() < 1.5


def test_gradients_flow_through_every_operation():
    x = tf.constant(np.random.default_rng(2).uniform(-1, 1, (2, 8, 8, 1)).astype("float32"))
    weights = tf.constant(np.random.default_rng(3).uniform(size=(2, 8, 8, 1)).astype("float32"))
    params = {"shift": tf.constant([[1, 0], [0, -1]]), "cutout": tf.constant([[0, 0], [6, 6]])}
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = aug.apply_params(x, params)
        loss = tf.reduce_sum(y * weights)
    grad = tape.gradient(loss, x).numpy()
    # Pixel (i, j) moves to (i + dy, j + dx) unless shifted off or then cut out.
    want = np.zeros_like(grad)
    want[0, :7, :, :] = weights.numpy()[0, 1:, :, :]
    want[0, :3, :4, :] = 0.0  # the cut-out square (rows 0-3, cols 0-3 of the output) -> rows -1..2
    want[1, :, 1:, :] = weights.numpy()[1, :, :7, :]
    want[1, 6:, 7:, :] = 0.0  # output rows 6-7, cols 6-7 are cut out: input cols 7-8, 8 is off
    np.testing.assert_allclose(grad, want, atol=1e-7)
    for policy in (("brightness",), ("contrast",)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(aug.diff_augment(x, [0, 1], policy) * weights)
        assert np.abs(tape.gradient(loss, x).numpy()).sum() > 0


def test_policy_parsing():
    assert aug.parse_policy(None) == () == aug.parse_policy("none") == aug.parse_policy([])
    assert aug.parse_policy("cutout, translation") == ("translation", "cutout")
    with pytest.raises(ValueError, match="flip"):
        aug.parse_policy(["translation", "flip"])


def test_augmentation_off_draws_nothing_and_on_changes_the_step():
    images = _batches(1, 4)[0]
    plain, on = _gan("dcgan"), _gan("dcgan", augment=["translation", "cutout"])
    for gan in (plain, on):
        gan.compile(jit_compile=False)
        gan.train_on_batch(images)
    # Off: two z draws a step, as before the lever existed. On: three augmentations more.
    assert plain.latent_seed.numpy().tolist() == [3, 2]
    assert on.latent_seed.numpy().tolist() == [3, 5]
    assert not np.allclose(plain.discriminator.get_weights()[0], on.discriminator.get_weights()[0])


@pytest.mark.parametrize("name", GANS)
def test_every_gan_trains_with_both_levers_compiled(name):
    # One critic update a step: XLA unrolls the critic loop, and compiling it dominates the time.
    gan = _gan(name, n_critic=1, ema_decay=0.999, augment=aug.POLICIES)
    gan.compile(jit_compile=True)
    start = gan.latent_seed.numpy()[1]
    for images in _batches(2, 4 * gan.real_batches_per_step):
        logs = gan.train_on_batch(images, return_dict=True)
    assert all(np.isfinite(v) for v in logs.values())
    assert int(gan.ema_updates.numpy()) == 2
    # Every discriminator input was augmented: per step one z per critic update plus one for
    # the generator, and an augmentation per real and fake batch (and per generator fake).
    critic = gan.real_batches_per_step
    draws = {
        "dcgan": 2 + 3,
        "wgan": critic + 1 + 2 * critic + 1,
        "wgan-gp": critic * 2 + 1 + 2 * critic + 1,
        "began": 1 + 2,
    }[name]
    assert gan.latent_seed.numpy()[1] - start == 2 * draws
