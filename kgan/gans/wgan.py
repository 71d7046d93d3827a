"""WGAN with weight clipping (Arjovsky et al. 2017), the GAN of Han et al. (MIRU 2017).

One `train_step` = `n_critic` critic updates, each on a fresh real batch, then
one generator update. Keras hands `train_step` one dataset element, so the
fresh batches come *inside* it: the dataset is batched by
`n_critic * batch_size` (see `real_batches_per_step`) and the step splits it
into `n_critic` batches of `batch_size`: batch i holds images i, i + n_critic,
i + 2 n_critic, ... (strided rather than consecutive, so that when
MirroredStrategy splits the element into contiguous per-replica parts, the
union of the replicas' batch i is exactly one device's batch i; the data are
shuffled, so either split is a fresh random batch). The critic loop is a Python
loop, unrolled into the compiled graph. An epoch of N images therefore makes
N / (n_critic * batch_size) generator updates, as in the reference code, where
every critic iteration consumes a data batch.

The reference code's schedule (`reference_schedule=True`): 100 critic updates
before each of the first 25 generator updates and before every 500th. A step
still performs `n_critic` critic updates; the generator update is skipped
(via `tf.cond`) until enough critic updates have accumulated: with
n_critic = 5, twenty steps per warm-up generator update.
"""

from __future__ import annotations

import tensorflow as tf

from kgan import losses, names
from kgan.gans.base import GAN, assign_in_sync, replica_info

_PAPER = names.PAPER_RECIPES["wgan"].gan_params


class WGAN(GAN):
    """Wasserstein GAN with a clipped critic.

    Defaults and optimiser: Arjovsky et al.'s, kept by Han et al.
    (`kgan.names.PAPER_RECIPES`). The critic is the DCGAN discriminator
    without a sigmoid. After every critic update every trainable critic
    variable (kernels, biases, batch-norm scale and offset) is assigned
    clip(w, -c, c); batch-norm moving statistics are not parameters and stay
    unclipped.

    Logged: d_loss = mean f(G(z)) - mean f(x), g_loss = -mean f(G(z)),
    wasserstein = mean f(x) - mean f(G(z)) (last critic update of the step),
    d_real and d_fake = mean f(x) and mean f(G(z)).

    Args:
      generator, discriminator: networks from `kgan.networks.dcgan_*`.
      n_critic: critic updates per generator update.
      clip_value: c; None or 0 turns clipping off (WGAN-GP).
      reference_schedule: the 100-critic-update warm-up of the reference code.
      warmup_generator_updates: generator updates under the warm-up (25).
      warmup_critic_updates: critic updates per warm-up generator update (100).
      warmup_every: also warm up before every this-many-th generator update (500).
      **kwargs: see `GAN`.
    """

    gan_name = "wgan"
    extra_metrics = ("wasserstein",)

    def __init__(
        self,
        generator,
        discriminator,
        *,
        n_critic: int = _PAPER["n_critic"],
        clip_value: float | None = _PAPER["clip_value"],
        reference_schedule: bool = False,
        warmup_generator_updates: int = 25,
        warmup_critic_updates: int = 100,
        warmup_every: int = 500,
        **kwargs,
    ):
        super().__init__(generator, discriminator, **kwargs)
        if int(n_critic) < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        self.n_critic = int(n_critic)
        self.real_batches_per_step = self.n_critic
        self.clip_value = float(clip_value) if clip_value else None
        self.reference_schedule = bool(reference_schedule)
        self.warmup_generator_updates = int(warmup_generator_updates)
        self.warmup_critic_updates = int(warmup_critic_updates)
        self.warmup_every = int(warmup_every)
        # Saved with the weights so that a resumed run keeps its place in the schedule.
        self.generator_updates = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int64",
            trainable=False,
            aggregation="only_first_replica",
            name="generator_updates",
        )
        self.pending_critic_updates = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int64",
            trainable=False,
            aggregation="only_first_replica",
            name="pending_critic_updates",
        )

    # -------------------------------------------------------------- critic side

    def critic_loss(self, real, fake, conditions):
        """(loss to minimise, dict of logged values) for one critic update."""
        real_scores = self.discriminate(real, conditions, training=True)
        fake_scores = self.discriminate(fake, conditions, training=True)
        loss = losses.wasserstein_critic_loss(real_scores, fake_scores)
        logged = {
            "d_loss": loss,
            "wasserstein": losses.wasserstein_estimate(real_scores, fake_scores),
            "d_real": tf.reduce_mean(real_scores),
            "d_fake": tf.reduce_mean(fake_scores),
        }
        return loss, logged

    def clip_critic(self) -> None:
        """w <- clip(w, -c, c) for every trainable critic variable."""
        if self.clip_value is None:
            return
        variables = self.discriminator.trainable_variables
        assign_in_sync(
            variables, [tf.clip_by_value(v, -self.clip_value, self.clip_value) for v in variables]
        )

    def critic_update(self, real, conditions) -> dict:
        batch = self.batch_size_of(real)
        fake = tf.stop_gradient(self.generate(self.sample_latent(batch), conditions, training=True))
        variables = self.discriminator.trainable_variables
        # DiffAugment (when on) before the loss, so WGAN-GP's penalty interpolates the
        # augmented batches the critic is judged on.
        real, fake = self.augment(real), self.augment(fake)
        with tf.GradientTape() as tape:
            loss, logged = self.critic_loss(real, fake, conditions)
        self.apply_loss_gradients(self.d_optimizer, loss, tape, variables)
        self.clip_critic()
        return logged

    # ----------------------------------------------------------- generator side

    def generator_update(self, batch, conditions) -> tf.Tensor:
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            fake = self.generate(self.sample_latent(batch), conditions, training=True)
            loss = losses.wasserstein_generator_loss(
                self.discriminate(self.augment(fake), conditions, training=True)
            )
        self.apply_loss_gradients(self.g_optimizer, loss, tape, variables)
        self.update_ema()
        return loss

    def stride_conditions(self, conditions, offset: int):
        if conditions is None:
            return None
        return tuple(c[offset :: self.n_critic] for c in conditions)

    def critic_updates_required(self) -> tf.Tensor:
        """Critic updates due before the next generator update under the reference schedule."""
        done = self.generator_updates
        warm = tf.logical_or(
            done < self.warmup_generator_updates, tf.equal(done % self.warmup_every, 0)
        )
        return tf.where(
            warm,
            tf.constant(self.warmup_critic_updates, tf.int64),
            tf.constant(self.n_critic, tf.int64),
        )

    # -------------------------------------------------------------------- step

    def train_step(self, data):
        images, conditions = self.unpack(data)
        total = images.shape[0]
        if total is None or total % self.n_critic:
            raise ValueError(
                f"{type(self).__name__} needs batches of n_critic * batch_size images with a "
                f"static size (batch the dataset by batch_size * {self.n_critic} with "
                f"drop_remainder=True); got a batch of {total}"
            )
        batch = total // self.n_critic
        logged = {}
        for i in range(self.n_critic):
            logged = self.critic_update(
                images[i :: self.n_critic], self.stride_conditions(conditions, i)
            )
        # The generator update uses the last real batch's labels for its fakes.
        g_conditions = self.stride_conditions(conditions, self.n_critic - 1)

        if not self.reference_schedule:
            g_loss = self.generator_update(batch, g_conditions)
            self.generator_updates.assign_add(1)
            return self.update_metrics({**logged, "g_loss": g_loss})

        replicas, _ = replica_info()
        if replicas > 1:
            # The skipped generator update is a tf.cond around an optimizer update, and
            # tf.distribute cannot synchronise replicas inside a conditional branch.
            raise ValueError(
                "WGAN reference_schedule=True runs on one device only (tf.distribute cannot "
                f"all-reduce inside the conditional generator update); got {replicas} replicas"
            )
        pending = self.pending_critic_updates + self.n_critic
        do_update = pending >= self.critic_updates_required()
        g_loss = tf.cond(
            do_update,
            lambda: self.generator_update(batch, g_conditions),
            lambda: tf.constant(0.0, tf.float32),
        )
        self.pending_critic_updates.assign(tf.where(do_update, tf.zeros_like(pending), pending))
        self.generator_updates.assign_add(tf.cast(do_update, tf.int64))
        weight = tf.cast(do_update, tf.float32)
        return self.update_metrics({**logged, "g_loss": g_loss}, weights={"g_loss": weight})
