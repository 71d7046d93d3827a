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
    compiles_per_replica = True  # no batch norm: one compiled function, `replica_gradients`

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
        # Everything that draws from the seed state, reads k_t or all-reduces stays out here;
        # `replica_gradients` is this replica's computation alone (XLA-compiled on its own
        # under several replicas, see `GAN.replica_compiled`).
        fake_augment = self.augment_params(real)  # drawn in the order `augment` draws them
        real_augment = self.augment_params(real)
        k = tf.identity(self.k_t.value)
        d_vars = self.discriminator.trainable_variables
        g_vars = self.generator.trainable_variables
        d_grads, g_grads, loss_real, loss_fake = self.replica_compiled(self.replica_gradients)(
            self.weight_values(d_vars),
            self.weight_values(g_vars),
            real,
            z,
            conditions,
            k,
            fake_augment,
            real_augment,
        )
        self.d_optimizer.apply_gradients(zip(d_grads, d_vars))
        self.g_optimizer.apply_gradients(zip(g_grads, g_vars))
        self.update_ema()

        global_real = cross_replica_mean(loss_real)
        global_fake = cross_replica_mean(loss_fake)
        new_k = losses.began_k_update(
            k, global_real, global_fake, gamma=self.gamma, lambda_k=self.lambda_k
        )
        assign_in_sync([self.k_t], [new_k])
        return self.update_metrics(
            {
                "d_loss": losses.began_discriminator_loss(loss_real, loss_fake, k),
                "g_loss": losses.began_generator_loss(loss_fake),
                "d_real": loss_real,
                "d_fake": loss_fake,
                "k_t": new_k,
                "convergence": losses.began_convergence(global_real, global_fake, gamma=self.gamma),
            }
        )

    def replica_gradients(
        self, d_weights, g_weights, real, z, conditions, k, fake_augment, real_augment
    ):
        """(D's gradients, G's gradients, L(x), L(G(z))) of one replica, from weight values.

        d L_D / d theta_D = d L(x) / d theta_D - k d L(G(z)) / d theta_D, and L_G = L(G(z)):
        one backward pass of L(G(z)) through D gives D's share of it and G's gradient, where
        differentiating L_D and L_G apart would run the fake batch back through D twice.
        """
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(d_weights + g_weights)
            fake = self.generate(z, conditions, training=True, weights=g_weights)
            fake = self.apply_augment(fake, fake_augment)
            seen = self.apply_augment(real, real_augment)  # the auto-encoder reconstructs this
            loss_real = losses.began_autoencoder_loss(
                seen, self.discriminate(seen, conditions, training=True, weights=d_weights)
            )
            loss_fake = losses.began_autoencoder_loss(
                fake, self.discriminate(fake, conditions, training=True, weights=d_weights)
            )
        real_grads = self.gradients(tape, loss_real, d_weights)
        fake_grads = self.gradients(tape, loss_fake, d_weights + g_weights)
        del tape
        d_fake_grads = fake_grads[: len(d_weights)]
        d_grads = [r - tf.cast(k, r.dtype) * f for r, f in zip(real_grads, d_fake_grads)]
        return d_grads, fake_grads[len(d_weights) :], loss_real, loss_fake
