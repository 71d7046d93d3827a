"""Differentiable augmentation of the discriminator's inputs (DiffAugment, Zhao et al. 2020).

A discriminator that sees every training slice thousands of times can memorise them; its
feedback to the generator then degrades. DiffAugment transforms *both* the real and the
generated batch with random, differentiable operations before the discriminator sees them,
so the generator's gradient passes through the transform and the generator is never asked to
produce augmented images.

Operations (`POLICIES`), chosen for greyscale sagittal MRI slices in [-1, 1] with a black
(-1) background:

- "translation": shift each image by up to `translation_ratio` of its size in x and y
  (integer pixels); uncovered pixels are background (-1), not grey.
- "cutout": blank one square of `cutout_ratio` of the size at a random place, filled with
  background (-1).
- "brightness": add one offset per image, uniform in [-0.5, 0.5) (a quarter of the range).
- "contrast": scale each image about its own mean by a factor uniform in [0.5, 1.5).

No flips, rotations or colour operations: a left-right flip of a sagittal slice swaps
anterior and posterior (not a plausible anatomy) and the slices have one channel. The
geometric operations come first and fill with the background, then the intensity ones act on
the whole image. Every random number comes from a stateless seed, so a seed gives the same
augmentation everywhere (and a resumed run repeats it exactly).

`draw_params` and `apply_params` are separate so that a multi-replica step can draw the
parameters of the whole global batch and keep each replica's slice (as with z).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import tensorflow as tf

POLICIES = ("translation", "cutout", "brightness", "contrast")
BACKGROUND = -1.0


def parse_policy(policy) -> tuple[str, ...]:
    """A policy as a tuple of operation names, from a list or a comma-separated string.

    None, "", "none" and [] mean no augmentation (an empty tuple). Unknown names raise
    ValueError naming them.
    """
    if policy is None:
        return ()
    if isinstance(policy, str):
        names = [p.strip() for p in policy.split(",") if p.strip()]
        if names == ["none"]:
            names = []
    elif isinstance(policy, Iterable):
        names = [str(p).strip() for p in policy]
    else:
        raise ValueError(
            f"augment must be a list of {POLICIES} or a comma-separated string, got {policy!r}"
        )
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; choose from {POLICIES}")
    if len(set(names)) != len(names):
        raise ValueError(f"augmentation listed twice in {names}")
    return tuple(n for n in POLICIES if n in names)  # one fixed order, whatever the listing


def draw_params(
    seed,
    count,
    size: int,
    policy: tuple[str, ...],
    *,
    translation_ratio: float = 0.125,
    cutout_ratio: float = 0.5,
) -> dict:
    """Per-image random parameters for `count` images of `size` x `size`.

    Args:
      seed: int32/int64 [2] stateless seed; each operation uses its own fold of it.
      count: number of images.
      size: image height = width.
      policy: operation names (`parse_policy`).

    Returns:
      {name: tensor [count] or [count, 2]}: "shift" (int32 [count, 2], dy and dx),
      "cutout" (int32 [count, 2], the hole's top-left corner, may lie off the image by up to
      half the hole), "brightness" (float32 offsets), "contrast" (float32 factors).
    """
    seed = tf.cast(seed, tf.int64)
    keys = tf.random.experimental.stateless_split(seed, num=len(POLICIES))
    out = {}
    if "translation" in policy:
        limit = int(size * translation_ratio)
        out["shift"] = tf.random.stateless_uniform(
            [count, 2], seed=keys[0], minval=-limit, maxval=limit + 1, dtype=tf.int32
        )
    if "cutout" in policy:
        hole = cutout_size(size, cutout_ratio)
        # The hole's centre is uniform over the image, so its corner runs from -hole // 2.
        centre = tf.random.stateless_uniform(
            [count, 2], seed=keys[1], minval=0, maxval=size, dtype=tf.int32
        )
        out["cutout"] = centre - hole // 2
    if "brightness" in policy:
        out["brightness"] = tf.random.stateless_uniform([count], seed=keys[2]) - 0.5
    if "contrast" in policy:
        out["contrast"] = tf.random.stateless_uniform([count], seed=keys[3]) + 0.5
    return out


def cutout_size(size: int, cutout_ratio: float = 0.5) -> int:
    """Side of the cutout square in pixels (at least one)."""
    return max(1, int(size * cutout_ratio + 0.5))


def slice_params(params: Mapping, start, count) -> dict:
    """Rows [start, start + count) of every parameter (one replica's share of the batch)."""
    return {k: v[start : start + count] for k, v in params.items()}


def apply_params(images: tf.Tensor, params: Mapping, *, cutout_ratio: float = 0.5) -> tf.Tensor:
    """Augments `images` [N, S, S, C] with the parameters of `draw_params`; differentiable.

    Every operation is a gather, a select or an affine map of the pixels, so the gradient
    with respect to the images is exact (zero where a pixel was cut out or shifted away).
    """
    images = tf.convert_to_tensor(images)
    size = images.shape[1] if images.shape[1] is not None else tf.shape(images)[1]
    dtype = images.dtype
    background = tf.constant(BACKGROUND, dtype)
    x = images
    if "shift" in params:
        shift = params["shift"]
        coords = tf.range(size, dtype=tf.int32)
        # Output pixel (i, j) takes input pixel (i - dy, j - dx) when it exists.
        rows = coords[None, :] - shift[:, :1]  # [N, S]
        cols = coords[None, :] - shift[:, 1:]
        rows_in = (rows >= 0) & (rows < size)
        cols_in = (cols >= 0) & (cols < size)
        x = tf.gather(x, tf.clip_by_value(rows, 0, size - 1), axis=1, batch_dims=1)
        x = tf.gather(x, tf.clip_by_value(cols, 0, size - 1), axis=2, batch_dims=1)
        inside = rows_in[:, :, None, None] & cols_in[:, None, :, None]
        x = tf.where(inside, x, background)
    if "cutout" in params:
        hole = cutout_size(int(images.shape[1]), cutout_ratio)
        corner = params["cutout"]
        coords = tf.range(size, dtype=tf.int32)[None, :]
        in_rows = (coords >= corner[:, :1]) & (coords < corner[:, :1] + hole)
        in_cols = (coords >= corner[:, 1:]) & (coords < corner[:, 1:] + hole)
        blanked = in_rows[:, :, None, None] & in_cols[:, None, :, None]
        x = tf.where(blanked, background, x)
    if "brightness" in params:
        x = x + tf.cast(params["brightness"], dtype)[:, None, None, None]
    if "contrast" in params:
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = (x - mean) * tf.cast(params["contrast"], dtype)[:, None, None, None] + mean
    return x


def diff_augment(
    images: tf.Tensor, seed, policy, *, translation_ratio: float = 0.125, cutout_ratio: float = 0.5
) -> tf.Tensor:
    """Augments a batch with fresh parameters from `seed` (one device; see `kgan.gans.GAN`)."""
    policy = parse_policy(policy)
    if not policy:
        return images
    params = draw_params(
        seed,
        tf.shape(images)[0] if images.shape[0] is None else images.shape[0],
        int(images.shape[1]),
        policy,
        translation_ratio=translation_ratio,
        cutout_ratio=cutout_ratio,
    )
    return apply_params(images, params, cutout_ratio=cutout_ratio)


__all__ = [
    "POLICIES",
    "BACKGROUND",
    "parse_policy",
    "draw_params",
    "apply_params",
    "slice_params",
    "cutout_size",
    "diff_augment",
]
