"""Network shapes, layer layout, conditioning, output range and .keras portability."""

import json
import os
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from kgan import networks


def z_batch(n=3, dim=100, scale=1.0, seed=0):
    return tf.random.stateless_normal([n, dim], seed=[seed, 7]) * scale


def labels(n=3):
    return tf.constant([0, 1, 3][:n], tf.int32), tf.constant([0, 1, 1][:n], tf.int32)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_dcgan_shapes(size):
    g = networks.dcgan_generator(size, 100, width=4)
    d = networks.dcgan_discriminator(size, width=4)
    images = g(z_batch())
    assert images.shape == (3, size, size, 1) and images.dtype == tf.float32
    assert d(images).shape == (3, 1)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_began_shapes(size):
    g = networks.began_generator(size, 100, filters=4)
    d = networks.began_discriminator(size, filters=4, bottleneck=8)
    images = g(z_batch())
    assert images.shape == (3, size, size, 1)
    assert d(images).shape == (3, size, size, 1)
    assert d.get_layer("embedding").output.shape == (None, 8)


def test_dcgan_64_is_radfords_layout():
    """4x4x512 projection, channels halving to 64 at 32x32, then 64x64x1 with tanh."""
    g = networks.dcgan_generator(64, 100, width=64)
    shapes = [g.get_layer(n).output.shape[1:] for n in ("reshape", "up1", "up2", "up3", "up4")]
    assert shapes == [(4, 4, 512), (8, 8, 256), (16, 16, 128), (32, 32, 64), (64, 64, 1)]
    assert g.get_layer("images").get_config()["activation"] == "tanh"
    bn = [layer for layer in g.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bn) == 4  # every hidden block, not the output
    d = networks.dcgan_discriminator(64, width=64)
    shapes = [d.get_layer(f"down{i}").output.shape[1:] for i in range(4)]
    assert shapes == [(32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512)]
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in d.layers[:3])
    assert d.get_layer("down0_lrelu").get_config()["negative_slope"] == pytest.approx(0.2)
    assert d.get_layer("score").get_config()["activation"] == "linear"  # no sigmoid


def test_critic_norm_options():
    layer_norm = networks.dcgan_discriminator(32, width=4, norm="layer")
    assert not any(
        isinstance(layer, keras.layers.BatchNormalization) for layer in layer_norm.layers
    )
    assert any(isinstance(layer, networks.SampleNorm) for layer in layer_norm.layers)
    plain = networks.dcgan_discriminator(32, width=4, norm="none")
    assert not any("norm" in layer.name for layer in plain.layers)
    with pytest.raises(ValueError, match="norm"):
        networks.dcgan_discriminator(32, norm="instance")


def test_began_64_is_berthelots_layout():
    d = networks.began_discriminator(64, filters=8, bottleneck=16)
    # Encoder subsampling 64 -> 32 -> 16 -> 8 with n, 2n, 3n, 4n channels.
    assert d.get_layer("enc_conv0_1").output.shape[1:] == (64, 64, 8)
    assert d.get_layer("enc_down0").output.shape[1:] == (32, 32, 16)
    assert d.get_layer("enc_conv3_1").output.shape[1:] == (8, 8, 32)
    assert d.get_layer("dec_reshape").output.shape[1:] == (8, 8, 8)
    ups = [layer for layer in d.layers if isinstance(layer, keras.layers.UpSampling2D)]
    assert len(ups) == 3 and all(layer.get_config()["interpolation"] == "nearest" for layer in ups)
    assert d.get_layer("enc_conv0_0").get_config()["activation"] == "elu"


def test_256_builds_by_adding_blocks():
    g = networks.dcgan_generator(256, 100, width=4)
    assert g.output.shape[1:] == (256, 256, 1)
    assert g.get_layer("reshape").output.shape[1:] == (4, 4, 32)  # capped at 8x width
    assert (
        len([layer for layer in g.layers if isinstance(layer, keras.layers.Conv2DTranspose)]) == 6
    )
    d = networks.began_discriminator(256, filters=4, bottleneck=8)
    assert d.output.shape[1:] == (256, 256, 1)
    assert len([layer for layer in d.layers if isinstance(layer, keras.layers.UpSampling2D)]) == 5


@pytest.mark.parametrize("size", [12, 48, 512])
def test_unsupported_size(size):
    with pytest.raises(ValueError, match="image_size"):
        networks.dcgan_generator(size)


def test_conditional_inputs_change_outputs():
    g = networks.dcgan_generator(32, 100, width=4, conditional=True)
    d = networks.dcgan_discriminator(32, width=4, conditional=True)
    assert [t.name for t in g.inputs] == ["z", "modality", "tumour"]
    assert [t.name for t in d.inputs] == ["image", "modality", "tumour"]
    z = z_batch(4)
    same = tf.zeros([4], tf.int32)
    by_modality = g([z, tf.constant([0, 1, 2, 3]), same])
    base = g([z, same, same])
    # Same z, different modality -> different image (the label reaches the output).
    diffs = tf.reduce_max(tf.abs(by_modality - base), axis=[1, 2, 3]).numpy()
    assert diffs[0] == 0.0 and np.all(diffs[1:] > 0)
    with_tumour = g([z, same, tf.ones([4], tf.int32)])
    assert float(tf.reduce_max(tf.abs(with_tumour - base))) > 0
    scores = d([base, tf.constant([0, 1, 2, 3]), same]).numpy()
    scores0 = d([base, same, same]).numpy()
    assert scores[0] == scores0[0] and np.all(scores[1:] != scores0[1:])


def test_conditional_began():
    g = networks.began_generator(32, 100, filters=4, conditional=True)
    d = networks.began_discriminator(32, filters=4, bottleneck=8, conditional=True)
    m, t = labels()
    images = g([z_batch(), m, t])
    assert d([images, m, t]).shape == (3, 32, 32, 1)


@pytest.mark.parametrize("kind", ["dcgan", "began-clip", "began-tanh"])
def test_output_range(kind):
    if kind == "dcgan":
        g = networks.dcgan_generator(32, 100, width=4)
    else:
        g = networks.began_generator(32, 100, filters=4, output=kind.split("-")[1])
    # Blow up the last conv so the pre-activation output is far beyond [-1, 1].
    last = g.get_layer("up3" if kind == "dcgan" else "dec_out")
    last.set_weights([w * 1e6 for w in last.get_weights()])
    images = g(z_batch(8)).numpy()
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert images.min() < -0.99 and images.max() > 0.99


def test_initialisation_is_seeded():
    a = networks.dcgan_generator(32, 100, width=4, seed=5)
    b = networks.dcgan_generator(32, 100, width=4, seed=5)
    c = networks.dcgan_generator(32, 100, width=4, seed=6)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
    # Distinct layers get distinct draws (one seed per layer).
    k1 = a.get_layer("up1").get_weights()[0]
    k2 = a.get_layer("up2").get_weights()[0]
    assert not np.allclose(k1.ravel()[:16], k2.ravel()[:16])
    assert a.get_layer("project").get_weights()[0].std() == pytest.approx(0.02, rel=0.05)


def test_saved_generators_load_without_kgan(tmp_path):
    """generator.keras files load in a fresh Python that never imports kgan."""
    z = z_batch(4).numpy()
    m = np.array([0, 1, 2, 3], np.int32)
    t = np.array([1, 0, 1, 0], np.int32)
    models = {
        "dcgan_cond": (networks.dcgan_generator(32, 100, width=4, conditional=True), [z, m, t]),
        "began": (networks.began_generator(32, 100, filters=4), z),
    }
    expected = {}
    for name, (model, inputs) in models.items():
        model.save(tmp_path / f"{name}.keras")
        expected[name] = model.predict(inputs, verbose=0)
    np.savez(tmp_path / "inputs.npz", z=z, m=m, t=t)
    script = textwrap.dedent(
        f"""
        import json, sys, numpy as np, keras
        d = np.load(r"{tmp_path}/inputs.npz")
        out = {{}}
        for name in ("dcgan_cond", "began"):
            model = keras.saving.load_model(r"{tmp_path}/" + name + ".keras")
            inputs = [d["z"], d["m"], d["t"]] if name == "dcgan_cond" else d["z"]
            np.save(r"{tmp_path}/" + name + ".npy", model.predict(inputs, verbose=0))
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("kgan"))))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    for name in models:
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), expected[name], atol=1e-6)


def _penalty_gradient(norm, x):
    """d/dx of WGAN-GP's penalty ||d critic / dx||^2 for the critic sum(w * norm(a * x)).

    The scale a stands for the layers before the norm: without it the norm would see the
    penalised input itself, whose input gradient sums to zero and hides a wrong second derivative.
    """
    rng = np.random.default_rng(1)
    w = tf.constant(rng.normal(size=x.shape), x.dtype)
    a = tf.constant(rng.uniform(0.2, 2.0, size=x.shape), x.dtype)
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            score = tf.reduce_sum(w * norm(a * x))
        penalty = tf.reduce_sum(tf.square(inner.gradient(score, x)))
    return penalty, outer.gradient(penalty, x)


def test_sample_norm_has_group_norms_function_and_the_exact_second_derivative():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(1.0, 2.0, (2, 3, 3, 4)), tf.float64)
    ours = networks.SampleNorm(epsilon=1e-5, dtype="float64")
    keras_gn = keras.layers.GroupNormalization(groups=1, epsilon=1e-5, dtype="float64")
    ours.build(x.shape), keras_gn.build(x.shape)
    gamma, beta = rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.1, 4)
    for layer in (ours, keras_gn):
        layer.set_weights([gamma, beta])
    np.testing.assert_allclose(ours(x).numpy(), keras_gn(x).numpy(), rtol=1e-10, atol=1e-12)
    assert [w.name for w in ours.weights] == [w.name for w in keras_gn.weights] == ["gamma", "beta"]

    # The penalty's gradient by autodiff against central differences of the penalty itself.
    penalty, grad = _penalty_gradient(ours, x)
    flat = x.numpy().ravel()
    numeric = np.empty_like(flat)
    h = 1e-5
    for i in range(flat.size):
        up, down = flat.copy(), flat.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (
            float(_penalty_gradient(ours, tf.constant(up.reshape(x.shape)))[0])
            - float(_penalty_gradient(ours, tf.constant(down.reshape(x.shape)))[0])
        ) / (2 * h)
    np.testing.assert_allclose(grad.numpy().ravel(), numeric, rtol=1e-5, atol=1e-7)
    # Keras's GroupNormalization (tf.nn.moments) gets this second derivative wrong.
    _, theirs = _penalty_gradient(keras_gn, x)
    assert not np.allclose(theirs.numpy().ravel(), numeric, rtol=1e-3, atol=1e-5)
