"""Each loss in kgan.losses against numbers worked out by hand."""

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from kgan import losses

LN2 = math.log(2.0)
LN43 = math.log(4.0 / 3.0)  # softplus(-ln 3) = ln(1 + 1/3)
LN3 = math.log(3.0)


def f(*values):
    return tf.constant(values, tf.float32)


# --------------------------------------------------------------------- DCGAN


def test_dcgan_discriminator_loss():
    # real: softplus(-0) = ln2, softplus(-ln3) = ln(4/3); fake: softplus(0) = ln2,
    # softplus(-ln3) = ln(4/3). Means add up to ln2 + ln(4/3).
    loss = losses.dcgan_discriminator_loss(f(0.0, LN3), f(0.0, -LN3))
    assert float(loss) == pytest.approx(LN2 + LN43, rel=1e-6)


def test_dcgan_discriminator_loss_label_smoothing():
    # real logit ln3 -> p = 3/4, target 0.9: -(0.9 ln 3/4 + 0.1 ln 1/4); fake logit -inf-ish.
    loss = losses.dcgan_discriminator_loss(f(LN3), f(-30.0), label_smoothing=0.1)
    expected = -(0.9 * math.log(0.75) + 0.1 * math.log(0.25))
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_dcgan_generator_loss_is_non_saturating():
    assert float(losses.dcgan_generator_loss(f(0.0, LN3))) == pytest.approx((LN2 + LN43) / 2, 1e-6)
    # When D confidently rejects the fakes, -log D(G(z)) is large and its gradient is not
    # vanishing (it is -1 per unit logit), unlike log(1 - D(G(z))).
    logits = tf.Variable([-20.0])
    with tf.GradientTape() as tape:
        loss = losses.dcgan_generator_loss(logits)
    assert float(loss) == pytest.approx(20.0, rel=1e-6)
    assert float(tape.gradient(loss, logits)[0]) == pytest.approx(-1.0, rel=1e-6)


def test_mean_probability():
    assert float(losses.mean_probability(f(0.0, LN3))) == pytest.approx((0.5 + 0.75) / 2)


# --------------------------------------------------------------- Wasserstein


def test_wasserstein_losses():
    real, fake = f(1.0, 2.0, 3.0), f(0.5, -0.5)
    assert float(losses.wasserstein_critic_loss(real, fake)) == pytest.approx(0.0 - 2.0)
    assert float(losses.wasserstein_estimate(real, fake)) == pytest.approx(2.0)
    assert float(losses.wasserstein_generator_loss(f(0.5, 1.5))) == pytest.approx(-1.0)


def test_interpolate_uses_one_alpha_per_sample():
    real = tf.ones([2, 3, 3, 1])
    fake = tf.zeros([2, 3, 3, 1])
    mixed = losses.interpolate(real, fake, f(0.25, 1.0)).numpy()
    np.testing.assert_allclose(mixed[0], 0.25)
    np.testing.assert_allclose(mixed[1], 1.0)


def test_gradient_penalty_linear_critic():
    # f(x) = <w, x> has gradient w everywhere; ||w|| = 2 -> (2 - 1)^2 = 1 whatever alpha.
    w = tf.constant(np.ones([1, 2, 2, 1]), tf.float32)
    critic = lambda x: tf.reduce_sum(w * x, axis=[1, 2, 3])  # noqa: E731
    real = tf.random.stateless_normal([3, 2, 2, 1], seed=[1, 2])
    fake = tf.random.stateless_normal([3, 2, 2, 1], seed=[3, 4])
    gp = losses.gradient_penalty(critic, real, fake, f(0.1, 0.5, 0.9))
    assert float(gp) == pytest.approx(1.0, rel=1e-6)


def test_gradient_penalty_depends_on_per_sample_alpha():
    # f(x) = 0.5 ||x||^2 has gradient x_hat = alpha * real (fake = 0). real = ones(2x2):
    # norms = alpha * 2 = [1, 2] -> penalties [0, 1] -> mean 0.5.
    critic = lambda x: 0.5 * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])  # noqa: E731
    gp = losses.gradient_penalty(critic, tf.ones([2, 2, 2, 1]), tf.zeros([2, 2, 2, 1]), f(0.5, 1.0))
    assert float(gp) == pytest.approx(0.5, rel=1e-6)


def test_gradient_penalty_epsilon_keeps_second_order_gradient_finite():
    # A critic with zero gradient: d/dw of (sqrt(w^2 P + eps) - 1)^2 at w = 0 is 0 with the
    # epsilon, 0/0 = NaN without it.
    w = tf.Variable(0.0)
    critic = lambda x: w * tf.reduce_sum(x, axis=[1, 2, 3])  # noqa: E731
    real, fake = tf.ones([2, 2, 2, 1]), tf.zeros([2, 2, 2, 1])
    with tf.GradientTape() as tape:
        gp = losses.gradient_penalty(critic, real, fake, f(0.3, 0.7))
    grad = tape.gradient(gp, w)
    assert float(gp) == pytest.approx((math.sqrt(1e-10) - 1.0) ** 2, rel=1e-6)
    assert np.isfinite(float(grad)) and float(grad) == 0.0
    with tf.GradientTape() as tape:
        gp = losses.gradient_penalty(critic, real, fake, f(0.3, 0.7), epsilon=0.0)
    assert np.isnan(float(tape.gradient(gp, w)))


# ------------------------------------------------------------------------- BEGAN


def test_began_autoencoder_loss_is_mean_l1():
    images = tf.constant([[[[1.0], [-1.0]]]])  # [1, 1, 2, 1]
    recon = tf.constant([[[[0.5], [0.0]]]])
    assert float(losses.began_autoencoder_loss(images, recon)) == pytest.approx(0.75)


def test_began_discriminator_and_generator_losses():
    assert float(losses.began_discriminator_loss(0.3, 0.2, 0.5)) == pytest.approx(0.2)
    assert float(losses.began_generator_loss(0.2)) == pytest.approx(0.2)


def test_began_k_update_and_clipping():
    # 0.5 + 0.001 * (0.5 * 0.4 - 0.1) = 0.5001
    k = losses.began_k_update(0.5, 0.4, 0.1, gamma=0.5, lambda_k=0.001)
    assert float(k) == pytest.approx(0.5001, abs=1e-7)
    # 0.9995 + 0.01 * (0.5 * 1 - 0) = 1.0045 -> 1
    assert float(losses.began_k_update(0.9995, 1.0, 0.0, gamma=0.5, lambda_k=0.01)) == 1.0
    # 0 + 0.001 * (0 - 1) = -0.001 -> 0
    assert float(losses.began_k_update(0.0, 0.0, 1.0, gamma=0.5, lambda_k=0.001)) == 0.0


def test_began_convergence():
    # 0.4 + |0.5 * 0.4 - 0.3| = 0.5
    assert float(losses.began_convergence(0.4, 0.3, gamma=0.5)) == pytest.approx(0.5)
