"""The faster kernels compute what the plain Keras layers compute, and change no saved file."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from kgan import kernels, networks


def _close(a, b, rtol=1e-5):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize(
    "shape, filters", [((2, 3, 5, 4), 1), ((2, 4, 4, 3), 2), ((1, 8, 6, 5), 7)]
)
def test_subpixel_conv_transpose_equals_keras_forward_and_gradients(shape, filters):
    x = tf.random.stateless_normal(shape, seed=[1, 2])
    layer = keras.layers.Conv2DTranspose(
        filters, 4, strides=2, padding="same", kernel_initializer="glorot_normal"
    )
    layer.build(shape)
    target = tf.random.stateless_normal([shape[0], 2 * shape[1], 2 * shape[2], filters], [3, 4])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        plain = layer(x)
        fast = kernels.subpixel_conv_transpose(x, layer.kernel) + layer.bias
        plain_loss = tf.reduce_sum(plain * target)
        fast_loss = tf.reduce_sum(fast * target)
    _close(fast, plain)
    for g_fast, g_plain in zip(
        tape.gradient(fast_loss, [x, layer.kernel]), tape.gradient(plain_loss, [x, layer.kernel])
    ):
        _close(g_fast, g_plain)


@pytest.mark.parametrize("channels", [1, 7])
def test_conv_with_subpixel_input_gradient_equals_tensorflows(channels):
    x = tf.random.stateless_normal([2, 8, 6, channels], seed=[5, 1])
    kernel = tf.random.stateless_normal([4, 4, channels, 5], seed=[5, 2])
    target = tf.random.stateless_normal([2, 4, 3, 5], seed=[5, 3])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, kernel])
        plain = tf.nn.conv2d(x, kernel, 2, "SAME")
        fast = kernels.conv_with_subpixel_input_gradient(x, kernel)
        plain_loss = tf.reduce_sum(plain * target)
        fast_loss = tf.reduce_sum(fast * target)
    _close(fast, plain)
    for g_fast, g_plain in zip(
        tape.gradient(fast_loss, [x, kernel]), tape.gradient(plain_loss, [x, kernel])
    ):
        _close(g_fast, g_plain)


def _pair(build):
    """Two copies of a network with the same weights, the second accelerated."""
    plain, fast = build(), build()
    fast.set_weights(plain.get_weights())
    return plain, kernels.accelerate(fast)


def _step(model, inputs, target):
    """Output, weight gradients and (the generator's update needs it) image gradient."""
    with tf.GradientTape() as tape:
        tape.watch(inputs[0])
        out = model(inputs, training=True)
        loss = tf.reduce_sum(out * target)
    return out, tape.gradient(loss, [inputs[0]] + model.trainable_variables)


@pytest.mark.parametrize("net", ["generator", "discriminator"])
def test_accelerated_dcgan_networks_train_exactly_as_plain_ones(net):
    if net == "generator":
        plain, fast = _pair(lambda: networks.dcgan_generator(32, 8, width=4, conditional=True))
        inputs = [
            tf.random.stateless_normal([5, 8], [5, 6]),
            tf.constant([0, 1, 2, 3, 0]),
            tf.constant([0, 1, 1, 0, 1]),
        ]
    else:
        plain, fast = _pair(lambda: networks.dcgan_discriminator(32, width=16, conditional=True))
        inputs = [
            tf.random.stateless_uniform([5, 32, 32, 1], [7, 8], minval=-1, maxval=1),
            tf.constant([0, 1, 2, 3, 0]),
            tf.constant([0, 1, 1, 0, 1]),
        ]
    swapped = [layer.name for layer in fast.layers if "call" in vars(layer)]
    expected = (
        ["project_bn", "up1_bn", "up2_bn", "up3"]
        if net == "generator"
        else ["down0", "down1_norm", "down2_norm"]
    )
    assert swapped == expected
    target = tf.random.stateless_normal(plain.output.shape[1:], [9, 9])
    for _ in range(2):  # the second step sees the first one's moving statistics
        out_plain, grads_plain = _step(plain, inputs, target)
        out_fast, grads_fast = _step(fast, inputs, target)
        _close(out_fast, out_plain)
        for g_fast, g_plain in zip(grads_fast, grads_plain):
            _close(g_fast, g_plain, rtol=1e-4)
        for v_fast, v_plain in zip(fast.non_trainable_variables, plain.non_trainable_variables):
            _close(v_fast, v_plain)
    _close(fast(inputs, training=False), plain(inputs, training=False))


def test_second_derivatives_keep_kerass_kernels():
    critic = kernels.accelerate(networks.dcgan_discriminator(32, width=4), second_derivatives=True)
    assert not any("call" in vars(layer) for layer in critic.layers)


def test_accelerated_generator_saves_as_built_in_layers(tmp_path):
    plain, fast = _pair(lambda: networks.dcgan_generator(32, 8, width=4))
    path = str(tmp_path / "generator.keras")
    fast.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in plain.layers]
    assert [v.path for v in loaded.variables] == [v.path for v in plain.variables]
    z = tf.random.stateless_normal([3, 8], [1, 1])
    _close(loaded(z, training=False), plain(z, training=False))
