"""BEGAN (Berthelot et al. 2017): an auto-encoder discriminator in proportional equilibrium."""

from __future__ import annotations

import keras
import tensorflow as tf

from kgan import losses, names
from kgan.gans.base import GAN, assign_in_sync, cross_replica_mean

_PAPER = names.PAPER_RECIPES["began"].gan_params


class BEGAN(GAN):
    """Boundary-equilibrium GAN.

    With L(v) = mean |v - D(v)| (D an auto-encoder):
      L_D = L(x) - k_t L(G(z)),  L_G = L(G(z)),
      k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1),
      M = L(x) + |gamma L(x) - L(G(z))|.
    Both networks update simultaneously from one forward pass per step (as in
    the paper's algorithm) and one backward pass of each batch through D. k_t
    is a non-trainable weight (saved with the weights; aggregation "mean" so
    replicas stay in step), and L(x), L(G(z))
    are averaged over replicas before the k update so that N replicas update
    k exactly as one device on the global batch.

    Logged: d_loss, g_loss, k_t, convergence (M), d_real = L(x), d_fake = L(G(z)).

    Args:
      gamma: diversity ratio (the paper's 0.5 by default, `kgan.names.PAPER_RECIPES`).
      lambda_k: k's proportional gain (the paper's 0.001 by default).
      k_initial: k_0 (0).
      **kwargs: see `GAN`.
    """

    gan_name = "began"
    extra_metrics = ("k_t", "convergence")

    def __init__(
        self,
        generator,
        discriminator,
        *,
        gamma: float = _PAPER["gamma"],
        lambda_k: float = _PAPER["lambda_k"],
        k_initial: float = 0.0,
        **kwargs,
    ):
        super().__init__(generator, discriminator, **kwargs)
        self.gamma = float(gamma)
        self.lambda_k = float(lambda_k)
        self.k_t = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(float(k_initial)),
            dtype="float32",
            trainable=False,
            aggregation="mean",
            name="k_t",
        )

    def train_step(self, data):
        real, conditions = self.unpack(data)
        batch = self.batch_size_of(real)
        z = self.sample_latent(batch)
        k = tf.identity(self.k_t.value)
        d_vars = self.discriminator.trainable_variables
        g_vars = self.generator.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            fake = self.augment(self.generate(z, conditions, training=True))
            seen = self.augment(real)  # the auto-encoder reconstructs what it is shown
            loss_real = losses.began_autoencoder_loss(
                seen, self.discriminate(seen, conditions, training=True)
            )
            loss_fake = losses.began_autoencoder_loss(
                fake, self.discriminate(fake, conditions, training=True)
            )
            d_loss = losses.began_discriminator_loss(loss_real, loss_fake, k)
            g_loss = losses.began_generator_loss(loss_fake)
        # d L_D / d theta_D = d L(x) / d theta_D - k d L(G(z)) / d theta_D, and L_G = L(G(z)):
        # one backward pass of L(G(z)) through D gives D's share of it and G's gradient, where
        # differentiating L_D and L_G apart would run the fake batch back through D twice.
        real_grads = self.gradients(tape, loss_real, d_vars)
        fake_grads = self.gradients(tape, loss_fake, d_vars + g_vars)
        del tape
        d_fake_grads = fake_grads[: len(d_vars)]
        d_grads = [r - tf.cast(k, r.dtype) * f for r, f in zip(real_grads, d_fake_grads)]
        self.d_optimizer.apply_gradients(zip(d_grads, d_vars))
        self.g_optimizer.apply_gradients(zip(fake_grads[len(d_vars) :], g_vars))
        self.update_ema()

        global_real = cross_replica_mean(loss_real)
        global_fake = cross_replica_mean(loss_fake)
        new_k = losses.began_k_update(
            k, global_real, global_fake, gamma=self.gamma, lambda_k=self.lambda_k
        )
        assign_in_sync([self.k_t], [new_k])
        return self.update_metrics(
            {
                "d_loss": d_loss,
                "g_loss": g_loss,
                "d_real": loss_real,
                "d_fake": loss_fake,
                "k_t": new_k,
                "convergence": losses.began_convergence(global_real, global_fake, gamma=self.gamma),
            }
        )
