"""Turning a case's canonical volumes into labelled, normalised 2-D slices.

The same function slices real BraTS cases and phantom patients, so the two
datasets differ only in anatomy, never in preprocessing:

1. brain mask: voxels that are non-zero in any modality (BraTS volumes are
   skull-stripped with a zero background);
2. intensity: per volume and modality, the robust percentiles (0.5, 99.5) of
   the brain voxels map to [0, 1] (clipped); the background is 0;
3. slices: the plane's axis in the RAS frame, a range given as fractions of
   that axis (the paper's sagittal 80-149 of 240 is [1/3, 5/8)), slices with
   less brain than `min_brain_fraction` of the volume's fullest slice skipped;
4. crop to the brain's bounding box over the chosen slices (one box per
   volume, so every slice of a patient has the same scale), then resize to
   `size` x `size`: pad to a square first (keeps the aspect ratio, default)
   or stretch (the paper);
5. display orientation: superior up; anterior left on sagittal slices;
   radiological convention (patient's right on the left) on coronal and axial.

Labels per slice: modality, plane, slice index (in the canonical frame),
case id, tumour fraction (tumour pixels / brain pixels, from the label map),
grade and source.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from kgan import names
from kgan import volumes as vol

_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}
#: Default slice ranges as fractions [start, stop) of the plane's axis. The
#: sagittal one is the paper's 80-149 of 240; the others cover the central
#: part of the brain where gliomas mostly sit.
DEFAULT_RANGES = {
    "sagittal": (80 / 240, 150 / 240),
    "coronal": (0.30, 0.70),
    "axial": (0.35, 0.75),
}
SIZES = (64, 128, 256)


@dataclasses.dataclass(frozen=True)
class SliceConfig:
    """How to cut slices from a volume.

    Attributes:
      plane: "sagittal", "coronal" or "axial".
      size: output side in pixels (64 as in the paper, 128 or 256; any >= 8 works).
      slice_range: (start, stop) fractions of the plane axis; None for the
        plane's default in `DEFAULT_RANGES`.
      resize: "pad" keeps the aspect ratio by padding to a square; "stretch"
        resizes the brain box straight to a square (the paper's way).
      min_brain_fraction: skip slices whose brain area is below this fraction
        of the largest brain area among all slices along the plane.
      percentiles: robust intensity range inside the brain.
      margin: voxels kept around the brain bounding box.
    """

    plane: str = "sagittal"
    size: int = 64
    slice_range: tuple | None = None
    resize: str = "pad"
    min_brain_fraction: float = 0.25
    percentiles: tuple = (0.5, 99.5)
    margin: int = 2

    def __post_init__(self):
        if self.plane not in names.PLANES:
            raise ValueError(f"unknown plane {self.plane!r}; choose from {names.PLANES}")
        if self.resize not in ("pad", "stretch"):
            raise ValueError(f"resize must be 'pad' or 'stretch', got {self.resize!r}")
        if int(self.size) < 8:
            raise ValueError(f"size must be >= 8, got {self.size}")
        start, stop = self.fractions
        if not 0.0 <= start < stop <= 1.0:
            raise ValueError(
                f"slice_range must satisfy 0 <= start < stop <= 1, got {self.slice_range}"
            )
        lo, hi = self.percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError(
                f"percentiles must satisfy 0 <= lo < hi <= 100, got {self.percentiles}"
            )

    @property
    def fractions(self) -> tuple:
        return (
            tuple(self.slice_range) if self.slice_range is not None else DEFAULT_RANGES[self.plane]
        )


@dataclasses.dataclass
class Slice:
    """One labelled 2-D slice, ready for `kgan.schema.encode_example`."""

    image: np.ndarray  # uint8 [size, size]
    modality: str
    plane: str
    slice_index: int
    case_id: str
    tumour_fraction: float
    grade: str
    #: Where the slice came from: the case's file layout ("brats2021", ...); the phantom
    #: builder writes "phantom" instead.
    source: str


def slice_indices(n: int, fractions: tuple) -> range:
    """Slice numbers [round(start*n), round(stop*n)) along an axis of length n.

    On a 240-voxel axis the sagittal default gives 80..149, as in the paper.
    """
    start = int(round(fractions[0] * n))
    stop = max(start + 1, int(round(fractions[1] * n)))
    return range(start, min(stop, n))


def brain_mask(images: dict) -> np.ndarray:
    """Voxels that are non-zero in any modality (skull-stripped background is 0)."""
    mask = None
    for data in images.values():
        nz = data != 0
        mask = nz if mask is None else (mask | nz)
    return mask


def normalise(data: np.ndarray, brain: np.ndarray, percentiles=(0.5, 99.5)) -> np.ndarray:
    """Maps a volume's robust brain intensity range to [0, 1]; background to 0.

    Args:
      data: float32 volume.
      brain: boolean mask of the same shape (must hold at least one voxel).
      percentiles: (low, high) percentiles of the brain voxels mapped to 0 and 1.

    Returns:
      float32 volume in [0, 1].
    """
    values = data[brain]
    lo, hi = np.percentile(values, percentiles)
    if hi <= lo:  # constant brain: map it to mid-grey rather than dividing by zero
        out = np.where(brain, 0.5, 0.0).astype(np.float32)
        return out
    out = (data - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    np.clip(out, 0.0, 1.0, out=out)
    out[~brain] = 0.0
    return out


def _take(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """A slice in display orientation (see module docstring)."""
    return _orient(np.take(volume, index, axis=axis))


def _orient(plane: np.ndarray) -> np.ndarray:
    # The two remaining axes stay in RAS order (e.g. sagittal: Y=anterior,
    # Z=superior). Reversing both and transposing puts superior (or anterior,
    # for axial) at the top and anterior (or the patient's right) on the left.
    return plane[::-1, ::-1].T


def _bbox(mask2d: np.ndarray, margin: int) -> tuple:
    rows = np.flatnonzero(mask2d.any(axis=1))
    cols = np.flatnonzero(mask2d.any(axis=0))
    r0, r1 = max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, mask2d.shape[0])
    c0, c1 = max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, mask2d.shape[1])
    return r0, r1, c0, c1


def fit_square(image: np.ndarray, size: int, resize: str = "pad") -> np.ndarray:
    """Resizes a float image (any shape) to size x size.

    "pad": zero-pads the shorter side (centred) to a square first, keeping
    the aspect ratio; "stretch": resizes each side independently. Lanczos
    resampling (antialiased when shrinking); the result is clipped to the
    input's range so ringing cannot overshoot.
    """
    image = np.asarray(image, np.float32)
    if resize == "pad":
        h, w = image.shape
        side = max(h, w)
        padded = np.zeros((side, side), np.float32)
        top, left = (side - h) // 2, (side - w) // 2
        padded[top : top + h, left : left + w] = image
        image = padded
    if image.shape != (size, size):
        lo, hi = float(image.min()), float(image.max())
        out = Image.fromarray(image, mode="F").resize((size, size), Image.Resampling.LANCZOS)
        image = np.clip(np.asarray(out, np.float32), lo, hi)
    return image


def to_uint8(unit: np.ndarray) -> np.ndarray:
    """[0, 1] floats to stored pixels 0..255 (rounded)."""
    return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)


def slice_case(
    case_volumes: vol.CaseVolumes, config: SliceConfig = SliceConfig(), modalities=names.MODALITIES
) -> list[Slice]:
    """Cuts one case into labelled slices of every modality.

    The same slice numbers are taken from every modality (they share the
    grid), so slice k of T1 and slice k of FLAIR show the same anatomy.

    Returns:
      Slices ordered by slice index, then modality. Empty if no slice in the
      range has enough brain.
    """
    images = {m: case_volumes.images[m] for m in modalities}
    brain = brain_mask(images)
    axis = _AXIS[config.plane]
    n = brain.shape[axis]
    other = tuple(a for a in range(3) if a != axis)
    area = brain.sum(axis=other)
    if area.max() == 0:
        return []
    tumour = case_volumes.tumour_mask()
    t_area = tumour.sum(axis=other) if tumour is not None else None
    keep = [
        i
        for i in slice_indices(n, config.fractions)
        if area[i] > 0 and area[i] >= config.min_brain_fraction * area.max()
    ]
    if not keep:
        return []
    sub = np.take(brain, keep, axis=axis).any(axis=axis)  # brain footprint over the kept slices
    r0, r1, c0, c1 = _bbox(_orient(sub), config.margin)
    norm = {m: normalise(images[m], brain, config.percentiles) for m in modalities}
    case = case_volumes.case
    out = []
    for i in keep:
        fraction = float(t_area[i]) / float(area[i]) if t_area is not None else 0.0
        for m in modalities:
            crop = _take(norm[m], axis, i)[r0:r1, c0:c1]
            pixels = to_uint8(fit_square(crop, config.size, config.resize))
            out.append(
                Slice(
                    pixels, m, config.plane, int(i), case.case_id, fraction, case.grade, case.layout
                )
            )
    return out


def slice_case_file(case: vol.Case, config: SliceConfig) -> list[Slice]:
    """Reads and slices one case (the unit of work of the parallel build)."""
    return slice_case(vol.read_case(case), config)
