"""Pure GAN loss functions (no variables, no randomness, no model state).

Each function maps the networks' outputs to a scalar (or the quantity the
algorithm needs) so that it can be checked against hand-computed numbers and
reused by every GAN in `kgan.gans`. Means are over the local batch; under a
distribution strategy the GAN models rescale them (see `kgan.gans.base`).

Notation: D(x) is the discriminator's raw output on real images x, D(G(z)) on
generated ones; for BEGAN, L(v) = mean |v - D(v)| is the auto-encoder's L1
reconstruction loss.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf


def _mean(values: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.cast(values, tf.float32))


# --------------------------------------------------------------------- DCGAN


def dcgan_discriminator_loss(
    real_logits: tf.Tensor, fake_logits: tf.Tensor, *, label_smoothing: float = 0.0
) -> tf.Tensor:
    """Cross-entropy of the discriminator (Goodfellow et al. 2014), from logits.

    loss = -mean log sigmoid(D(x)) - mean log(1 - sigmoid(D(G(z))))

    computed stably as softplus(-D(x)) + softplus(D(G(z))).

    Args:
      real_logits: D(x), any shape.
      fake_logits: D(G(z)), any shape.
      label_smoothing: one-sided smoothing: the real target is 1 - this value
        (Salimans et al. 2016); 0 is the plain loss.

    Returns:
      Scalar float32.
    """
    real_logits = tf.cast(real_logits, tf.float32)
    fake_logits = tf.cast(fake_logits, tf.float32)
    real_target = tf.fill(tf.shape(real_logits), 1.0 - label_smoothing)
    real = tf.nn.sigmoid_cross_entropy_with_logits(labels=real_target, logits=real_logits)
    fake = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.zeros_like(fake_logits), logits=fake_logits
    )
    return tf.reduce_mean(real) + tf.reduce_mean(fake)


def dcgan_generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating generator loss: -mean log sigmoid(D(G(z))) = mean softplus(-D(G(z))).

    The generator maximises log D(G(z)) instead of minimising log(1 - D(G(z))),
    which saturates when the discriminator wins early (Goodfellow et al. 2014).
    """
    fake_logits = tf.cast(fake_logits, tf.float32)
    return _mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(fake_logits), logits=fake_logits)
    )


def mean_probability(logits: tf.Tensor) -> tf.Tensor:
    """mean sigmoid(logits): the discriminator's average belief "real" (logged as d_real/d_fake)."""
    return _mean(tf.sigmoid(tf.cast(logits, tf.float32)))


# ------------------------------------------------------------------ Wasserstein


def wasserstein_critic_loss(real_scores: tf.Tensor, fake_scores: tf.Tensor) -> tf.Tensor:
    """Critic loss of WGAN (Arjovsky et al. 2017): mean f(G(z)) - mean f(x).

    Minimising it maximises the Wasserstein estimate mean f(x) - mean f(G(z)).
    """
    return _mean(fake_scores) - _mean(real_scores)


def wasserstein_generator_loss(fake_scores: tf.Tensor) -> tf.Tensor:
    """Generator loss of WGAN: -mean f(G(z))."""
    return -_mean(fake_scores)


def wasserstein_estimate(real_scores: tf.Tensor, fake_scores: tf.Tensor) -> tf.Tensor:
    """mean f(x) - mean f(G(z)): the critic's estimate of the Wasserstein-1 distance.

    Up to the (unknown) Lipschitz constant of the clipped critic; its trend,
    not its scale, tracks sample quality.
    """
    return _mean(real_scores) - _mean(fake_scores)


def interpolate(real: tf.Tensor, fake: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """x_hat = alpha * x + (1 - alpha) * G(z), with one alpha per sample.

    Args:
      real: [N, ...] real images.
      fake: [N, ...] generated images.
      alpha: [N] weights in [0, 1] (drawn ~ U(0, 1) by the caller, one per
        sample as in Gulrajani et al., not one per pixel).
    """
    alpha = tf.reshape(tf.cast(alpha, real.dtype), [-1] + [1] * (real.shape.rank - 1))
    return fake + alpha * (real - fake)


def gradient_penalty(
    critic: Callable[[tf.Tensor], tf.Tensor],
    real: tf.Tensor,
    fake: tf.Tensor,
    alpha: tf.Tensor,
    *,
    epsilon: float = 1e-10,
    target: float = 1.0,
) -> tf.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): mean over samples of (||grad f(x_hat)||_2 - 1)^2.

    The norm is sqrt(sum g^2 + epsilon): the epsilon keeps its gradient finite
    where g = 0 (the derivative of sqrt is infinite at 0, which would turn the
    second-order gradient into NaN).

    Args:
      critic: maps images [N, ...] to scores [N] or [N, 1]; any conditioning
        inputs are bound by the caller.
      real: [N, ...] real images.
      fake: [N, ...] generated images (treated as constants).
      alpha: [N] interpolation weights.
      epsilon: added inside the square root.
      target: the norm the penalty pulls towards (1 for 1-Lipschitz).

    Returns:
      Scalar float32 (not yet multiplied by lambda).
    """
    x_hat = interpolate(tf.stop_gradient(real), tf.stop_gradient(fake), alpha)
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat)
        total = tf.reduce_sum(tf.cast(scores, tf.float32))
    grads = tape.gradient(total, x_hat)
    axes = list(range(1, grads.shape.rank))
    norms = tf.sqrt(tf.reduce_sum(tf.square(tf.cast(grads, tf.float32)), axis=axes) + epsilon)
    return tf.reduce_mean(tf.square(norms - target))


# ------------------------------------------------------------------------- BEGAN


def began_autoencoder_loss(images: tf.Tensor, reconstructions: tf.Tensor) -> tf.Tensor:
    """L(v) = mean |v - D(v)|: the auto-encoder's L1 reconstruction loss (Berthelot et al. 2017).

    The mean runs over pixels and samples (a per-pixel L1, so its scale does not
    depend on the image size and gamma keeps its meaning across sizes).
    """
    return _mean(tf.abs(tf.cast(images, tf.float32) - tf.cast(reconstructions, tf.float32)))


def began_discriminator_loss(loss_real: tf.Tensor, loss_fake: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """L_D = L(x) - k_t L(G(z)): reconstruct real images well, generated ones badly."""
    return tf.cast(loss_real, tf.float32) - tf.cast(k, tf.float32) * tf.cast(loss_fake, tf.float32)


def began_generator_loss(loss_fake: tf.Tensor) -> tf.Tensor:
    """L_G = L(G(z)): the generator wants its images reconstructed well."""
    return tf.cast(loss_fake, tf.float32)


def began_k_update(
    k: tf.Tensor, loss_real: tf.Tensor, loss_fake: tf.Tensor, *, gamma: float, lambda_k: float
) -> tf.Tensor:
    """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1).

    Proportional control that keeps E[L(G(z))] = gamma E[L(x)] (the
    equilibrium): gamma, the diversity ratio, trades diversity (high) for
    quality (low).
    """
    k = tf.cast(k, tf.float32)
    balance = gamma * tf.cast(loss_real, tf.float32) - tf.cast(loss_fake, tf.float32)
    return tf.clip_by_value(k + lambda_k * balance, 0.0, 1.0)


def began_convergence(loss_real: tf.Tensor, loss_fake: tf.Tensor, *, gamma: float) -> tf.Tensor:
    """M_global = L(x) + |gamma L(x) - L(G(z))|: falls as training converges."""
    loss_real = tf.cast(loss_real, tf.float32)
    return loss_real + tf.abs(gamma * loss_real - tf.cast(loss_fake, tf.float32))
