"""Faster TensorFlow kernels behind the same Keras layers, for single-device training on a CPU.

The networks stay made of built-in Keras layers (a saved generator loads without kgan, and
checkpoints keep their variables); `accelerate` only swaps how some layers compute in a GAN's
training step, for kernels that compute the same function faster with oneDNN on a CPU
(measured in one process against the plain layers, docs/training.md#faster-kernels):

- Batch norm in training mode as one `FusedBatchNormV3` op (and its one gradient op) instead
  of Keras's moments, normalisation and moving-average updates from a dozen elementwise ops
  and reductions, and their gradients. Same statistics: the batch mean and the biased batch
  variance normalise, and the moving averages get the same update. Only on one replica (the
  synchronized statistics of several replicas stay Keras's) and only in networks whose second
  derivative nobody takes (WGAN-GP's penalty differentiates the critic's input gradient).
- A stride-2, 4x4, "same" transposed convolution to one channel (the generator's last layer)
  as a sub-pixel convolution: each output pixel of phase (row, column) parity is a 2x2
  convolution of the input with taps of the same 4x4 kernel, so one 2x2 convolution to the
  four phases' channels, then `depth_to_space`, gives the transposed convolution. TensorFlow's
  oneDNN transposed convolution to a single channel reaches a few GFLOP/s; the sub-pixel form
  runs as an ordinary convolution. The kernel variable keeps its Conv2DTranspose layout.
- For the same reason, the input gradient of a stride-2, 4x4, "same" convolution from a few
  channels (the critic's first layer, whose input gradient the generator's update needs).

`KGAN_FAST_KERNELS=0` in the environment (or `kgan.kernels.enabled = False` before the GAN is
built) keeps Keras's own kernels everywhere, to compare or to rule these out.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

#: Whether `accelerate` swaps kernels at all.
enabled = os.environ.get("KGAN_FAST_KERNELS", "1").strip() != "0"


def _one_replica() -> bool:
    ctx = tf.distribute.get_replica_context()
    return ctx is None or ctx.num_replicas_in_sync == 1


def fused_batch_norm_training(layer, inputs):
    """Keras `BatchNormalization` in training mode through `FusedBatchNormV3`.

    Returns the normalised batch and updates the layer's moving mean and variance as Keras
    does (momentum-weighted, with the biased batch variance).
    """
    x = tf.cast(inputs, tf.float32)
    channels = x.shape[-1]
    gamma = tf.cast(layer.gamma, tf.float32) if layer.scale else tf.ones([channels])
    beta = tf.cast(layer.beta, tf.float32) if layer.center else tf.zeros([channels])
    y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=x,
        scale=gamma,
        offset=beta,
        mean=tf.zeros([0]),
        variance=tf.zeros([0]),
        epsilon=layer.epsilon,
        data_format="NHWC",
        is_training=True,
    )
    # The op returns the unbiased (Bessel-corrected) variance; Keras averages the biased one.
    count = tf.cast(tf.size(x) // channels, tf.float32)
    variance = variance * (count - 1.0) / count
    momentum = layer.momentum
    layer.moving_mean.assign(layer.moving_mean * momentum + mean * (1.0 - momentum))
    layer.moving_variance.assign(layer.moving_variance * momentum + variance * (1.0 - momentum))
    return tf.cast(y, layer.compute_dtype)


def _fusable_batch_norm(layer) -> bool:
    return (
        isinstance(layer, keras.layers.BatchNormalization)
        and not layer.renorm
        and layer.axis in (-1, 3)
        and len(layer.input.shape) == 4
    )


def _fast_batch_norm_call(layer):
    plain_call = layer.call

    def call(inputs, training=None, mask=None):
        if training and layer.trainable and mask is None and _one_replica():
            return fused_batch_norm_training(layer, inputs)
        return plain_call(inputs, training=training, mask=mask)

    return call


def _subpixel_forward(x, kernel):
    # Place p of depth_to_space (0 even, 1 odd on the padded grid) takes taps (2 + p, p).
    phases = [kernel[2 + p :: -2, 2 + q :: -2] for p in (0, 1) for q in (0, 1)]
    taps = tf.transpose(tf.concat(phases, axis=2), [0, 1, 3, 2])  # [2, 2, C_in, 4 C_out]
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    y = tf.nn.depth_to_space(tf.nn.conv2d(padded, taps, 1, "VALID"), 2)
    return y[:, 1:-1, 1:-1, :]


def subpixel_conv_transpose(x, kernel):
    """A stride-2, 4x4, "same" transposed convolution (NHWC) as one 2x2 convolution.

    Args:
      x: [N, H, W, C_in].
      kernel: [4, 4, C_out, C_in], the layout of `keras.layers.Conv2DTranspose` and
        `tf.nn.conv2d_transpose`.

    Returns:
      [N, 2H, 2W, C_out], equal to `tf.nn.conv2d_transpose(x, kernel, strides=2, "SAME")`.

    Why it is the same: output row o = 2m + a gets kernel tap k from input row i when
    o = 2i + k - 1, so with the input padded by one on each side, even rows (a = 0) take taps
    (3, 1) from padded rows (m, m + 1) and odd rows take taps (2, 0) from padded rows
    (m + 1, m + 2): a 2x2 convolution of the padded input, at position m for even rows and
    m + 1 for odd ones. On the padded output grid (index o + 1) the odd rows sit at even
    places and the even rows at odd places, so ordering the phases' channels that way lets
    `depth_to_space` interleave them, and cropping one pixel on each side finishes.

    The gradients are TensorFlow's own for a transposed convolution (a stride-2 convolution of
    the output gradient, and a filter gradient), which are fast at these shapes; the sub-pixel
    form's own gradients (through the 2x2 convolution) were slower.
    """

    @tf.custom_gradient
    def transpose(x, kernel):
        def grad(dy):
            d_x = tf.nn.conv2d(dy, kernel, 2, "SAME")
            d_kernel = tf.raw_ops.Conv2DBackpropFilter(
                input=dy,
                filter_sizes=tf.shape(kernel),
                out_backprop=x,
                strides=[1, 2, 2, 1],
                padding="SAME",
            )
            return d_x, d_kernel

        return _subpixel_forward(x, kernel), grad

    return transpose(x, tf.convert_to_tensor(kernel))


def _subpixel_transpose(layer) -> bool:
    return (
        isinstance(layer, keras.layers.Conv2DTranspose)
        and layer.filters == 1
        and tuple(layer.kernel_size) == (4, 4)
        and tuple(layer.strides) == (2, 2)
        and layer.padding == "same"
        and layer.data_format == "channels_last"
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.output_padding is None
    )


def _layer_call(layer, convolve):
    """A convolution layer's `call` with `convolve(inputs, kernel)` in place of its own op."""

    def call(inputs):
        y = convolve(inputs, tf.cast(layer.kernel, inputs.dtype))
        if layer.use_bias:
            y = y + tf.cast(layer.bias, y.dtype)
        return layer.activation(y) if layer.activation is not None else y

    return call


def conv_with_subpixel_input_gradient(x, kernel):
    """A stride-2, 4x4, "same" convolution whose input gradient is `subpixel_conv_transpose`.

    The input gradient of a convolution is the transposed convolution of the output gradient
    with the same kernel (a [4, 4, C_in, C_out] convolution kernel is the layout a transposed
    convolution from C_out to C_in channels takes), so for an input with few channels (the
    critic's image) it is the slow single-channel case above.
    """

    @tf.custom_gradient
    def conv(x, kernel):
        def grad(dy):
            d_kernel = tf.raw_ops.Conv2DBackpropFilter(
                input=x,
                filter_sizes=tf.shape(kernel),
                out_backprop=dy,
                strides=[1, 2, 2, 1],
                padding="SAME",
            )
            return subpixel_conv_transpose(dy, kernel), d_kernel

        return tf.nn.conv2d(x, kernel, 2, "SAME"), grad

    return conv(x, tf.convert_to_tensor(kernel))  # a tensor: no variable inside the gradient


def _subpixel_input_gradient(layer) -> bool:
    return (
        type(layer) is keras.layers.Conv2D
        and layer.input.shape[-1] <= 8
        and tuple(layer.kernel_size) == (4, 4)
        and tuple(layer.strides) == (2, 2)
        and layer.padding == "same"
        and layer.data_format == "channels_last"
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.groups == 1
        and all(side is not None and side % 2 == 0 for side in layer.input.shape[1:3])
    )


def accelerate(model: keras.Model, *, second_derivatives: bool = False) -> keras.Model:
    """Swaps the computation of `model`'s eligible layers for faster, equal kernels, in place.

    Only the layers' `call` changes, on these layer objects: their variables, configs and
    saved files are those of the built-in layers. Does nothing off TensorFlow, and nothing
    where TensorFlow sees a GPU: the kernels were measured on CPUs only (the GPU path is XLA).

    Args:
      model: a built functional model from `kgan.networks`.
      second_derivatives: the training step differentiates this model's gradients
        (WGAN-GP's critic); batch norm then keeps Keras's kernels.

    Returns:
      `model`.
    """
    if not enabled or keras.backend.backend() != "tensorflow":
        return model
    if tf.config.list_physical_devices("GPU"):
        return model
    for layer in model.layers:
        if _fusable_batch_norm(layer) and not second_derivatives:
            layer.call = _fast_batch_norm_call(layer)
        elif _subpixel_transpose(layer):
            layer.call = _layer_call(layer, subpixel_conv_transpose)
        elif _subpixel_input_gradient(layer) and not second_derivatives:
            layer.call = _layer_call(layer, conv_with_subpixel_input_gradient)
    return model
