"""A network run as XLA-compiled segments between its batch norms is the same network.

On one device here; tests/test_distributed.py and tests/test_multiworker.py train the GANs this
way on two replicas against one plain device.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from kgan import networks, segments


def _conditional_inputs(batch=6, seed=0):
    rng = np.random.default_rng(seed)
    return [
        tf.constant(rng.normal(size=(batch, 8)).astype("float32")),
        tf.constant(rng.integers(0, 4, batch).astype("int32")),
        tf.constant(rng.integers(0, 2, batch).astype("int32")),
    ]


def _twins():
    """Two conditional DCGAN generators with the same weights (one to run plainly)."""
    make = lambda: networks.dcgan_generator(16, latent_dim=8, width=4, conditional=True, seed=5)  # noqa: E731
    plain, segmented = make(), make()
    segmented.set_weights(plain.get_weights())
    return plain, segmented


def test_segments_alternate_with_the_batch_norms():
    _, network = _twins()
    steps = segments.SegmentedNetwork(network, training=True).steps
    kinds = "".join("x" if kind == "xla" else "b" for kind, _ in steps)
    batch_norms = [
        layer for layer in network.layers if "BatchNormalization" in type(layer).__name__
    ]
    assert kinds == "xbxbx" and kinds.count("b") == len(batch_norms) == 2
    # The label embeddings and the concatenation join the first segment with the projection.
    first = steps[0][1]
    assert {node.operation.name for node in first.nodes} >= {"project", "reshape"}
    assert all(isinstance(v, keras.Variable) and v.trainable for v in first.variables)


def test_training_forward_gradients_and_moving_statistics_match_the_plain_network():
    plain, network = _twins()
    segmented = segments.SegmentedNetwork(network, training=True)
    inputs = _conditional_inputs()
    with tf.GradientTape(persistent=True) as tape:
        want = plain(inputs, training=True)
        got = segmented(inputs)
        loss_want = tf.reduce_sum(want * want)
        loss_got = tf.reduce_sum(got * got)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)
    grads_want = tape.gradient(loss_want, plain.trainable_variables)
    grads_got = tape.gradient(loss_got, network.trainable_variables)
    assert all(g is not None for g in grads_got)
    for a, b in zip(grads_want, grads_got):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-6)
    # The batch norms ran plainly: their moving statistics moved, and by the same amount.
    moving = list(zip(plain.non_trainable_variables, network.non_trainable_variables))
    assert len(moving) == 4  # mean and variance of two batch norms
    assert float(np.max(np.abs(network.non_trainable_variables[0].numpy()))) > 0  # a mean moved
    for a, b in moving:
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-6)


def test_inference_uses_the_moving_statistics():
    plain, network = _twins()
    inputs = _conditional_inputs(seed=1)
    plain(inputs, training=True)  # move the statistics away from their initial values
    network.set_weights(plain.get_weights())
    got = segments.SegmentedNetwork(network, training=False)(inputs)
    np.testing.assert_allclose(got.numpy(), plain(inputs, training=False).numpy(), atol=1e-6)
    assert not np.allclose(got.numpy(), plain(inputs, training=True).numpy(), atol=1e-4)


def test_second_derivatives_through_a_compiled_segment():
    """WGAN-GP's penalty differentiates the critic's input gradient."""
    critic = networks.dcgan_discriminator(16, width=4, norm="layer", seed=2)
    segmented = segments.SegmentedNetwork(critic, training=True)
    x = tf.constant(np.random.default_rng(3).normal(size=(4, 16, 16, 1)).astype("float32"))

    def penalty(call):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                score = tf.reduce_sum(call(x))
            slope = tf.reduce_sum(tf.square(inner.gradient(score, x)))
        return outer.gradient(slope, critic.trainable_variables)

    want = penalty(lambda v: critic(v, training=True))
    got = penalty(segmented)
    # The last bias does not reach the input gradient. Plain TensorFlow says None, the compiled
    # segment's gradient function zeros: the same derivative.
    assert sum(g is None for g in want) == 1
    for variable, a, b in zip(critic.trainable_variables, want, got):
        a = np.zeros(variable.shape) if a is None else a.numpy()
        np.testing.assert_allclose(b.numpy(), a, rtol=1e-4, atol=1e-7)
    kernels = [g for v, g in zip(critic.trainable_variables, got) if "kernel" in v.path]
    assert kernels and all(float(np.max(np.abs(g.numpy()))) > 0 for g in kernels)


class _Counter(keras.layers.Layer):
    """The identity, counting its calls in a non-trainable weight."""

    def build(self, input_shape):
        self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False, name="calls")

    def call(self, x):
        self.calls.assign_add(1.0)
        return x


def test_state_outside_batch_norm_is_refused():
    inputs = keras.Input((4,))
    outputs = _Counter(name="counter")(keras.layers.Dense(3, name="dense")(inputs))
    model = keras.Model(inputs, outputs, name="stateful")
    with pytest.raises(ValueError, match="stateful: layer counter holds non-trainable state"):
        segments.SegmentedNetwork(model, training=True)
