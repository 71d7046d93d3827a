"""Generator and discriminator networks: DCGAN (Radford et al.) and BEGAN (Berthelot et al.).

Every generator is a functional `keras.Model` made only of built-in Keras
layers, so a saved `generator.keras` loads with plain `keras.saving.load_model`
and no kgan code (serving and evaluation rely on that). The one kgan layer,
`SampleNorm`, is in the WGAN-GP critic, which is never exported.

Sizes grow or shrink by blocks of one 2x (up/down)sampling each: DCGAN starts
from a 4x4 projection (32 -> 3 blocks, 64 -> 4, 128 -> 5, 256 -> 6); BEGAN
starts from 8x8 (32 -> 2, 64 -> 3, 128 -> 4, 256 -> 5).

Conditioning (optional): the modality (index into `kgan.names.MODALITIES`, 4
classes) and tumour present/absent (0/1) enter as one-hot vectors. The
generator concatenates them to z; the discriminator gets them as extra constant
input channels (one per class) beside the image, so it judges the pair
(image, label) as in conditional GANs (Mirza and Osindero 2014).
"""

from __future__ import annotations

import math

import keras
from keras import layers

from kgan import names, sizes

NUM_MODALITIES = len(names.MODALITIES)
NUM_TUMOUR_CLASSES = names.TUMOUR_CLASSES
#: Channels of the one-hot condition: modality classes then tumour classes.
CONDITION_CHANNELS = NUM_MODALITIES + NUM_TUMOUR_CLASSES
#: The sides the networks build (`kgan.sizes`, the rule datasets are checked against too).
SUPPORTED_SIZES = sizes.IMAGE_SIZES
#: Default network width per GAN: DCGAN's ngf = ndf = 64, BEGAN's n = 64.
DEFAULT_WIDTH = {"dcgan": 64, "wgan": 64, "wgan-gp": 64, "began": 64}
#: Default critic normalisation: batch norm as in DCGAN (the paper's WGAN kept
#: the DCGAN architecture), layer norm for WGAN-GP (its penalty is per sample).
DEFAULT_CRITIC_NORM = {"dcgan": "batch", "wgan": "batch", "wgan-gp": "layer"}

_BN_MOMENTUM = 0.9  # DCGAN reference implementations (TF: 0.9, PyTorch: 0.1 == 0.9 here)
_BN_EPSILON = 1e-5


def _blocks(image_size: int, start: int) -> int:
    if image_size not in SUPPORTED_SIZES or image_size < 2 * start:
        raise ValueError(
            f"image_size must be one of {[s for s in SUPPORTED_SIZES if s >= 2 * start]}, "
            f"got {image_size}"
        )
    return int(round(math.log2(image_size // start)))


class _Seeds:
    """Hands out distinct, reproducible initializer seeds, one per layer."""

    def __init__(self, seed: int):
        self.next_seed = int(seed) * 1000

    def normal(self, stddev: float = 0.02):
        self.next_seed += 1
        return keras.initializers.RandomNormal(0.0, stddev, seed=self.next_seed)

    def glorot(self):
        self.next_seed += 1
        return keras.initializers.GlorotUniform(seed=self.next_seed)


def _condition_inputs():
    modality = keras.Input(shape=(), dtype="int32", name="modality")
    tumour = keras.Input(shape=(), dtype="int32", name="tumour")
    one_hot = layers.Concatenate(name="condition")(
        [
            layers.CategoryEncoding(NUM_MODALITIES, output_mode="one_hot", name="modality_onehot")(
                modality
            ),
            layers.CategoryEncoding(
                NUM_TUMOUR_CLASSES, output_mode="one_hot", name="tumour_onehot"
            )(tumour),
        ]
    )
    return modality, tumour, one_hot


def _image_with_condition(image_size: int, conditional: bool, channels: int = 1):
    """Discriminator inputs; the condition becomes constant per-class channels."""
    image = keras.Input(shape=(image_size, image_size, channels), name="image")
    if not conditional:
        return [image], image
    modality, tumour, one_hot = _condition_inputs()
    planes = layers.RepeatVector(image_size * image_size, name="condition_repeat")(one_hot)
    planes = layers.Reshape((image_size, image_size, CONDITION_CHANNELS), name="condition_planes")(
        planes
    )
    x = layers.Concatenate(axis=-1, name="image_and_condition")([image, planes])
    return [image, modality, tumour], x


def _latent_with_condition(latent_dim: int, conditional: bool):
    z = keras.Input(shape=(latent_dim,), name="z")
    if not conditional:
        return [z], z
    modality, tumour, one_hot = _condition_inputs()
    return [z, modality, tumour], layers.Concatenate(name="z_and_condition")([z, one_hot])


@keras.saving.register_keras_serializable(package="kgan")
class SampleNorm(layers.Layer):
    """Layer norm of each sample over (H, W, C) with a per-channel scale and offset.

    The same function and weights (gamma, beta) as `GroupNormalization(groups=1)`, but with the
    exact second derivative. Keras computes the variance on TensorFlow with `tf.nn.moments`,
    which stops the gradient through the mean inside it: that changes no first derivative (the
    variance's derivative with respect to its mean is zero) but drops a term of the second, and
    WGAN-GP's penalty differentiates the critic's input gradient, so its critic updates were off
    (about 1 % against PyTorch's GroupNorm, tests/test_torch_reference.py). Here the variance is
    the plain mean of squared deviations, differentiated through.
    """

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, inputs):
        low = keras.backend.standardize_dtype(inputs.dtype) in ("float16", "bfloat16")
        x = keras.ops.cast(inputs, "float32") if low else inputs  # statistics in float32 at least
        axes = list(range(1, len(x.shape)))
        mean = keras.ops.mean(x, axis=axes, keepdims=True)
        centred = x - mean
        variance = keras.ops.mean(keras.ops.square(centred), axis=axes, keepdims=True)
        y = centred * keras.ops.rsqrt(variance + self.epsilon) * keras.ops.cast(
            self.gamma, x.dtype
        ) + keras.ops.cast(self.beta, x.dtype)
        return keras.ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def _several_replicas() -> bool:
    """True when building under a TensorFlow distribution strategy with more than one replica."""
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync > 1


def _normalization(kind: str, name: str, cheap_moments: bool = False):
    if kind == "batch":
        # synchronized: under MirroredStrategy the batch statistics are those
        # of the global batch, so multi-replica training equals one device.
        # Only TensorFlow has it. On one device a generator's statistics are the
        # same without it, and Keras's plain moments are cheaper (the synchronized
        # ones also sum a tensor of ones as large as the activations), so the
        # generator's norms synchronize only under several replicas. A critic's
        # stay synchronized: the plain moments (tf.nn.moments) drop a term of the
        # second derivative, which WGAN-GP's penalty differentiates (see
        # SampleNorm). The same networks also build on Keras's other backends
        # (the JAX GPU benchmark).
        return layers.BatchNormalization(
            momentum=_BN_MOMENTUM,
            epsilon=_BN_EPSILON,
            synchronized=keras.backend.backend() == "tensorflow"
            and (not cheap_moments or _several_replicas()),
            name=name,
        )
    if kind == "layer":
        # One group = normalise each sample over (H, W, C), per-channel scale:
        # the layer norm WGAN-GP recommends (its penalty is per sample, batch
        # norm would couple the samples), with its exact second derivative (SampleNorm).
        return SampleNorm(epsilon=_BN_EPSILON, name=name)
    if kind == "none":
        return None
    raise ValueError(f"norm must be 'batch', 'layer' or 'none', got {kind!r}")


def _channel_mults(blocks: int, max_mult: int) -> list[int]:
    # Widest at the 4x4 end: ... 8, 4, 2, 1 (x width), capped at max_mult.
    return [min(2 ** (blocks - 1 - i), max_mult) for i in range(blocks)]


def dcgan_generator(
    image_size: int = 64,
    latent_dim: int = 100,
    width: int = 64,
    conditional: bool = False,
    *,
    kernel_size: int = 4,
    max_width_mult: int = 8,
    seed: int = 0,
    name: str = "generator",
) -> keras.Model:
    """DCGAN generator (Radford et al. 2016): project-and-reshape then strided transposed convs.

    z [N, latent_dim] -> Dense to 4x4x(width*8) -> BN -> ReLU -> blocks of
    Conv2DTranspose(stride 2) -> BN -> ReLU, halving the channels, -> a last
    Conv2DTranspose(stride 2) to one channel with tanh. Weights ~ N(0, 0.02).

    Args:
      image_size: output side (16, 32, 64, 128 or 256).
      latent_dim: length of z (100 in the paper).
      width: channels of the last hidden block (ngf; 64 in the paper).
      conditional: add `modality` and `tumour` int32 [N] inputs.
      kernel_size: transposed-conv kernel (4 as in the WGAN reference code, 5 in
        the DCGAN code; 4 with stride 2 tiles without checkerboard overlap).
      max_width_mult: cap on the channel multiplier for 128/256 (keeps size sane).
      seed: initializer seed.
      name: model name.

    Returns:
      A functional model: `generator(z)` or `generator([z, modality, tumour])`
      -> float32 [N, S, S, 1] in [-1, 1].
    """
    blocks = _blocks(image_size, 4)
    seeds = _Seeds(seed)
    inputs, x = _latent_with_condition(latent_dim, conditional)
    mults = _channel_mults(blocks, max_width_mult)
    x = layers.Dense(
        4 * 4 * width * mults[0], use_bias=False, kernel_initializer=seeds.normal(), name="project"
    )(x)
    x = layers.Reshape((4, 4, width * mults[0]), name="reshape")(x)
    x = _normalization("batch", "project_bn", cheap_moments=True)(x)
    x = layers.ReLU(name="project_relu")(x)
    for i, mult in enumerate(mults[1:], start=1):
        x = layers.Conv2DTranspose(
            width * mult,
            kernel_size,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=seeds.normal(),
            name=f"up{i}",
        )(x)
        x = _normalization("batch", f"up{i}_bn", cheap_moments=True)(x)
        x = layers.ReLU(name=f"up{i}_relu")(x)
    x = layers.Conv2DTranspose(
        1,
        kernel_size,
        strides=2,
        padding="same",
        kernel_initializer=seeds.normal(),
        name=f"up{blocks}",
    )(x)
    images = layers.Activation("tanh", dtype="float32", name="images")(x)
    return keras.Model(inputs if conditional else inputs[0], images, name=name)


def dcgan_discriminator(
    image_size: int = 64,
    width: int = 64,
    conditional: bool = False,
    *,
    norm: str = "batch",
    kernel_size: int = 4,
    max_width_mult: int = 8,
    seed: int = 0,
    name: str = "discriminator",
) -> keras.Model:
    """DCGAN discriminator / WGAN critic: strided convs, LeakyReLU 0.2, one logit.

    image -> Conv(width, stride 2) -> LeakyReLU (no norm on the input layer, as
    Radford et al.) -> blocks of Conv(stride 2) -> norm -> LeakyReLU doubling
    the channels down to 4x4 -> Flatten -> Dense(1). The output is a raw score
    (a logit for DCGAN, the critic value for WGAN): no sigmoid.

    Args:
      image_size: input side.
      width: channels of the first conv (ndf; 64 in the paper).
      conditional: add `modality` and `tumour` inputs, fed as extra channels.
      norm: "batch" (DCGAN, the paper's WGAN), "layer" (WGAN-GP) or "none".
      kernel_size: conv kernel.
      max_width_mult: cap on the channel multiplier.
      seed: initializer seed.
      name: model name.

    Returns:
      `discriminator(image)` or `discriminator([image, modality, tumour])`
      -> float32 [N, 1].
    """
    blocks = _blocks(image_size, 4)
    seeds = _Seeds(seed + 1)
    inputs, x = _image_with_condition(image_size, conditional)
    mults = list(reversed(_channel_mults(blocks, max_width_mult)))
    for i, mult in enumerate(mults):
        x = layers.Conv2D(
            width * mult,
            kernel_size,
            strides=2,
            padding="same",
            use_bias=(i == 0 or norm == "none"),
            kernel_initializer=seeds.normal(),
            name=f"down{i}",
        )(x)
        if i > 0:
            norm_layer = _normalization(norm, f"down{i}_norm")
            if norm_layer is not None:
                x = norm_layer(x)
        x = layers.LeakyReLU(0.2, name=f"down{i}_lrelu")(x)
    x = layers.Flatten(name="flatten")(x)
    score = layers.Dense(1, kernel_initializer=seeds.normal(), dtype="float32", name="score")(x)
    return keras.Model(inputs if conditional else inputs[0], score, name=name)


def _began_decoder_body(x, image_size: int, filters: int, seeds: _Seeds, prefix: str):
    """Berthelot et al. decoder from h: 8x8xn, then [conv, conv, upsample] blocks."""
    ups = _blocks(image_size, 8)
    x = layers.Dense(8 * 8 * filters, kernel_initializer=seeds.glorot(), name=f"{prefix}_project")(
        x
    )
    x = layers.Reshape((8, 8, filters), name=f"{prefix}_reshape")(x)
    for i in range(ups + 1):
        for j in range(2):
            x = layers.Conv2D(
                filters,
                3,
                padding="same",
                activation="elu",
                kernel_initializer=seeds.glorot(),
                name=f"{prefix}_conv{i}_{j}",
            )(x)
        if i < ups:
            x = layers.UpSampling2D(2, interpolation="nearest", name=f"{prefix}_up{i}")(x)
    return layers.Conv2D(
        1,
        3,
        padding="same",
        kernel_initializer=seeds.glorot(),
        dtype="float32",
        name=f"{prefix}_out",
    )(x)


def began_generator(
    image_size: int = 64,
    latent_dim: int = 100,
    filters: int = 64,
    conditional: bool = False,
    *,
    output: str = "tanh",
    seed: int = 0,
    name: str = "generator",
) -> keras.Model:
    """BEGAN generator (Berthelot et al. 2017): the decoder architecture applied to z.

    z -> Dense to 8x8xn -> blocks of [3x3 conv + ELU, 3x3 conv + ELU, nearest-
    neighbour 2x upsampling] -> 3x3 conv to one channel. The paper's output is
    linear; the data (and the contract) are in [-1, 1], so `output="tanh"`
    (default) squashes it, or `output="clip"` clips it. Clipping gives no
    gradient to pixels pushed past the bounds: on the phantom slices, with
    gamma 1.0, a clipped generator fell to all-black images and never came back.

    Args:
      image_size: output side (16, 32, 64, 128 or 256).
      latent_dim: length of z.
      filters: n, the channels of every conv.
      conditional: add `modality` and `tumour` inputs concatenated to z.
      output: "clip" or "tanh".
      seed: initializer seed.
      name: model name.
    """
    seeds = _Seeds(seed + 2)
    inputs, x = _latent_with_condition(latent_dim, conditional)
    x = _began_decoder_body(x, image_size, filters, seeds, "dec")
    if output == "clip":
        # clip(x, -1, 1) = relu6-style cap of (x + 1) at 2, minus 1: layers present in every
        # Keras 3 release (the hard_tanh activation is recent), so old Keras loads the file too.
        x = layers.Rescaling(1.0, offset=1.0, name="clip_shift")(x)
        x = layers.ReLU(max_value=2.0, name="clip")(x)
        images = layers.Rescaling(1.0, offset=-1.0, dtype="float32", name="images")(x)
    elif output == "tanh":
        images = layers.Activation("tanh", dtype="float32", name="images")(x)
    else:
        raise ValueError(f"output must be 'clip' or 'tanh', got {output!r}")
    return keras.Model(inputs if conditional else inputs[0], images, name=name)


def began_discriminator(
    image_size: int = 64,
    filters: int = 64,
    bottleneck: int = 64,
    conditional: bool = False,
    *,
    seed: int = 0,
    name: str = "discriminator",
) -> keras.Model:
    """BEGAN discriminator: an auto-encoder whose output is the reconstruction.

    Encoder: 3x3 conv (n) -> blocks of [3x3 conv + ELU, 3x3 conv + ELU,
    stride-2 3x3 conv subsampling] with n, 2n, 3n, ... channels -> Dense to the
    bottleneck h (linear). Decoder: as the generator (own weights), linear
    output. The loss is the L1 reconstruction error, not a score.

    Args:
      image_size: input side.
      filters: n.
      bottleneck: h, the embedding size.
      conditional: add `modality` and `tumour` inputs as extra input channels
        (the reconstruction is of the image only).
      seed: initializer seed.
      name: model name.

    Returns:
      `discriminator(image)` or `discriminator([image, modality, tumour])` ->
      reconstruction float32 [N, S, S, 1].
    """
    downs = _blocks(image_size, 8)
    seeds = _Seeds(seed + 3)
    inputs, x = _image_with_condition(image_size, conditional)
    x = layers.Conv2D(
        filters,
        3,
        padding="same",
        activation="elu",
        kernel_initializer=seeds.glorot(),
        name="enc_in",
    )(x)
    for i in range(downs + 1):
        channels = filters * (i + 1)
        for j in range(2):
            x = layers.Conv2D(
                channels,
                3,
                padding="same",
                activation="elu",
                kernel_initializer=seeds.glorot(),
                name=f"enc_conv{i}_{j}",
            )(x)
        if i < downs:
            x = layers.Conv2D(
                filters * (i + 2),
                3,
                strides=2,
                padding="same",
                activation="elu",
                kernel_initializer=seeds.glorot(),
                name=f"enc_down{i}",
            )(x)
    x = layers.Flatten(name="enc_flatten")(x)
    h = layers.Dense(bottleneck, kernel_initializer=seeds.glorot(), name="embedding")(x)
    reconstruction = _began_decoder_body(h, image_size, filters, seeds, "dec")
    reconstruction = layers.Activation("linear", dtype="float32", name="reconstruction")(
        reconstruction
    )
    return keras.Model(inputs if conditional else inputs[0], reconstruction, name=name)
