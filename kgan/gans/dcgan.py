"""DCGAN (Radford et al. 2016): non-saturating cross-entropy, alternating updates."""

from __future__ import annotations

import tensorflow as tf

from kgan import losses
from kgan.gans.base import GAN


class DCGAN(GAN):
    """One step: a discriminator update on (x, G(z)), then a generator update on fresh z.

    Real and generated images go through the discriminator as two separate
    batches (as in the DCGAN reference code), so batch norm never mixes real
    and fake statistics. The paper's optimiser (Radford et al.) is in
    `kgan.names.PAPER_RECIPES`.

    Args:
      generator, discriminator: networks from `kgan.networks.dcgan_*`.
      label_smoothing: one-sided label smoothing of the real target (0 = off).
      **kwargs: see `GAN`.
    """

    gan_name = "dcgan"

    def __init__(self, generator, discriminator, *, label_smoothing: float = 0.0, **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def train_step(self, data):
        real, conditions = self.unpack(data)
        batch = self.batch_size_of(real)

        fake = tf.stop_gradient(self.generate(self.sample_latent(batch), conditions, training=True))
        d_vars = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            real_logits = self.discriminate(self.augment(real), conditions, training=True)
            fake_logits = self.discriminate(self.augment(fake), conditions, training=True)
            d_loss = losses.dcgan_discriminator_loss(
                real_logits, fake_logits, label_smoothing=self.label_smoothing
            )
        self.apply_loss_gradients(self.d_optimizer, d_loss, tape, d_vars)

        g_vars = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            fake = self.generate(self.sample_latent(batch), conditions, training=True)
            g_loss = losses.dcgan_generator_loss(
                self.discriminate(self.augment(fake), conditions, training=True)
            )
        self.apply_loss_gradients(self.g_optimizer, g_loss, tape, g_vars)
        self.update_ema()

        return self.update_metrics(
            {
                "d_loss": d_loss,
                "g_loss": g_loss,
                "d_real": losses.mean_probability(real_logits),
                "d_fake": losses.mean_probability(fake_logits),
            }
        )
