"""The built-in phantom cohort: seeded synthetic glioma patients from real MNI152 anatomy.

BraTS cannot be downloaded by the project and a new user has none, so the
default dataset is built from the MNI152 2009a symmetric template (T1 and
grey/white-matter probability maps) that nilearn ships inside its wheel: real
anatomy, no download. Each patient gets, from its own seeded generator:

* anatomy: a random affine (scale +-6 %, rotation +-5 degrees, shift) plus a
  smooth random displacement field (a few mm), and the tumour's mass effect;
* a tumour at a random white-matter site: necrotic core (label 1), an
  enhancing rim (label 4, missing in "LGG" patients, whose core is
  non-enhancing) and a surrounding oedema (label 2) that follows white
  matter, with irregular borders, as in BraTS 2017-2021;
* four contrasts with the textbook tissue ordering, drawn from the template
  T1 by per-patient piecewise-linear maps of its CSF/GM/WM levels:
  T1 WM > GM > CSF; T2 CSF > GM > WM; FLAIR GM > WM > CSF with bright oedema;
  T1ce like T1 plus a bright enhancing rim; per-patient tissue-level jitter,
  a smooth multiplicative bias field, Rician noise and, for some patients
  and contrasts, the through-plane blur of thick-slice acquisitions;
* the BraTS grid (240 x 240 x 155, 1 mm, stored LPS like BraTS files), zero
  background (skull-stripped), int16 voxels in arbitrary scanner units.

Patients are written as NIfTI in the BraTS 2021 layout under
``<root>/<HGG|LGG>/<case>/<case>_<modality>.nii.gz`` and read back through
`kgan.volumes` like any real cohort. Each patient folder appears atomically
(written to a temporary folder, then renamed), so an interrupted build never
leaves a half-written patient, and existing patients are reused.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile

import numpy as np
from scipy import ndimage as ndi

#: Bump when the generator changes, so old cohorts on disk are not reused.
PHANTOM_VERSION = 1
GRID_SHAPE = (240, 240, 155)
#: BraTS files are stored LPS: this is their affine (x and y flipped).
BRATS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 239.0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
MODALITIES = ("t1", "t1ce", "t2", "flair")
HGG_FRACTION = 0.75

# Intensity targets relative to white matter on the patient's T1 scale, at
# the template's CSF, GM and WM levels, then for necrosis, enhancing rim and
# oedema. Ordered by textbook appearance of glioblastoma on each contrast.
_CONTRASTS = {
    #         csf   gm    wm    necrosis rim   oedema
    "t1":    (0.30, 0.66, 1.00, 0.38, 0.62, 0.70),
    "t1ce":  (0.30, 0.66, 1.00, 0.36, 1.45, 0.70),
    "t2":    (2.10, 1.30, 0.85, 1.90, 1.25, 1.65),
    "flair": (0.35, 1.15, 0.90, 0.80, 1.30, 1.65),
}


def template_dir() -> str:
    """The folder of nilearn's bundled MNI152 2009a files (part of its wheel)."""
    import nilearn

    return os.path.join(os.path.dirname(nilearn.__file__), "datasets", "data")


@functools.lru_cache(maxsize=1)
def _template() -> dict:
    """Loads the MNI152 T1/GM/WM maps (1 mm, RAS) cropped to the brain, once per process."""
    import nibabel as nib

    maps = {}
    for name in ("t1", "gm", "wm"):
        path = os.path.join(template_dir(), f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: MNI152 template missing (is nilearn >= 0.10 installed?)")
        maps[name] = np.asarray(nib.as_closest_canonical(nib.load(path)).get_fdata(dtype=np.float32)) / 255.0
    gm, wm, t1 = maps["gm"], maps["wm"], maps["t1"]
    brain = ndi.binary_fill_holes(ndi.binary_closing((gm + wm) > 0.3, iterations=3)) & (t1 > 0.02)
    idx = np.argwhere(brain)
    lo, hi = np.maximum(idx.min(0) - 3, 0), np.minimum(idx.max(0) + 4, brain.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    out = {k: np.ascontiguousarray(v[crop]) for k, v in maps.items()}
    out["brain"] = np.ascontiguousarray(brain[crop]).astype(np.float32)
    # Tissue levels of the template T1, used as the control points of the contrast maps.
    deep = ndi.distance_transform_edt(out["brain"] > 0.5) > 22
    out["tumour_sites"] = np.argwhere(deep & (out["wm"] > 0.6))
    out["levels"] = tuple(float(np.median(t1[m])) for m in
                          (brain & (gm + wm < 0.05), gm > 0.9, wm > 0.9))
    return out


def _smooth_field(rng: np.random.Generator, shape: tuple, terms: int, wavelength: float) -> np.ndarray:
    """A smooth random field with unit-ish amplitude: a sum of separable cosines.

    Each term is a product of three 1-D cosines with random wavelengths of
    about `wavelength` voxels and random phases, so the field costs a few
    broadcasts rather than a 3-D interpolation.
    """
    field = np.zeros(shape, np.float32)
    axes = [np.arange(n, dtype=np.float32) for n in shape]
    for _ in range(terms):
        parts = []
        for ax in axes:
            k = 2 * np.pi / (wavelength * rng.uniform(0.6, 1.6))
            parts.append(np.cos(k * ax + rng.uniform(0, 2 * np.pi)).astype(np.float32))
        field += rng.normal() * parts[0][:, None, None] * parts[1][None, :, None] * parts[2][None, None, :]
    return field / np.sqrt(terms / 8.0)


def _rotation(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    angles = np.deg2rad(rng.uniform(-max_degrees, max_degrees, 3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _smoothstep(x: np.ndarray, width: float) -> np.ndarray:
    """1 well inside (x < -width), 0 well outside (x > width), smooth between."""
    t = np.clip(0.5 - x / (2 * width), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def generate_patient(index: int, seed: int = 0) -> dict:
    """Generates one phantom patient in memory.

    Args:
      index: patient number within the cohort.
      seed: cohort seed; (seed, index) fixes every random choice.

    Returns:
      dict with "t1", "t1ce", "t2", "flair" (int16 [240, 240, 155], RAS),
      "seg" (uint8, labels {0, 1, 2, 4}), "grade" ("HGG"/"LGG") and "case_id".
    """
    rng = np.random.default_rng([int(seed), int(index), PHANTOM_VERSION])
    tpl = _template()
    src_shape = np.array(tpl["t1"].shape, np.float64)
    grid = np.array(GRID_SHAPE)

    # Output box: the template's extent (slightly enlarged), centred on the grid.
    scale = rng.uniform(0.94, 1.06, 3)
    box = np.minimum(np.ceil(src_shape * scale.max() * 1.04).astype(int), grid)
    start = (grid - box) // 2
    start[2] = max(grid[2] - box[2] - 2, 0)  # brain top just under the grid's top, like BraTS
    shift = rng.uniform(-4, 4, 3)

    # Coordinates of the box voxels relative to the box centre.
    axes = [np.arange(n, dtype=np.float32) - (n - 1) / 2.0 for n in box]
    matrix = (_rotation(rng, 5.0) / scale[None, :]).astype(np.float32)  # output -> template
    disp = [3.0 * _smooth_field(rng, tuple(box), 6, 60.0) for _ in range(3)]

    # Tumour site: a white-matter voxel well inside the brain, in template coordinates.
    cand = tpl["tumour_sites"]
    centre_src = cand[rng.integers(len(cand))].astype(np.float64)
    hgg = rng.random() < HGG_FRACTION
    radius = rng.uniform(7.0, 14.0) if hgg else rng.uniform(6.0, 11.0)
    # Tumour centre in box coordinates (inverse of the mapping below, ignoring the small warp).
    centre_box = np.linalg.solve(matrix.astype(np.float64), centre_src - (src_shape - 1) / 2.0 - shift)

    # Template coordinates for every box voxel: affine + warp + radial mass effect.
    x = axes[0][:, None, None] + disp[0]
    y = axes[1][None, :, None] + disp[1]
    z = axes[2][None, None, :] + disp[2]
    dx, dy, dz = x - centre_box[0], y - centre_box[1], z - centre_box[2]
    r2 = dx * dx + dy * dy + dz * dz
    squeeze = 1.0 - 0.55 * np.exp(-r2 / (2.0 * (1.6 * radius) ** 2)).astype(np.float32)
    x = centre_box[0] + dx * squeeze
    y = centre_box[1] + dy * squeeze
    z = centre_box[2] + dz * squeeze
    del dx, dy, dz, squeeze
    offset = (src_shape - 1) / 2.0 + shift
    coords = np.empty((3,) + tuple(box), np.float32)
    for i in range(3):
        coords[i] = matrix[i, 0] * x + matrix[i, 1] * y + matrix[i, 2] * z + offset[i]
    del x, y, z
    warped = {k: ndi.map_coordinates(tpl[k], coords, order=1, mode="constant", cval=0.0)
              for k in ("t1", "wm", "brain")}
    del coords
    brain = warped["brain"] > 0.5

    # Tumour regions: distance from the centre, scaled by an irregular radius.
    r = np.sqrt(r2) / radius
    lumps = _smooth_field(rng, tuple(box), 8, 18.0)
    d_core = r * (1.0 + 0.18 * lumps)
    core_edge, rim_edge = (rng.uniform(0.45, 0.7), 1.0) if hgg else (1.0, 1.0)
    d_oed = r * (1.0 + 0.3 * _smooth_field(rng, tuple(box), 8, 25.0))
    oed_edge = rng.uniform(1.7, 2.6)
    inside = warped["brain"]
    p_tumour = _smoothstep(d_core - rim_edge, 0.08) * inside
    p_core = _smoothstep(d_core - core_edge, 0.08) * inside if hgg else p_tumour
    p_rim = np.clip(p_tumour - p_core, 0, 1)
    wm_like = np.clip(warped["wm"] * 1.3 + 0.25, 0, 1)  # oedema spreads along white matter
    p_oed = np.clip(_smoothstep(d_oed - oed_edge, 0.15) * wm_like * inside - p_tumour, 0, 1)
    del r2, r, lumps, d_core, d_oed

    seg_box = np.zeros(tuple(box), np.uint8)
    seg_box[(p_oed > 0.5) & brain] = 2
    seg_box[(p_tumour > 0.5) & brain] = 4 if hgg else 1
    seg_box[(p_core > 0.5) & brain] = 1

    # Contrasts from the template T1 via per-patient tissue levels.
    csf_l, gm_l, wm_l = tpl["levels"]
    t1_rel = warped["t1"] / wm_l
    knots_x = np.array([0.0, csf_l / wm_l, gm_l / wm_l, 1.0, 1.3])
    bias = np.exp(0.08 * _smooth_field(rng, tuple(box), 6, 140.0))
    tex = _smooth_field(rng, tuple(box), 10, 8.0)
    thick = rng.random() < 0.5  # thick-slice (axial) acquisition for T2/FLAIR
    out = {}
    for m in MODALITIES:
        levels = np.array(_CONTRASTS[m]) * rng.uniform(0.93, 1.07, 6)
        csf, gm, wm = levels[:3]
        knots_y = np.array([0.0, csf, gm, wm, wm + 0.3 * (wm - gm)])
        img = np.interp(t1_rel, knots_x, knots_y).astype(np.float32)
        texture = 1.0 + 0.06 * tex
        img = (img * (1 - p_core - p_rim - p_oed) + p_core * levels[3] * texture
               + p_rim * levels[4] * texture + p_oed * levels[5] * texture)
        img *= bias
        sigma = rng.uniform(0.025, 0.045) * wm
        n1 = rng.standard_normal(img.shape, dtype=np.float32)
        n2 = rng.standard_normal(img.shape, dtype=np.float32)
        n1 *= sigma
        n1 += img
        n2 *= sigma
        noisy = np.sqrt(n1 * n1 + n2 * n2)  # Rician magnitude noise
        del n1, n2
        if thick and m in ("t2", "flair"):
            noisy = ndi.gaussian_filter1d(noisy, rng.uniform(0.8, 1.5), axis=2)
        units = rng.uniform(300, 1500)
        vol_box = np.where(brain, np.maximum(np.rint(noisy * units), 1), 0).astype(np.int16)
        full = np.zeros(GRID_SHAPE, np.int16)
        full[tuple(slice(s, s + b) for s, b in zip(start, box))] = vol_box
        out[m] = full
    seg = np.zeros(GRID_SHAPE, np.uint8)
    seg[tuple(slice(s, s + b) for s, b in zip(start, box))] = seg_box
    out["seg"] = seg
    out["grade"] = "HGG" if hgg else "LGG"
    out["case_id"] = case_id(index, seed)
    return out


def case_id(index: int, seed: int = 0) -> str:
    """The patient identifier, e.g. "Phantom_s0_0007"."""
    return f"Phantom_s{int(seed)}_{int(index):04d}"


def _find_patient(root: str, cid: str) -> str | None:
    for grade in ("HGG", "LGG"):
        path = os.path.join(root, grade, cid)
        if os.path.isdir(path):
            return path
    return None


def write_patient(root: str, index: int, seed: int = 0) -> str:
    """Generates one patient and writes it in the BraTS 2021 layout, atomically.

    Reuses the patient if its folder already exists (folders only appear
    complete, by rename).

    Returns:
      The patient folder.
    """
    import nibabel as nib

    cid = case_id(index, seed)
    existing = _find_patient(root, cid)
    if existing:
        return existing
    patient = generate_patient(index, seed)
    final = os.path.join(root, patient["grade"], cid)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{cid}.tmp-", dir=os.path.dirname(final))
    try:
        for name in MODALITIES + ("seg",):
            data = patient[name][::-1, ::-1, :]  # RAS -> LPS storage, like BraTS files
            image = nib.Nifti1Image(np.ascontiguousarray(data), BRATS_AFFINE)
            image.header.set_xyzt_units("mm")
            nib.save(image, os.path.join(tmp, f"{cid}_{name}.nii.gz"))
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if _find_patient(root, cid):  # another process finished it first
            return _find_patient(root, cid)
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def cohort_dir(data_dir: str, seed: int = 0) -> str:
    """Where a cohort's NIfTI files live under a dataset home."""
    return os.path.join(data_dir, "phantom_volumes", f"v{PHANTOM_VERSION}_seed{int(seed)}")


def write_cohort(root: str, patients: int, seed: int = 0) -> list[str]:
    """Writes (or reuses) patients 0..patients-1 in one process. Returns their folders."""
    return [write_patient(root, i, seed) for i in range(patients)]
