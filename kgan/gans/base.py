"""The machinery every GAN shares: one `keras.Model` subclass per GAN builds on this.

A GAN wraps a generator and a discriminator (both functional models from
`kgan.networks`) and overrides `train_step`, as in the Keras DCGAN example
("overriding train_step"), updated for Keras 3:

- `compile(d_optimizer=, g_optimizer=, jit_compile=True)` keeps two optimizers,
  calls `super().compile(optimizer=None)` and builds both optimizers at once, so
  their slots exist before the first step (needed by `save_weights`, exact
  resume and MirroredStrategy, which must create variables up front).
- Latent vectors (and WGAN-GP's interpolation weights) come from stateless
  draws keyed by a seed pair held as a model weight, `latent_seed`, advanced
  after every draw exactly as `keras.random.SeedGenerator` does. It is a
  weight because a SeedGenerator's state is not written by `save_weights`
  (checked with Keras 3.15), and exact resume needs it restored. Under
  MirroredStrategy every replica holds the same seed state and would draw the
  same numbers, so each replica draws the whole global batch and keeps its own
  slice: N replicas see exactly the z one device would.
- Losses are divided by `num_replicas_in_sync` before differentiation:
  MirroredStrategy sums the replicas' gradients, and each replica's loss is a
  mean over its local batch.
- Conditional GANs read `labels["modality"]` and `labels["tumour"]` from the
  batch; generated images in a step take the real batch's labels, so the
  label mix of fakes matches the data.
- Two quality levers, both off by default (the papers' recipes are unchanged):
  `ema_decay` keeps an exponential moving average of the generator's weights
  (a non-trainable shadow copy, `ema_generator`, updated after every
  generator update and served by `sampling_generator`), and `augment` applies
  DiffAugment (`kgan.augment`) to every batch the discriminator sees, real
  and fake, with parameters drawn from the same seed state as z.
- XLA under several replicas: Keras compiles the function that calls `strategy.run`, so its
  XLA cluster holds every replica's variables and all-reduces, which fails on CPUs (one
  cluster on one device; no CPU kernel for the collectives). So under several replicas
  (`jit_per_replica`) XLA compiles only each replica's own computation and leaves the
  all-reduces (in `apply_gradients`, `cross_replica_mean`, `assign_in_sync`, synchronised
  batch norm) and the seed and metric updates outside it. A GAN whose step is written per
  replica (`compiles_per_replica`, BEGAN) compiles its forward, losses and gradients at once,
  a pure function of the weights' values and the batch; the GANs with batch norm run their
  networks as compiled segments between the batch norms (`kgan.segments`), since synchronised
  batch norm all-reduces in the middle of the forward pass.
- Both networks train on faster kernels of the same layers where the step allows
  (`kgan.kernels.accelerate`): the same function, variables and saved files.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from kgan import augment as aug
from kgan import distribute, kernels, optimizers, segments

_CONDITION_KEYS = ("modality", "tumour")


def replica_info() -> tuple[int, tf.Tensor | int]:
    """(num_replicas_in_sync, this replica's id) in the current replica context."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None:  # cross-replica context: treat as one replica
        return 1, 0
    return ctx.num_replicas_in_sync, ctx.replica_id_in_sync_group


def cross_replica_mean(value: tf.Tensor) -> tf.Tensor:
    """The mean of `value` over replicas (identity on one device)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return value
    return ctx.all_reduce(tf.distribute.ReduceOp.MEAN, value)


def assign_in_sync(variables, values) -> None:
    """Assigns values that every replica computed identically (e.g. clipped weights).

    On one device this is `v.assign(value)`. In a replica context of a
    multi-replica strategy, variables with aggregation "none" cannot be
    assigned directly, so the assignment goes through the strategy's
    cross-replica update (each device writes its own copy).
    """
    variables = list(variables)
    values = list(values)
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        for variable, value in zip(variables, values):
            variable.assign(value)
        return

    def merge_fn(strategy, per_replica_values):
        for variable, value in zip(variables, per_replica_values):
            target = variable.value if isinstance(variable, keras.Variable) else variable
            strategy.extended.update(
                target, lambda var, v: var.assign(v), args=(value,), group=False
            )

    ctx.merge_call(merge_fn, args=(values,))


class GAN(keras.Model):
    """Base class: two networks, two optimizers, trackers, seeded latents, conditions.

    Subclasses set `gan_name` (a name of `kgan.names.GANS`: it picks the paper's
    optimisers when `compile` gets none), implement `train_step`, and list their
    extra metric names in `extra_metrics`.

    Attributes:
      generator: the generator network.
      discriminator: the discriminator / critic / auto-encoder network.
      latent_dim: length of z.
      conditional: whether both networks take (modality, tumour).
      real_batches_per_step: how many real batches of `batch_size` one
        `train_step` consumes (the dataset must be batched by
        `batch_size * real_batches_per_step`); n_critic for the WGANs, else 1.
    """

    gan_name = "gan"
    real_batches_per_step = 1
    #: Under several replicas the step XLA-compiles each replica's whole computation at once
    #: (`replica_compiled`). Only for networks without batch norm (whose synchronised moments
    #: all-reduce mid-forward); the others run their networks in compiled segments.
    compiles_per_replica = False
    #: The step differentiates the discriminator's gradients (WGAN-GP's penalty), so its layers
    #: keep the kernels whose second derivatives Keras's tests cover.
    discriminator_second_derivatives = False
    extra_metrics: tuple[str, ...] = ()

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        *,
        latent_dim: int = 100,
        conditional: bool = False,
        seed: int = 0,
        ema_decay: float = 0.0,
        augment=None,
        name: str | None = None,
    ):
        super().__init__(name=name or self.gan_name.replace("-", "_"))
        self.generator = kernels.accelerate(generator)
        self.discriminator = kernels.accelerate(
            discriminator, second_derivatives=self.discriminator_second_derivatives
        )
        self.latent_dim = int(latent_dim)
        self.conditional = bool(conditional)
        self.seed = int(seed)
        self.ema_decay = float(ema_decay)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0 = off), got {ema_decay}")
        self.augment_policy = aug.parse_policy(augment)
        self.latent_seed = self.add_weight(
            shape=(2,),
            initializer=keras.initializers.Constant([self.seed, 0]),
            dtype="int64",
            trainable=False,
            aggregation="only_first_replica",
            name="latent_seed",
        )
        self.ema_generator = None
        if self.ema_decay:
            self.ema_generator = self._make_shadow(generator)
            # EMA updates done so far: drives the warm-up of the decay; saved for exact resume.
            self.ema_updates = self.add_weight(
                shape=(),
                initializer="zeros",
                dtype="int64",
                trainable=False,
                aggregation="only_first_replica",
                name="ema_updates",
            )
        names = ("d_loss", "g_loss", "d_real", "d_fake") + tuple(self.extra_metrics)
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}
        self.d_optimizer = None
        self.g_optimizer = None
        #: XLA compiles each replica's computation, not the whole step (set by `compile`).
        self.jit_per_replica = False
        self._replica_compiled = {}
        #: The networks as compiled segments, by (network name, training), under jit_per_replica.
        self._segmented = {}
        #: Images one replica receives per step, when the input pipeline cannot say: a dataset
        #: distributed across workers has no static batch size, and WGAN's split and XLA need one.
        self.replica_batch_size: int | None = None

    # ----------------------------------------------------------------- Keras API

    def compile(self, d_optimizer=None, g_optimizer=None, jit_compile=True, **kwargs):
        """Sets the two optimizers (defaults: the paper's, `kgan.names.PAPER_RECIPES`) and builds
        them.

        Args:
          d_optimizer: optimizer of the discriminator / critic.
          g_optimizer: optimizer of the generator.
          jit_compile: XLA-compile the train step. Pass True explicitly: Keras'
            "auto" turns XLA off on CPU and under tf.distribute. Under several replicas XLA
            compiles each replica's computation instead (see the module docstring).
          **kwargs: passed to `keras.Model.compile` (e.g. steps_per_execution).
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self.jit_per_replica = jit_compile is True and replicas > 1
        self._replica_compiled = {}
        self._segmented = {}
        super().compile(
            optimizer=None, jit_compile=jit_compile and not self.jit_per_replica, **kwargs
        )
        if d_optimizer is None or g_optimizer is None:
            default_d, default_g = optimizers.paper_optimizers(self.gan_name)
            d_optimizer = d_optimizer or default_d
            g_optimizer = g_optimizer or default_g
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        if self.d_optimizer is self.g_optimizer:
            raise ValueError("d_optimizer and g_optimizer must be two optimizer objects")
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)
        self.built = True

    def replica_compiled(self, fn):
        """`fn`, XLA-compiled on its own when XLA runs per replica (else `fn` itself).

        `fn` must be a pure function of its arguments (weights passed as tensors, see
        `weight_values`): a compiled function inside `strategy.run` may neither read a
        replica's variables (XLA places it on the first device) nor all-reduce.
        """
        if not self.jit_per_replica:
            return fn
        if fn.__name__ not in self._replica_compiled:
            if self.generator.non_trainable_variables or self.discriminator.non_trainable_variables:
                raise ValueError(
                    f"{type(self).__name__} cannot compile per replica: its networks hold "
                    "non-trainable state (batch norm statistics)"
                )
            self._replica_compiled[fn.__name__] = tf.function(fn, jit_compile=True)
        return self._replica_compiled[fn.__name__]

    @staticmethod
    def weight_values(variables) -> list[tf.Tensor]:
        """This replica's values of `variables`, as tensors to pass into a compiled function."""
        return [tf.convert_to_tensor(v.value) for v in variables]

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Skips Keras's pre-fit build across workers: `compile` has built everything already.

        Under a strategy Keras peeks at one batch and reduces it with `strategy.reduce`, which
        MultiWorkerMirroredStrategy refuses for an (images, labels) batch (Keras 3.15).
        """
        if distribute.across_workers(tf.distribute.get_strategy()):
            return None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator to sample, save and export: the EMA copy when enabled, else `generator`."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def call(self, inputs, training=False):
        """The generator: `gan(z)` or `gan([z, modality, tumour])`."""
        return self.generator(inputs, training=training)

    # ---------------------------------------------------------- quality levers

    @staticmethod
    def _make_shadow(generator: keras.Model) -> keras.Model:
        """A non-trainable copy of the generator (same architecture, names and weights)."""
        shadow = keras.models.clone_model(generator)
        shadow.set_weights(generator.get_weights())
        shadow.trainable = False
        if [tuple(v.shape) for v in shadow.variables] != [
            tuple(v.shape) for v in generator.variables
        ]:
            raise ValueError("the EMA copy of the generator does not mirror its variables")
        return shadow

    def update_ema(self) -> None:
        """ema <- d ema + (1 - d) w for every generator variable, after a generator update.

        d = min(ema_decay, (1 + t) / (10 + t)) with t the updates done so far (the warm-up
        of tf.train.ExponentialMovingAverage's num_updates): early on, the average follows
        the generator closely instead of remembering its random initial weights, which a
        decay of 0.999 would keep at 37% weight after 1,000 steps. Batch-norm moving
        statistics are averaged like the weights. Every replica computes the same values
        from its in-sync generator copy, so the assignment is the same as WGAN's clipping.
        """
        if self.ema_generator is None:
            return
        t = tf.cast(self.ema_updates.value, tf.float32)
        decay = tf.minimum(tf.constant(self.ema_decay, tf.float32), (1.0 + t) / (10.0 + t))
        shadow = self.ema_generator.variables
        values = [
            s + (1.0 - tf.cast(decay, s.dtype)) * (tf.cast(w, s.dtype) - s)
            for s, w in zip(shadow, self.generator.variables)
        ]
        assign_in_sync(shadow, values)
        self.ema_updates.assign_add(tf.constant(1, tf.int64))

    def augment(self, images: tf.Tensor) -> tf.Tensor:
        """DiffAugment of one batch the discriminator is about to see (identity when off).

        Each call draws fresh parameters from the model's seed state (real and fake batches
        get independent draws, as in Zhao et al.); when off it draws nothing, so the seed
        sequence, hence training, is exactly that of a GAN without the option. Under a
        strategy each replica draws the parameters of the global batch and keeps its slice.
        """
        return self.apply_augment(images, self.augment_params(images))

    def augment_params(self, images: tf.Tensor) -> dict | None:
        """The DiffAugment parameters of `augment(images)`, drawn (None when off)."""
        if not self.augment_policy:
            return None
        batch = self.batch_size_of(images)
        replicas, replica_id = replica_info()
        params = aug.draw_params(
            self._next_seed(), batch * replicas, int(images.shape[1]), self.augment_policy
        )
        if replicas > 1:
            params = aug.slice_params(params, tf.cast(replica_id, tf.int32) * batch, batch)
        return params

    @staticmethod
    def apply_augment(images: tf.Tensor, params: dict | None) -> tf.Tensor:
        """`images` augmented with drawn parameters (unchanged for None)."""
        return images if params is None else aug.apply_params(images, params)

    # --------------------------------------------------------------- helpers

    def unpack(self, data):
        """(images, conditions) from a batch `(images, labels)` or `images`.

        conditions is None for unconditional GANs, else (modality, tumour) int32 [B].
        """
        if isinstance(data, (tuple, list)):
            images, labels = data[0], (data[1] if len(data) > 1 else None)
        else:
            images, labels = data, None
        images = tf.cast(images, tf.float32)
        if images.shape[0] is None and self.replica_batch_size:
            images = tf.ensure_shape(images, [self.replica_batch_size, *images.shape[1:]])
            if isinstance(labels, dict):
                labels = {
                    k: tf.ensure_shape(v, [self.replica_batch_size, *v.shape[1:]])
                    for k, v in labels.items()
                }
        if not self.conditional:
            return images, None
        if not isinstance(labels, dict) or any(k not in labels for k in _CONDITION_KEYS):
            raise ValueError(
                f"{type(self).__name__} is conditional: batches must be (images, labels) with "
                f"labels holding {_CONDITION_KEYS} (as kgan.pipeline.load_slices yields); got "
                f"{type(labels).__name__}"
                + (f" with keys {sorted(labels)}" if isinstance(labels, dict) else "")
            )
        return images, tuple(tf.cast(labels[k], tf.int32) for k in _CONDITION_KEYS)

    @staticmethod
    def batch_size_of(images: tf.Tensor):
        """Static batch size when known (XLA wants it), else the dynamic one."""
        return images.shape[0] if images.shape[0] is not None else tf.shape(images)[0]

    def _next_seed(self) -> tf.Tensor:
        """The current seed pair, then advances the stored state (like SeedGenerator.next)."""
        seed = tf.identity(self.latent_seed.value)
        self.latent_seed.assign_add(tf.constant([0, 1], tf.int64))
        return seed

    def _replica_slice(self, values: tf.Tensor, batch_size) -> tf.Tensor:
        replicas, replica_id = replica_info()
        if replicas == 1:
            return values
        start = tf.cast(replica_id, tf.int32) * batch_size
        return values[start : start + batch_size]

    def sample_latent(self, batch_size) -> tf.Tensor:
        """z ~ N(0, I) [batch_size, latent_dim] from the model's seed state (advances it)."""
        replicas, _ = replica_info()
        z = tf.random.stateless_normal(
            [batch_size * replicas, self.latent_dim], seed=self._next_seed(), dtype=tf.float32
        )
        return self._replica_slice(z, batch_size)

    def sample_uniform(self, batch_size) -> tf.Tensor:
        """u ~ U(0, 1) [batch_size] from the model's seed state (advances it)."""
        replicas, _ = replica_info()
        u = tf.random.stateless_uniform([batch_size * replicas], seed=self._next_seed())
        return self._replica_slice(u, batch_size)

    def generate(self, z, conditions=None, training: bool = False, weights=None) -> tf.Tensor:
        """G(z) or G(z | modality, tumour); with `weights` (tensors), G with those weights."""
        return self._call(self.generator, "generator", z, conditions, training, weights)

    def discriminate(self, images, conditions=None, training: bool = False, weights=None):
        """D(x) or D(x | modality, tumour); with `weights` (tensors), D with those weights."""
        return self._call(
            self.discriminator, "discriminator", images, conditions, training, weights
        )

    def _call(self, network, role, x, conditions, training, weights):
        if self.conditional:
            if conditions is None:
                raise ValueError(f"conditional {role} needs (modality, tumour)")
            x = [x, conditions[0], conditions[1]]
        if weights is None:
            if self.jit_per_replica and not self.compiles_per_replica:
                # XLA between the batch norms, which all-reduce outside it (kgan.segments).
                return self._segmented_network(network, training)(x)
            return network(x, training=training)
        # A pure call: the weights are the given tensors, so a replica-compiled function reads
        # no variable. The networks of such GANs hold no non-trainable state to update.
        outputs, _ = network.stateless_call(weights, [], x, training=training)
        return outputs

    def _segmented_network(self, network, training: bool) -> segments.SegmentedNetwork:
        key = (network.name, bool(training))
        if key not in self._segmented:
            self._segmented[key] = segments.SegmentedNetwork(network, training)
        return self._segmented[key]

    def apply_loss_gradients(self, optimizer, loss, tape, variables) -> None:
        """One optimizer update of `variables` down the gradient of a loss recorded on `tape`.

        The loss is divided by the number of replicas through `output_gradients`
        (the tape has stopped recording here, so dividing the loss itself would
        cut it off from the variables).
        """
        optimizer.apply_gradients(zip(self.gradients(tape, loss, variables), variables))

    @staticmethod
    def gradients(tape, loss, variables) -> list:
        """d loss / d variables from `tape`, the loss divided by the number of replicas."""
        replicas, _ = replica_info()
        scale = None if replicas == 1 else tf.constant(1.0 / replicas, loss.dtype)
        return tape.gradient(loss, variables, output_gradients=scale)

    def update_metrics(self, values: dict, weights: dict | None = None) -> dict:
        """Updates trackers from {name: scalar} and returns all current results."""
        for name, value in values.items():
            weight = None if weights is None else weights.get(name)
            self.trackers[name].update_state(value, sample_weight=weight)
        results = {name: tracker.result() for name, tracker in self.trackers.items()}
        if distribute.across_workers(tf.distribute.get_strategy()):
            # Keras reduces a step's outputs under MultiWorkerMirroredStrategy with
            # strategy.reduce(MEAN, v, axis=0), which rejects scalars (checked with Keras
            # 3.15); shape [1] reduces to the same scalar.
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results
