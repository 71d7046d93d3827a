"""Pure GAN loss functions (no variables, no randomness, no model state), in `keras.ops`.

Each function maps the networks' outputs to a scalar (or the quantity the
algorithm needs) so that it can be checked against hand-computed numbers and
reused by every GAN in `kgan.gans`. Means are over the local batch; under a
distribution strategy the GAN models rescale them (see `kgan.gans.base`).

Notation: D(x) is the discriminator's raw output on real images x, D(G(z)) on
generated ones; for BEGAN, L(v) = mean |v - D(v)| is the auto-encoder's L1
reconstruction loss.

Written in `keras.ops`, so the TensorFlow train steps of `kgan.gans` and the JAX benchmark
(scripts/bench_train_jax.py) compute the same losses from one definition. Only
`gradient_penalty`, which differentiates the critic inside the loss, needs TensorFlow's tape; the
JAX benchmark takes the gradient with `jax.grad` and calls `penalty_from_gradients`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keras import ops

Tensor = Any  # a backend tensor (Tensor, jax.Array) or anything keras.ops accepts


def _float(values: Tensor) -> Tensor:
    return ops.cast(values, "float32")


def _mean(values: Tensor) -> Tensor:
    return ops.mean(_float(values))


def _sigmoid_cross_entropy(targets: Tensor, logits: Tensor) -> Tensor:
    """-t log sigmoid(x) - (1 - t) log(1 - sigmoid(x)), elementwise, computed stably as
    max(x, 0) - x t + log(1 + exp(-|x|)) (the formula of
    tf.nn.sigmoid_cross_entropy_with_logits)."""
    return ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))


# --------------------------------------------------------------------- DCGAN


def dcgan_discriminator_loss(
    real_logits: Tensor, fake_logits: Tensor, *, label_smoothing: float = 0.0
) -> Tensor:
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
    real_logits = _float(real_logits)
    fake_logits = _float(fake_logits)
    real_target = ops.full_like(real_logits, 1.0 - label_smoothing)
    real = _sigmoid_cross_entropy(real_target, real_logits)
    fake = _sigmoid_cross_entropy(ops.zeros_like(fake_logits), fake_logits)
    return ops.mean(real) + ops.mean(fake)


def dcgan_generator_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss: -mean log sigmoid(D(G(z))) = mean softplus(-D(G(z))).

    The generator maximises log D(G(z)) instead of minimising log(1 - D(G(z))),
    which saturates when the discriminator wins early (Goodfellow et al. 2014).
    """
    fake_logits = _float(fake_logits)
    return _mean(_sigmoid_cross_entropy(ops.ones_like(fake_logits), fake_logits))


def mean_probability(logits: Tensor) -> Tensor:
    """mean sigmoid(logits): the discriminator's average belief "real" (logged as d_real/d_fake)."""
    return _mean(ops.sigmoid(_float(logits)))


# ------------------------------------------------------------------ Wasserstein


def wasserstein_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Critic loss of WGAN (Arjovsky et al. 2017): mean f(G(z)) - mean f(x).

    Minimising it maximises the Wasserstein estimate mean f(x) - mean f(G(z)).
    """
    return _mean(fake_scores) - _mean(real_scores)


def wasserstein_generator_loss(fake_scores: Tensor) -> Tensor:
    """Generator loss of WGAN: -mean f(G(z))."""
    return -_mean(fake_scores)


def wasserstein_estimate(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """mean f(x) - mean f(G(z)): the critic's estimate of the Wasserstein-1 distance.

    Up to the (unknown) Lipschitz constant of the clipped critic; its trend,
    not its scale, tracks sample quality.
    """
    return _mean(real_scores) - _mean(fake_scores)


def interpolate(real: Tensor, fake: Tensor, alpha: Tensor) -> Tensor:
    """x_hat = alpha * x + (1 - alpha) * G(z), with one alpha per sample.

    Args:
      real: [N, ...] real images.
      fake: [N, ...] generated images.
      alpha: [N] weights in [0, 1] (drawn ~ U(0, 1) by the caller, one per
        sample as in Gulrajani et al., not one per pixel).
    """
    alpha = ops.reshape(ops.cast(alpha, real.dtype), [-1] + [1] * (len(real.shape) - 1))
    return fake + alpha * (real - fake)


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    alpha: Tensor,
    *,
    epsilon: float = 1e-10,
    target: float = 1.0,
) -> Tensor:
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
    import tensorflow as tf  # the tape: the one TensorFlow-only piece of the losses

    x_hat = interpolate(tf.stop_gradient(real), tf.stop_gradient(fake), alpha)
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat)
        total = tf.reduce_sum(tf.cast(scores, tf.float32))
    return penalty_from_gradients(tape.gradient(total, x_hat), epsilon=epsilon, target=target)


def penalty_from_gradients(grads: Tensor, *, epsilon: float = 1e-10, target: float = 1.0) -> Tensor:
    """mean over samples of (sqrt(sum g^2 + epsilon) - target)^2, from the critic's gradient
    [N, ...] at the interpolates (see `gradient_penalty`)."""
    axes = list(range(1, len(grads.shape)))
    norms = ops.sqrt(ops.sum(ops.square(_float(grads)), axis=axes) + epsilon)
    return ops.mean(ops.square(norms - target))


# ------------------------------------------------------------------------- BEGAN


def began_autoencoder_loss(images: Tensor, reconstructions: Tensor) -> Tensor:
    """L(v) = mean |v - D(v)|: the auto-encoder's L1 reconstruction loss (Berthelot et al. 2017).

    The mean runs over pixels and samples (a per-pixel L1, so its scale does not
    depend on the image size and gamma keeps its meaning across sizes).
    """
    return _mean(ops.abs(_float(images) - _float(reconstructions)))


def began_discriminator_loss(loss_real: Tensor, loss_fake: Tensor, k: Tensor) -> Tensor:
    """L_D = L(x) - k_t L(G(z)): reconstruct real images well, generated ones badly."""
    return _float(loss_real) - _float(k) * _float(loss_fake)


def began_generator_loss(loss_fake: Tensor) -> Tensor:
    """L_G = L(G(z)): the generator wants its images reconstructed well."""
    return _float(loss_fake)


def began_k_update(
    k: Tensor, loss_real: Tensor, loss_fake: Tensor, *, gamma: float, lambda_k: float
) -> Tensor:
    """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1).

    Proportional control that keeps E[L(G(z))] = gamma E[L(x)] (the
    equilibrium): gamma, the diversity ratio, trades diversity (high) for
    quality (low).
    """
    k = _float(k)
    balance = gamma * _float(loss_real) - _float(loss_fake)
    return ops.clip(k + lambda_k * balance, 0.0, 1.0)


def began_convergence(loss_real: Tensor, loss_fake: Tensor, *, gamma: float) -> Tensor:
    """M_global = L(x) + |gamma L(x) - L(G(z))|: falls as training converges."""
    loss_real = _float(loss_real)
    return loss_real + ops.abs(gamma * loss_real - _float(loss_fake))
