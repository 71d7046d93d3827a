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
  T1ce like T1 plus a bright enhancing rim and enhancing dura/cortical
  vessels at the brain surface; per-patient tissue-level jitter,
  a smooth multiplicative bias field, fine tissue grain, Rician noise, the
  in-plane blur of resampling and, for 60 % of patients, the stronger
  through-plane blur of thick-slice acquisitions (most for T2/FLAIR);
* the BraTS grid (240 x 240 x 155, 1 mm, stored LPS like BraTS files), zero
  background (skull-stripped), int16 voxels in arbitrary scanner units.

Patients are written as NIfTI in the BraTS 2021 layout under
``<root>/<HGG|LGG>/<case>/<case>_<modality>.nii.gz`` and read back through
`kgan.volumes` like any real cohort. Each patient folder appears atomically
(written to a temporary folder, then renamed), so an interrupted build never
leaves a half-written patient, and existing patients are reused.

``python -m kgan.phantom --figure docs/phantom_vs_real.png`` draws the
comparison with the real cases in ../shared/mri (see `comparison_figure`).
"""

from __future__ import annotations

import functools
import os
import shutil

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage as ndi

from kgan import atomic, names, slicing, volumes

#: Bump when the generator changes, so old cohorts on disk are not reused.
PHANTOM_VERSION = 2
GRID_SHAPE = (240, 240, 155)
#: BraTS files are stored LPS: this is their affine (x and y flipped).
BRATS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 239.0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
HGG_FRACTION = 0.75

# Intensity targets relative to white matter on the patient's T1 scale, at
# the template's CSF, GM and WM levels, then for necrosis, enhancing rim and
# oedema. Ordered by textbook appearance of glioblastoma on each contrast.
_CONTRASTS = {
    #         csf   gm    wm    necrosis rim   oedema
    "t1": (0.18, 0.68, 1.00, 0.30, 0.62, 0.72),
    "t1ce": (0.18, 0.68, 1.00, 0.30, 1.85, 0.72),
    "t2": (3.20, 1.30, 0.90, 2.60, 1.60, 2.00),
    "flair": (0.30, 1.05, 0.90, 0.80, 1.25, 1.45),
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
            raise FileNotFoundError(
                f"{path}: MNI152 template missing (is nilearn >= 0.10 installed?)"
            )
        maps[name] = (
            np.asarray(nib.as_closest_canonical(nib.load(path)).get_fdata(dtype=np.float32)) / 255.0
        )
    gm, wm, t1 = maps["gm"], maps["wm"], maps["t1"]
    brain = ndi.binary_fill_holes(ndi.binary_closing((gm + wm) > 0.3, iterations=3)) & (t1 > 0.02)
    parts, n = ndi.label(brain)
    if n > 1:  # keep the brain, drop specks the closing left outside it
        brain = parts == (np.argmax(np.bincount(parts.ravel())[1:]) + 1)
    idx = np.argwhere(brain)
    lo, hi = np.maximum(idx.min(0) - 3, 0), np.minimum(idx.max(0) + 4, brain.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    out = {k: np.ascontiguousarray(v[crop]) for k, v in maps.items()}
    out["brain"] = np.ascontiguousarray(brain[crop]).astype(np.float32)
    # Tissue levels of the template T1, used as the control points of the contrast maps.
    depth = ndi.distance_transform_edt(out["brain"] > 0.5)
    out["tumour_sites"] = np.argwhere((depth > 22) & (out["wm"] > 0.6))
    # Where dura and cortical vessels enhance on T1ce: a thin shell inside the brain surface.
    out["surface"] = (np.exp(-depth / 1.5) * (depth > 0)).astype(np.float32)
    out["levels"] = tuple(
        float(np.median(t1[m])) for m in (brain & (gm + wm < 0.05), gm > 0.9, wm > 0.9)
    )
    return out


def _smooth_field(
    rng: np.random.Generator, shape: tuple, terms: int, wavelength: float
) -> np.ndarray:
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
        field += (
            rng.normal()
            * parts[0][:, None, None]
            * parts[1][None, :, None]
            * parts[2][None, None, :]
        )
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


def _noise(rng: np.random.Generator, shape: tuple, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to unit standard deviation."""
    field = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
    return field / max(float(field.std()), 1e-6)


def patient_grade(index: int, seed: int = 0) -> str:
    """The patient's grade: "HGG" (enhancing rim) for about `HGG_FRACTION` of patients."""
    rng = np.random.default_rng([int(seed), int(index), PHANTOM_VERSION, 1])
    return "HGG" if rng.random() < HGG_FRACTION else "LGG"


def generate_patient(index: int, seed: int = 0, *, tissue: bool = False) -> dict:
    """Generates one phantom patient in memory.

    Args:
      index: patient number within the cohort.
      seed: cohort seed; (seed, index) fixes every random choice.

    Returns:
      dict with "t1", "t1ce", "t2", "flair" (int16 [240, 240, 155], RAS),
      "seg" (uint8, labels {0, 1, 2, 4}), "grade" ("HGG"/"LGG") and "case_id";
      with `tissue`, also "tissue" (uint8: 0 background, 1 CSF, 2 GM, 3 WM,
      4 tumour or oedema) for checking contrasts.
    """
    rng = np.random.default_rng([int(seed), int(index), PHANTOM_VERSION])
    hgg = patient_grade(index, seed) == "HGG"
    tpl = _template()
    src_shape = np.array(tpl["t1"].shape, np.float64)
    grid = np.array(GRID_SHAPE)

    # Output box: the template's extent (slightly enlarged), centred on the grid.
    scale = rng.uniform(0.94, 1.06, 3)
    box = np.minimum(np.ceil(src_shape * scale.max() * 1.04).astype(int), grid)
    shape = tuple(int(n) for n in box)
    start = (grid - box) // 2
    start[2] = max(grid[2] - box[2] - 2, 0)  # brain top just under the grid's top, like BraTS
    shift = rng.uniform(-4, 4, 3)
    # Vertically, put the top of the brain (4 voxels below the crop's top) 3-7
    # voxels under the grid's top, as in BraTS; the brainstem may be cut.
    top_box = (box[2] - 1) / 2.0 - rng.uniform(3, 7)
    shift[2] = (src_shape[2] - 5) - (src_shape[2] - 1) / 2.0 - top_box / scale[2]

    # Coordinates of the box voxels relative to the box centre.
    axes = [np.arange(n, dtype=np.float32) - (n - 1) / 2.0 for n in box]
    matrix = (_rotation(rng, 5.0) / scale[None, :]).astype(np.float32)  # output -> template
    disp = [3.0 * _smooth_field(rng, shape, 6, 60.0) for _ in range(3)]

    # Tumour site: a deep white-matter voxel of the template.
    cand = tpl["tumour_sites"]
    centre_src = cand[rng.integers(len(cand))].astype(np.float64)
    radius = rng.uniform(7.0, 14.0) if hgg else rng.uniform(6.0, 11.0)
    oed_edge = rng.uniform(1.7, 2.6)
    # Tumour centre in box coordinates (inverse of the mapping below, ignoring the small warp).
    centre_box = np.linalg.solve(
        matrix.astype(np.float64), centre_src - (src_shape - 1) / 2.0 - shift
    )

    # Template coordinates for every box voxel: affine + warp + radial mass effect.
    x = axes[0][:, None, None] + disp[0]
    y = axes[1][None, :, None] + disp[1]
    z = axes[2][None, None, :] + disp[2]
    del disp
    dx, dy, dz = x - centre_box[0], y - centre_box[1], z - centre_box[2]
    r2 = dx * dx + dy * dy + dz * dz
    squeeze = 1.0 - 0.55 * np.exp(-r2 / np.float32(2.0 * (1.6 * radius) ** 2))
    x = centre_box[0] + dx * squeeze
    y = centre_box[1] + dy * squeeze
    z = centre_box[2] + dz * squeeze
    del dx, dy, dz, squeeze
    offset = (src_shape - 1) / 2.0 + shift
    coords = np.empty((3,) + shape, np.float32)
    for i in range(3):
        coords[i] = matrix[i, 0] * x + matrix[i, 1] * y + matrix[i, 2] * z + offset[i]
    del x, y, z
    warped = {
        k: ndi.map_coordinates(tpl[k], coords, order=1, mode="constant", cval=0.0)
        for k in ("t1", "wm", "brain", "surface")
    }
    del coords
    brain = warped["brain"] > 0.5

    # Tumour regions, computed in a sub-box around the centre: distance from
    # the centre over an irregular (noise-modulated, bounded) radius.
    centre_idx = centre_box + (box - 1) / 2.0
    reach = radius * oed_edge * 1.5 + 6
    lo = np.clip(np.floor(centre_idx - reach).astype(int), 0, box)
    hi = np.clip(np.ceil(centre_idx + reach).astype(int) + 1, 0, box)
    sub = tuple(slice(a, b) for a, b in zip(lo, hi))
    sub_shape = tuple(int(b - a) for a, b in zip(lo, hi))
    r = np.sqrt(r2[sub]) / radius
    del r2
    d_core = r * (1.0 + 0.2 * np.tanh(_noise(rng, sub_shape, 4.0)))
    core_edge = min(rng.uniform(0.45, 0.7), 1.0 - 3.0 / radius) if hgg else 1.0  # rim >= 3 mm
    d_oed = r * (1.0 + 0.35 * np.tanh(_noise(rng, sub_shape, 6.0)))
    inside = warped["brain"][sub]
    p_tumour = _smoothstep(d_core - 1.0, 0.08) * inside
    p_core = _smoothstep(d_core - core_edge, 0.08) * inside if hgg else p_tumour
    p_rim = np.clip(p_tumour - p_core, 0, 1)
    wm_like = np.clip(warped["wm"][sub] * 1.3 + 0.25, 0, 1)  # oedema spreads along white matter
    p_oed = np.clip(_smoothstep(d_oed - oed_edge, 0.15) * wm_like * inside - p_tumour, 0, 1)
    tumour_tex = 1.0 + 0.07 * _noise(rng, sub_shape, 1.5)
    del r, d_core, d_oed, wm_like

    seg_box = np.zeros(shape, np.uint8)
    seg_sub = seg_box[sub]
    in_brain = brain[sub]
    seg_sub[(p_oed > 0.5) & in_brain] = 2
    seg_sub[(p_tumour > 0.5) & in_brain] = 4 if hgg else 1
    seg_sub[(p_core > 0.5) & in_brain] = 1

    # Contrasts from the template T1 via per-patient tissue levels.
    csf_l, gm_l, wm_l = tpl["levels"]
    t1_rel = warped["t1"] / wm_l
    knots_x = np.array([0.0, csf_l / wm_l, gm_l / wm_l, 1.0, 1.3])
    bias = np.exp(0.05 * _smooth_field(rng, shape, 6, 140.0))
    vessels = warped["surface"] * np.clip(0.6 + 0.5 * _smooth_field(rng, shape, 6, 14.0), 0, 1.5)
    blur_xy = rng.uniform(0.7, 1.2)
    thick = rng.random() < 0.6  # thick-slice axial acquisitions, upsampled: blurry through-plane
    grain = 1.0 + 0.03 * _noise(rng, shape, 1.5)  # fine tissue heterogeneity
    healthy = 1.0 - p_core - p_rim - p_oed
    out = {}
    for m in names.MODALITIES:
        levels = np.array(_CONTRASTS[m]) * rng.uniform(0.94, 1.06, 6)
        csf, gm, wm = levels[:3]
        knots_y = np.array([0.0, csf, gm, wm, wm + 0.05 * abs(wm - gm)])
        img = np.interp(t1_rel, knots_x, knots_y).astype(np.float32)
        if m == "t1ce":
            img += rng.uniform(0.6, 1.2) * vessels
        img[sub] = img[sub] * healthy + tumour_tex * (
            p_core * levels[3] + p_rim * levels[4] + p_oed * levels[5]
        )
        img *= bias
        img *= grain
        sigma = rng.uniform(0.015, 0.035) * wm
        n1 = rng.standard_normal(shape, dtype=np.float32)
        n2 = rng.standard_normal(shape, dtype=np.float32)
        n1 *= sigma
        n1 += img
        n2 *= sigma
        noisy = np.sqrt(n1 * n1 + n2 * n2)  # Rician magnitude noise
        del n1, n2, img
        if thick:
            blur_z = rng.uniform(1.4, 2.4) if m in ("t2", "flair") else rng.uniform(0.9, 1.6)
        else:
            blur_z = rng.uniform(0.6, 1.1)
        noisy = ndi.gaussian_filter(noisy, (blur_xy, blur_xy, blur_z), truncate=2.5)
        units = rng.uniform(300, 1500)
        vol_box = np.where(brain, np.maximum(np.rint(noisy * units), 1), 0).astype(np.int16)
        full = np.zeros(GRID_SHAPE, np.int16)
        full[tuple(slice(s, s + b) for s, b in zip(start, box))] = vol_box
        out[m] = full
    placed = tuple(slice(s, s + b) for s, b in zip(start, box))
    seg = np.zeros(GRID_SHAPE, np.uint8)
    seg[placed] = seg_box
    out["seg"] = seg
    if tissue:
        # Nearest template tissue level, for voxels clearly of one class.
        levels = np.array([csf_l, gm_l, wm_l]) / wm_l
        nearest = np.argmin(np.abs(t1_rel[..., None] - levels), axis=-1).astype(np.uint8) + 1
        pure = np.min(np.abs(t1_rel[..., None] - levels), axis=-1) < 0.05
        labels = np.where(brain & pure, nearest, 0).astype(np.uint8)
        labels[seg_box > 0] = 4
        out["tissue"] = np.zeros(GRID_SHAPE, np.uint8)
        out["tissue"][placed] = labels
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
    # Not tempfile.mkdtemp: its 0700 folder would hide the patient from collaborators.
    tmp = atomic.temp_dir_beside(final, prefix=f".{cid}.tmp-")
    try:
        for name in names.MODALITIES + ("seg",):
            data = patient[name][::-1, ::-1, :]  # RAS -> LPS storage, like BraTS files
            image = nib.Nifti1Image(np.ascontiguousarray(data), BRATS_AFFINE)
            image.header.set_xyzt_units("mm")
            nib.save(image, os.path.join(tmp, f"{cid}_{name}.nii.gz"))
        atomic.publish_dir(tmp, final)
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


# ---------------------------------------------------------------------------
# The phantom-versus-real comparison figure (docs/phantom_vs_real.png), drawn
# with Pillow only: for each case the four contrasts at the slice with the
# most tumour in the default sagittal range, cut by the same `kgan.slicing`
# code that builds the datasets; below, per contrast, the intensity
# histograms inside the brain after the per-volume robust normalisation, real
# cases in red and phantom patients in blue.

_RED = (214, 60, 50)
_BLUE = (40, 110, 210)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _best_slices(cv: volumes.CaseVolumes, config: slicing.SliceConfig) -> list:
    slices = slicing.slice_case(cv, config)
    best = max(slices, key=lambda s: s.tumour_fraction).slice_index
    return [s for s in slices if s.slice_index == best]


def _histograms(cv: volumes.CaseVolumes, bins: int) -> dict:
    brain = slicing.brain_mask(cv.images)
    out = {}
    for m in names.MODALITIES:
        values = slicing.normalise(cv.images[m], brain)[brain]
        out[m], _ = np.histogram(values, bins=bins, range=(0.0, 1.0), density=True)
    return out


def comparison_figure(
    real_cases: list, phantom_cases: list, out_path: str, *, tile: int = 160, bins: int = 50
) -> str:
    """Draws the comparison figure and writes it atomically as PNG.

    Args:
      real_cases, phantom_cases: `volumes.Case`s to show (each row one case).
      out_path: PNG path.
      tile: pixel side of each slice tile.
      bins: histogram bins over the normalised range [0, 1].

    Returns:
      out_path.
    """
    config = slicing.SliceConfig(size=tile)
    rows, hists = [], {"real": [], "phantom": []}
    for kind, cases in (("real", real_cases), ("phantom", phantom_cases)):
        for case in cases:
            cv = volumes.read_case(case)
            rows.append((kind, case.case_id, _best_slices(cv, config)))
            hists[kind].append(_histograms(cv, bins))
    label_w, pad, head = 190, 6, 28
    hist_h = 150
    width = label_w + 4 * (tile + pad) + pad
    height = head + len(rows) * (tile + pad) + hist_h + 3 * pad + 24
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font, small = _font(15), _font(12)
    for j, m in enumerate(names.MODALITIES):
        draw.text(
            (label_w + j * (tile + pad) + tile // 2 - 15, 6), m.upper(), fill=(0, 0, 0), font=font
        )
    for i, (kind, cid, slices) in enumerate(rows):
        y = head + i * (tile + pad)
        colour = _RED if kind == "real" else _BLUE
        draw.text((6, y + tile // 2 - 20), f"{kind}", fill=colour, font=font)
        draw.text((6, y + tile // 2), cid, fill=(0, 0, 0), font=small)
        draw.text(
            (6, y + tile // 2 + 16),
            f"sagittal {slices[0].slice_index}, tumour {100 * slices[0].tumour_fraction:.0f}%",
            fill=(90, 90, 90),
            font=small,
        )
        by_mod = {s.modality: s.image for s in slices}
        for j, m in enumerate(names.MODALITIES):
            canvas.paste(Image.fromarray(by_mod[m]).convert("RGB"), (label_w + j * (tile + pad), y))
    # Histogram panels.
    y0 = head + len(rows) * (tile + pad) + pad
    draw.text((6, y0 + 10), "intensity in brain", fill=(0, 0, 0), font=small)
    draw.text((6, y0 + 28), "(normalised 0..1)", fill=(0, 0, 0), font=small)
    draw.text((6, y0 + 52), "red: real", fill=_RED, font=small)
    draw.text((6, y0 + 68), "blue: phantom", fill=_BLUE, font=small)
    for j, m in enumerate(names.MODALITIES):
        x0 = label_w + j * (tile + pad)
        draw.rectangle([x0, y0, x0 + tile, y0 + hist_h], outline=(0, 0, 0))
        top = max(max(h[m].max() for h in hists[k]) for k in hists if hists[k])
        for kind in ("phantom", "real"):
            for h in hists[kind]:
                pts = [
                    (x0 + (b + 0.5) * tile / bins, y0 + hist_h - 2 - (hist_h - 6) * v / top)
                    for b, v in enumerate(h[m])
                ]
                draw.line(pts, fill=_RED if kind == "real" else _BLUE, width=2)
        draw.text((x0, y0 + hist_h + 4), "0", fill=(0, 0, 0), font=small)
        draw.text((x0 + tile - 8, y0 + hist_h + 4), "1", fill=(0, 0, 0), font=small)
    with atomic.atomic_path(out_path, suffix=".png") as tmp:
        canvas.save(tmp)
    return out_path


def main(argv=None) -> None:
    """``python -m kgan.phantom --figure docs/phantom_vs_real.png --real ../shared/mri``."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--figure", default="docs/phantom_vs_real.png")
    parser.add_argument("--real", default=os.path.join("..", "shared", "mri"))
    parser.add_argument("--patients", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work",
        default=os.path.join(names.DEFAULT_DATA_DIR, "phantom_volumes"),
        help="where the phantom patients are written (reused)",
    )
    args = parser.parse_args(argv)
    root = os.path.join(args.work, f"v{PHANTOM_VERSION}_seed{args.seed}")
    folders = write_cohort(root, args.patients, args.seed)
    phantom_cases = [volumes.find_cases(f)[0] for f in folders]
    print(comparison_figure(volumes.find_cases(args.real), phantom_cases, args.figure))


if __name__ == "__main__":
    main()
