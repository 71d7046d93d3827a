"""Sliced Wasserstein distance on Laplacian pyramid patches (Karras et al., ICLR 2018).

Each image is split into a Laplacian pyramid (5-tap binomial filter, finest
level first, the coarsest Gaussian level last, down to `min_resolution`); at
each level random 7x7 patches are cut out, and the two sets of patches are
compared by the sliced Wasserstein distance: the mean, over random unit
directions, of the 1-D Wasserstein distance between the projected patches.

One deliberate change from Karras et al.: they normalise each set's patches
by that set's own mean and standard deviation, which hides a global brightness
change. MRI intensities matter, so both sets here are normalised with the
*reference* set's statistics per level; a brighter or darker generator shows.
Distances are multiplied by 1e3, as in the paper's tables.
"""

from __future__ import annotations

import numpy as np

_KERNEL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(images: np.ndarray) -> np.ndarray:
    """Separable 5-tap binomial blur of [N, H, W] with reflected borders."""
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)), mode="reflect")
    rows = sum(_KERNEL[k] * padded[:, k : k + images.shape[1], :] for k in range(5))
    return sum(_KERNEL[k] * rows[:, :, k : k + images.shape[2]] for k in range(5))


def _upsample(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Zero-insertion upsampling then blur (x4 to keep the mean), the Burt-Adelson way."""
    up = np.zeros((images.shape[0],) + shape, images.dtype)
    up[:, ::2, ::2] = images
    return _blur(up) * 4.0


def laplacian_pyramid(images: np.ndarray, min_resolution: int = 16) -> list[np.ndarray]:
    """Splits images into band-pass levels, finest first, coarsest Gaussian last.

    Args:
      images: [N, S, S] or [N, S, S, 1] floats.
      min_resolution: the coarsest level's size (never below the input size).

    Returns:
      A list of [N, s, s] arrays with s = S, S/2, ..., >= min_resolution.
    """
    current = _as_planes(images).astype(np.float64)
    levels = []
    while current.shape[1] // 2 >= min_resolution and current.shape[1] % 2 == 0:
        down = _blur(current)[:, ::2, ::2]
        levels.append(current - _upsample(down, current.shape[1:]))
        current = down
    levels.append(current)
    return levels


def _as_planes(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise ValueError(f"expected images [N, S, S(, 1)], got shape {images.shape}")
    return images


def patches(
    level: np.ndarray, per_image: int, rng: np.random.Generator, patch: int = 7
) -> np.ndarray:
    """Cuts `per_image` random patch x patch descriptors from each image, [N*per_image, patch**2].

    The positions depend only on the generator's state and the set's shape, so
    two sets cut with equally seeded generators share positions (common random
    numbers: identical sets give distance 0, and noise cancels in comparisons).
    """
    n, h, w = level.shape
    if h < patch or w < patch:
        raise ValueError(f"level of {h}x{w} is smaller than the {patch}x{patch} patch")
    ys = rng.integers(0, h - patch + 1, size=(n, per_image))
    xs = rng.integers(0, w - patch + 1, size=(n, per_image))
    offsets = np.arange(patch)
    rows = ys[..., None, None] + offsets[:, None]  # [n, k, patch, 1]
    cols = xs[..., None, None] + offsets[None, :]  # [n, k, 1, patch]
    idx = np.arange(n)[:, None, None, None]
    return level[idx, rows, cols].reshape(n * per_image, patch * patch)


def sliced_wasserstein(
    a: np.ndarray, b: np.ndarray, rng: np.random.Generator, projections: int = 128, repeats: int = 4
) -> float:
    """Mean 1-D Wasserstein distance between a and b along random unit directions.

    The sets may differ in size: both are compared at the same quantiles.
    """
    dims = a.shape[1]
    total = 0.0
    q = np.linspace(0.0, 1.0, min(len(a), len(b)))
    for _ in range(repeats):
        directions = rng.standard_normal((dims, projections))
        directions /= np.linalg.norm(directions, axis=0, keepdims=True)
        pa = np.sort(a @ directions, axis=0)
        pb = np.sort(b @ directions, axis=0)
        if len(pa) != len(pb):
            pa = np.quantile(pa, q, axis=0) if len(pa) != len(q) else pa
            pb = np.quantile(pb, q, axis=0) if len(pb) != len(q) else pb
        total += float(np.mean(np.abs(pa - pb)))
    return total / repeats


def swd(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    seed: int = 0,
    patches_per_image: int = 64,
    min_resolution: int = 16,
    projections: int = 128,
    repeats: int = 4,
) -> dict:
    """Per-level and mean SWD (x1e3) between two image sets; 0 for identical sets.

    Args:
      reference: real images [N, S, S(, 1)] in [-1, 1]; their patch statistics
        normalise both sets.
      candidate: images to judge, same size.
      seed: seeds patch positions and projection directions (same seed, same number).
      patches_per_image: 7x7 descriptors cut from each image per level.
      min_resolution: coarsest pyramid level.
      projections, repeats: random directions per repeat, and repeats.

    Returns:
      {"levels": {resolution: swd_x1e3}, "mean": mean over levels}.
    """
    ref_levels = laplacian_pyramid(reference, min_resolution)
    cand_levels = laplacian_pyramid(candidate, min_resolution)
    if [lv.shape[1:] for lv in ref_levels] != [lv.shape[1:] for lv in cand_levels]:
        raise ValueError(
            f"image sizes differ: reference {np.shape(reference)}, candidate {np.shape(candidate)}"
        )
    out = {}
    for ref_level, cand_level in zip(ref_levels, cand_levels):
        size = ref_level.shape[1]
        patch = min(7, size)
        da = patches(ref_level, patches_per_image, np.random.default_rng([seed, size, 1]), patch)
        db = patches(cand_level, patches_per_image, np.random.default_rng([seed, size, 1]), patch)
        rng = np.random.default_rng([seed, size, 2])
        mean, std = da.mean(), da.std() + 1e-8
        da, db = (da - mean) / std, (db - mean) / std
        out[int(size)] = 1e3 * sliced_wasserstein(da, db, rng, projections, repeats)
    return {"levels": out, "mean": float(np.mean(list(out.values())))}


def _w1_pooled(side_a, gaps, weights_a, weights_b, owner):
    """W1 per direction of two weighted 1-D samples, from their pooled sort (see `WeightedSWD`)."""
    w = np.concatenate([weights_a, weights_b]).astype(np.float32)[
        owner
    ]  # weight of each sorted value
    wa = np.where(side_a, w, np.float32(0.0))
    fa = np.cumsum(wa, axis=0)[:-1] / wa.sum(0)
    fb = np.cumsum(w - wa, axis=0)[:-1] / (w - wa).sum(0)
    return np.sum(np.abs(fa - fb) * gaps, axis=0)


class WeightedSWD:
    """SWD x1e3 between a reference set and a candidate set, and its resampled values.

    Patches (`patches_per_image` per image and level, positions drawn with
    common random numbers as in `swd`) are normalised by the reference's
    statistics and projected once on `projections` seeded unit directions.
    The 1-D Wasserstein distance along a direction is the area between the
    two empirical CDFs; with the pooled projections sorted once, a resample
    that repeats images only changes the weights summed along that order.
    So `resampled(wa, wb)` costs a few passes over the sorted projections,
    and unit weights give the plain SWD of these patches and directions.
    """

    def __init__(
        self,
        reference,
        candidate,
        *,
        seed: int = 0,
        patches_per_image: int = 16,
        projections: int = 128,
        min_resolution: int = 16,
    ):
        ref_levels = laplacian_pyramid(reference, min_resolution)
        cand_levels = laplacian_pyramid(candidate, min_resolution)
        if [lv.shape[1:] for lv in ref_levels] != [lv.shape[1:] for lv in cand_levels]:
            raise ValueError(
                f"image sizes differ: reference {np.shape(reference)}, "
                f"candidate {np.shape(candidate)}"
            )
        self.n_ref, self.n_cand = len(ref_levels[0]), len(cand_levels[0])
        self.per_image = patches_per_image
        self.levels = []
        for ref_level, cand_level in zip(ref_levels, cand_levels):
            size = ref_level.shape[1]
            patch = min(7, size)
            da = patches(
                ref_level, patches_per_image, np.random.default_rng([seed, size, 1]), patch
            )
            db = patches(
                cand_level, patches_per_image, np.random.default_rng([seed, size, 1]), patch
            )
            mean, std = da.mean(), da.std() + 1e-8
            directions = np.random.default_rng([seed, size, 2]).standard_normal(
                (da.shape[1], projections)
            )
            directions /= np.linalg.norm(directions, axis=0, keepdims=True)
            pooled = np.concatenate([(da - mean) / std, (db - mean) / std]) @ directions
            order = np.argsort(pooled, axis=0, kind="stable")
            gaps = np.diff(np.take_along_axis(pooled, order, 0), axis=0).astype(np.float32)
            image = np.concatenate(
                [
                    np.repeat(np.arange(self.n_ref), patches_per_image),
                    self.n_ref + np.repeat(np.arange(self.n_cand), patches_per_image),
                ]
            )
            owner = image.astype(np.int32)[order]  # image index of each sorted projection
            self.levels.append((int(size), owner < self.n_ref, gaps, owner))

    def _level_values(self, weights_ref, weights_cand):
        return {
            size: 1e3 * float(np.mean(_w1_pooled(side, gaps, weights_ref, weights_cand, owner)))
            for size, side, gaps, owner in self.levels
        }

    def point(self) -> dict:
        """{"levels": {resolution: swd_x1e3}, "mean": mean over levels} with every image once."""
        levels = self._level_values(np.ones(self.n_ref), np.ones(self.n_cand))
        return {"levels": levels, "mean": float(np.mean(list(levels.values())))}

    def resampled(self, weights_ref: np.ndarray, weights_cand: np.ndarray) -> np.ndarray:
        """Mean-over-levels SWD for each resample; weights are per image, [B, n]."""
        out = np.empty(len(weights_ref))
        for b in range(len(weights_ref)):
            out[b] = np.mean(list(self._level_values(weights_ref[b], weights_cand[b]).values()))
        return out
