"""Reading volumes: layouts, orientation, dtypes, label sets and every bad input.

The helpers at the top write small synthetic cases (48 x 48 x 31) in each
BraTS layout; test_slicing.py and test_records.py import them.
"""

from __future__ import annotations

import gzip
import os
import sys

import nibabel as nib
import numpy as np
import pytest

from kgan import names, volumes

SHAPE = (48, 48, 31)
RAS_AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])
# BraTS-style LPS storage: voxel x runs right-to-left, y anterior-to-posterior.
LPS_AFFINE = np.array([[-1.0, 0, 0, 47.0], [0, -1.0, 0, 47.0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
MODS_2021 = {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair"}
MODS_2023 = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f"}
CONTRAST = {"t1": 1.0, "t1ce": 1.3, "t2": 0.6, "flair": 0.8}


def make_volumes(seed: int = 0, shape=SHAPE, tumour: bool = True, labels=(1, 2, 4)) -> dict:
    """A synthetic head in RAS order: ellipsoid brain, a left-right intensity ramp,
    a bright marker in the left-anterior-superior corner of the brain, and a
    layered tumour (core / rim / oedema labelled with `labels`)."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    c = [(n - 1) / 2 for n in shape]
    brain = ((x - c[0]) / (shape[0] * 0.42)) ** 2 + ((y - c[1]) / (shape[1] * 0.45)) ** 2 + (
        (z - c[2]) / (shape[2] * 0.45)
    ) ** 2 <= 1
    base = 100 + 2.0 * x  # brighter towards the right
    marker = (
        (np.abs(x - shape[0] * 0.3) < 3)
        & (np.abs(y - shape[1] * 0.7) < 3)
        & (np.abs(z - shape[2] * 0.7) < 3)
    )
    out = {}
    for m, k in CONTRAST.items():
        img = k * base + np.where(marker, 300.0, 0.0) + rng.normal(0, 2, shape)
        out[m] = np.where(brain, img, 0.0).astype(np.float32)
    seg = np.zeros(shape, np.uint8)
    if tumour:
        r = np.sqrt((x - shape[0] * 0.6) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2)
        seg[(r < 7) & brain] = labels[1]  # oedema
        seg[(r < 4) & brain] = labels[2]  # enhancing
        seg[(r < 2) & brain] = labels[0]  # core
    out["seg"] = seg
    out["brain"] = brain
    return out


def to_lps(data: np.ndarray) -> np.ndarray:
    """RAS-ordered voxels stored as LPS (what BraTS files do)."""
    return np.ascontiguousarray(data[::-1, ::-1, :])


def save_nifti(path, data, affine=RAS_AFFINE, dtype=None) -> str:
    data = np.asarray(data) if dtype is None else np.asarray(data).astype(dtype)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return str(path)


def write_case(
    root,
    case_id: str,
    layout: str = "brats2021",
    *,
    seed: int = 0,
    lps: bool = True,
    seg: bool = True,
    labels=(1, 2, 4),
    dtype=np.int16,
    shape=SHAPE,
    skip: tuple = (),
) -> dict:
    """Writes one case in a NIfTI layout ("brats2021" or "brats2023"); returns its RAS arrays."""
    vols = make_volumes(seed, shape=shape, labels=labels)
    folder = os.path.join(str(root), case_id)
    os.makedirs(folder, exist_ok=True)
    file_names = MODS_2021 if layout == "brats2021" else MODS_2023
    sep = "_" if layout == "brats2021" else "-"
    affine = LPS_AFFINE.copy() if lps else RAS_AFFINE.copy()
    if lps:
        affine[0, 3] = affine[1, 3] = shape[0] - 1
    store = to_lps if lps else (lambda a: a)
    for m, name in file_names.items():
        if m in skip:
            continue
        save_nifti(
            os.path.join(folder, f"{case_id}{sep}{name}.nii.gz"), store(vols[m]), affine, dtype
        )
    if seg:
        save_nifti(
            os.path.join(folder, f"{case_id}{sep}seg.nii.gz"), store(vols["seg"]), affine, np.uint8
        )
    return vols


def write_mha_case(root, grade: str, case_id: str, *, seed: int = 0, labels=(1, 2, 4)) -> dict:
    """Writes a BraTS 2015/2016 case: HGG|LGG/<case>/VSD.Brain.XX.O.MR_*.<id>/*.mha (LPS, as ITK
    stores)."""
    import SimpleITK as sitk

    vols = make_volumes(seed, labels=labels)
    folder = os.path.join(str(root), grade, case_id)
    kinds = {"t1": "MR_T1", "t1ce": "MR_T1c", "t2": "MR_T2", "flair": "MR_Flair", "seg": "OT"}
    for i, (m, kind) in enumerate(kinds.items()):
        prefix = "VSD.Brain_3more" if m == "seg" else "VSD.Brain"
        sub = os.path.join(folder, f"{prefix}.XX.O.{kind}.{1000 + i}")
        os.makedirs(sub, exist_ok=True)
        data = to_lps(vols[m]).astype(np.uint8 if m == "seg" else np.int16)
        image = sitk.GetImageFromArray(np.transpose(data, (2, 1, 0)))  # ITK arrays are (z, y, x)
        image.SetSpacing((1.0, 1.0, 1.0))
        image.SetOrigin((0.0, 0.0, 0.0))  # identity direction in ITK's LPS frame
        sitk.WriteImage(image, os.path.join(sub, f"{prefix}.XX.O.{kind}.{1000 + i}.mha"))
    return vols


# ---------------------------------------------------------------------------
# Layouts


def test_finds_brats2021_cases_with_grade_and_seg(tmp_path):
    write_case(tmp_path / "HGG", "Brats18_A_1")
    write_case(tmp_path / "LGG", "Brats18_B_2", seg=False)
    cases = volumes.find_cases(str(tmp_path))
    assert [c.case_id for c in cases] == ["Brats18_A_1", "Brats18_B_2"]
    a, b = cases
    assert a.layout == "brats2021" and a.grade == "HGG" and a.seg.endswith("Brats18_A_1_seg.nii.gz")
    assert sorted(a.files) == sorted(names.MODALITIES)
    assert b.grade == "LGG" and b.seg is None


def test_finds_brats2023_cases_and_maps_names(tmp_path):
    write_case(tmp_path, "BraTS-GLI-00000-000", layout="brats2023", labels=(1, 2, 3))
    (case,) = volumes.find_cases(str(tmp_path))
    assert case.layout == "brats2023" and case.grade == "unknown"
    assert case.files["t1ce"].endswith("BraTS-GLI-00000-000-t1c.nii.gz")
    assert case.files["flair"].endswith("-t2f.nii.gz")
    cv = volumes.read_case(case)
    assert cv.shape == SHAPE


def test_reads_brats2015_metaimage_layout(tmp_path):
    vols = write_mha_case(tmp_path, "HGG", "brats_2013_pat0001_1", labels=(1, 2, 4))
    (case,) = volumes.find_cases(str(tmp_path))
    assert case.layout == "brats2015" and case.grade == "HGG"
    assert case.files["t1ce"].endswith(".mha") and "MR_T1c" in case.files["t1ce"]
    assert "MR_T1." in case.files["t1"] and ".OT." in case.seg
    cv = volumes.read_case(case)
    # ITK's LPS storage is undone: the arrays come back in RAS order.
    np.testing.assert_array_equal(cv.images["t1"], vols["t1"].astype(np.int16).astype(np.float32))
    np.testing.assert_array_equal(cv.tumour_mask(), vols["seg"] > 0)


def test_metaimage_without_simpleitk_names_the_extra(tmp_path, monkeypatch):
    write_mha_case(tmp_path, "LGG", "pat2")
    (case,) = volumes.find_cases(str(tmp_path))
    monkeypatch.setitem(sys.modules, "SimpleITK", None)  # import now raises ImportError
    with pytest.raises(volumes.VolumeError, match=r"kgan\[mha\]") as info:
        volumes.read_case(case)
    assert ".mha" in info.value.path


# ---------------------------------------------------------------------------
# Orientation, dtypes, labels


def test_lps_and_ras_files_give_the_same_canonical_array(tmp_path):
    ras = write_case(tmp_path / "ras", "c", lps=False, dtype=np.float32)
    write_case(tmp_path / "lps", "c", lps=True, dtype=np.float32)
    a = volumes.read_case(volumes.find_cases(str(tmp_path / "ras"))[0])
    b = volumes.read_case(volumes.find_cases(str(tmp_path / "lps"))[0])
    for m in names.MODALITIES:
        np.testing.assert_array_equal(a.images[m], b.images[m])
        np.testing.assert_array_equal(a.images[m], ras[m])
    np.testing.assert_array_equal(a.seg, b.seg)
    # The marker sits left (low x), anterior (high y), superior (high z) in RAS.
    idx = np.unravel_index(np.argmax(b.images["t1"]), SHAPE)
    assert idx[0] < SHAPE[0] / 2 and idx[1] > SHAPE[1] / 2 and idx[2] > SHAPE[2] / 2
    assert nib.aff2axcodes(b.affine) == ("R", "A", "S")


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
def test_accepts_dtypes_negative_values_and_singleton_4th_dim(tmp_path, dtype):
    data = make_volumes()["t2"] - 150.0  # negative values inside the brain
    data = data.astype(dtype)
    path = save_nifti(tmp_path / "v.nii.gz", data[..., None])  # (X, Y, Z, 1)
    out, affine = volumes.read_volume(path)
    assert out.dtype == np.float32 and out.shape == SHAPE
    np.testing.assert_allclose(out, data.astype(np.float32))
    assert out.min() < 0


@pytest.mark.parametrize("labels", [(1, 2, 4), (1, 2, 3), (3, 2, 4)])
def test_every_label_set_maps_to_the_same_tumour_mask(tmp_path, labels):
    ref = make_volumes(labels=(1, 2, 4))["seg"] > 0
    seg = make_volumes(labels=labels)["seg"]
    path = save_nifti(tmp_path / "seg.nii.gz", seg, dtype=np.uint8)
    data, _ = volumes.read_volume(path, label=True)
    assert set(np.unique(data)) == {0, *labels}
    np.testing.assert_array_equal(volumes.tumour_mask(data), ref)
    assert ref.sum() > 100


def test_float_label_map_is_accepted_and_bad_labels_rejected(tmp_path):
    seg = make_volumes()["seg"].astype(np.float32)
    data, _ = volumes.read_volume(save_nifti(tmp_path / "s.nii.gz", seg), label=True)
    assert data.dtype == np.uint8
    seg[0, 0, 0] = 7
    with pytest.raises(volumes.VolumeError, match=r"unexpected labels \[7\]"):
        volumes.read_volume(save_nifti(tmp_path / "s7.nii.gz", seg), label=True)


# ---------------------------------------------------------------------------
# Bad input: each names the file and the problem


def _bad(path, match):
    with pytest.raises(volumes.VolumeError, match=match) as info:
        volumes.read_volume(str(path))
    assert str(path) in str(info.value)
    return info.value


def test_truncated_gzip_is_reported(tmp_path):
    good = save_nifti(tmp_path / "good.nii.gz", make_volumes()["t1"])
    raw = open(good, "rb").read()
    bad = tmp_path / "trunc.nii.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    _bad(bad, r"corrupt or truncated")


def test_corrupt_gzip_stream_is_reported(tmp_path):
    bad = tmp_path / "corrupt.nii.gz"
    bad.write_bytes(gzip.compress(b"\x00" * 100)[:10] + b"garbage-garbage-garbage" * 10)
    _bad(bad, r"corrupt|truncated|not a NIfTI|unreadable")


def test_not_nifti_is_reported(tmp_path):
    bad = tmp_path / "notes.nii"
    bad.write_text("this is not an image\n" * 40)
    _bad(bad, r"not a NIfTI|unreadable")


def test_2d_and_5d_volumes_are_rejected(tmp_path):
    _bad(
        save_nifti(tmp_path / "flat.nii.gz", np.ones((48, 48), np.float32)),
        r"expected a 3-D volume, got 2-D",
    )
    _bad(
        save_nifti(tmp_path / "five.nii.gz", np.ones((8, 8, 8, 2, 2), np.float32)),
        r"expected a 3-D volume, got 5-D",
    )


def test_nan_inf_and_all_zero_are_rejected(tmp_path):
    data = make_volumes()["t1"]
    nan = data.copy()
    nan[10, 10, 10] = np.nan
    nan[11, 10, 10] = np.inf
    _bad(save_nifti(tmp_path / "nan.nii.gz", nan), r"2 NaN/Inf voxels")
    _bad(save_nifti(tmp_path / "zero.nii.gz", np.zeros(SHAPE, np.float32)), r"all voxels are zero")


def test_missing_file_is_reported(tmp_path):
    _bad(tmp_path / "nothing.nii.gz", r"does not exist")


def test_missing_modality_names_the_case(tmp_path):
    write_case(tmp_path, "c1", skip=("t2",))
    (case,) = volumes.find_cases(str(tmp_path))
    with pytest.raises(volumes.VolumeError, match=r"case c1: missing modality t2") as info:
        volumes.read_case(case)
    assert info.value.path.endswith("c1")


def test_modalities_on_different_grids_are_rejected(tmp_path):
    write_case(tmp_path, "c1")
    folder = tmp_path / "c1"
    save_nifti(folder / "c1_flair.nii.gz", np.ones((40, 48, 31), np.float32))
    with pytest.raises(volumes.VolumeError, match=r"c1_flair.nii.gz: on a different grid .*shape"):
        volumes.read_case(volumes.find_cases(str(tmp_path))[0])
    shifted = LPS_AFFINE.copy()
    shifted[2, 3] = 5.0
    save_nifti(folder / "c1_flair.nii.gz", np.ones(SHAPE, np.float32), shifted)
    with pytest.raises(
        volumes.VolumeError, match=r"c1_flair.nii.gz: on a different grid .*affines differ"
    ):
        volumes.read_case(volumes.find_cases(str(tmp_path))[0])


def test_empty_missing_and_unreadable_directories(tmp_path, monkeypatch):
    with pytest.raises(volumes.VolumeError, match=r"no BraTS cases found") as info:
        volumes.find_cases(str(tmp_path))
    assert str(tmp_path) in str(info.value)
    with pytest.raises(volumes.VolumeError, match=r"not a directory"):
        volumes.find_cases(str(tmp_path / "absent"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(volumes.VolumeError, match=r"not a directory"):
        volumes.find_cases(str(tmp_path / "file.txt"))
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:  # root reads everything: simulate the permission check instead
        locked.chmod(0)
    else:
        monkeypatch.setattr(volumes.os, "access", lambda p, mode: False)
    try:
        with pytest.raises(volumes.VolumeError, match=r"not readable"):
            volumes.find_cases(str(locked))
    finally:
        locked.chmod(0o755)


def test_volume_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(volumes.VolumeError("/x/y.nii.gz", "broken")))
    assert (
        err.path == "/x/y.nii.gz" and err.problem == "broken" and str(err) == "/x/y.nii.gz: broken"
    )


def test_check_case_reads_headers_only_and_accepts_mixed_orientations(tmp_path):
    write_case(tmp_path, "mixed", lps=True)
    ras = make_volumes()
    save_nifti(tmp_path / "mixed" / "mixed_t2.nii.gz", ras["t2"], RAS_AFFINE.copy(), np.int16)
    (case,) = volumes.find_cases(str(tmp_path))
    volumes.check_case(case)  # same grid once both are seen in RAS
    cv = volumes.read_case(case)
    np.testing.assert_array_equal(cv.images["t2"], ras["t2"].astype(np.int16).astype(np.float32))
    save_nifti(tmp_path / "mixed" / "mixed_t2.nii.gz", np.ones((48, 48, 30), np.float32))
    with pytest.raises(volumes.VolumeError, match=r"mixed_t2.nii.gz: on a different grid"):
        volumes.check_case(case)
    (tmp_path / "mixed" / "mixed_t2.nii.gz").write_text("not an image")
    with pytest.raises(volumes.VolumeError, match=r"mixed_t2.nii.gz: not a readable NIfTI"):
        volumes.check_case(case)


def test_symlinked_case_folders_are_followed_once(tmp_path):
    write_case(tmp_path / "store", "linked")
    top = tmp_path / "top"
    top.mkdir()
    os.symlink(tmp_path / "store" / "linked", top / "linked")
    os.symlink(top, top / "loop")  # a loop must not hang or duplicate cases
    assert [c.case_id for c in volumes.find_cases(str(top))] == ["linked"]
