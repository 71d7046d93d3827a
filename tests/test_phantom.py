"""The phantom cohort: tissue contrasts, tumour labels, determinism, atomic reusable writes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from kgan import names, phantom, slicing, volumes

INDEX, SEED = 1, 0  # an HGG patient (see test_grades_are_seeded)


@pytest.fixture(scope="module")
def patient():
    return phantom.generate_patient(INDEX, SEED, tissue=True)


def _median(volume, mask):
    return float(np.median(volume[mask]))


def test_grades_are_seeded_and_mostly_hgg():
    grades = [phantom.patient_grade(i, 0) for i in range(200)]
    assert grades == [phantom.patient_grade(i, 0) for i in range(200)]
    assert grades[INDEX] == "HGG"
    assert 0.65 < grades.count("HGG") / 200 < 0.85
    assert grades != [phantom.patient_grade(i, 1) for i in range(200)]


def test_grid_dtype_and_background(patient):
    for m in names.MODALITIES:
        v = patient[m]
        assert v.shape == phantom.GRID_SHAPE and v.dtype == np.int16
        assert v[0, 0, 0] == 0 and v.min() == 0 and v.max() > 100
    brain = [patient[m] > 0 for m in names.MODALITIES]
    assert all(np.array_equal(brain[0], b) for b in brain[1:])  # one skull-stripped mask
    size = brain[0].sum()
    assert 1.0e6 < size < 2.2e6  # an adult brain is 1.1-1.6 litres (1 mm voxels)
    per_z = brain[0].sum(axis=(0, 1))
    assert per_z[-1] < 0.01 * per_z.max()  # the top of the head is (almost all) inside the grid


def test_tissue_ordering_per_contrast(patient):
    tissue = patient["tissue"]
    csf, gm, wm = (tissue == 1), (tissue == 2), (tissue == 3)
    assert min(csf.sum(), gm.sum(), wm.sum()) > 10_000
    med = {m: [_median(patient[m], t) for t in (csf, gm, wm)] for m in names.MODALITIES}
    c, g, w = med["t1"]
    assert w > g > c  # T1: WM > GM > CSF
    c, g, w = med["t1ce"]
    assert w > g > c
    c, g, w = med["t2"]
    assert c > g > w  # T2: CSF bright
    c, g, w = med["flair"]
    assert g > w > c  # FLAIR: CSF dark


def test_tumour_labels_and_appearance(patient):
    seg, tissue = patient["seg"], patient["tissue"]
    assert set(np.unique(seg)) == {0, 1, 2, 4}  # BraTS 2017-2021 labels, HGG has an enhancing rim
    core, oedema, rim = seg == 1, seg == 2, seg == 4
    assert core.sum() > 100 and rim.sum() > 100 and oedema.sum() > rim.sum()
    wm = tissue == 3
    flair, t1, t1ce, t2 = (patient[m] for m in ("flair", "t1", "t1ce", "t2"))
    assert _median(flair, oedema) > 1.2 * _median(flair, wm)  # FLAIR: oedema bright
    assert _median(t1ce, rim) > 1.3 * _median(t1ce, wm)  # T1ce: enhancing rim
    # Enhancement is a T1ce effect: relative to WM the rim is much brighter than on T1.
    assert _median(t1ce, rim) / _median(t1ce, wm) > 1.4 * _median(t1, rim) / _median(t1, wm)
    assert _median(t1ce, core) < _median(t1ce, wm)  # necrotic core dark
    assert _median(t2, core) > _median(t2, wm)  # and fluid-bright on T2
    # The tumour sits inside the brain.
    assert np.all(patient["t1"][seg > 0] > 0)


def test_written_patient_reads_back_identically_and_is_reused(patient, tmp_path_factory):
    # The session-wide folder that test_records' phantom build also uses: the patient written here
    # is reused there (one generation fewer on a slow machine).
    root = phantom.cohort_dir(str(tmp_path_factory.getbasetemp() / "shared_phantom_records"), SEED)
    # A leftover of an interrupted write is ignored by the reader and by the writer.
    os.makedirs(
        os.path.join(root, "HGG", f".{phantom.case_id(INDEX, SEED)}.tmp-dead"), exist_ok=True
    )
    folder = phantom.write_patient(root, INDEX, SEED)
    assert folder == os.path.join(root, "HGG", phantom.case_id(INDEX, SEED))
    (case,) = volumes.find_cases(root)
    assert case.case_id == "Phantom_s0_0001" and case.grade == "HGG" and case.layout == "brats2021"
    cv = volumes.read_case(case)
    for m in names.MODALITIES:  # regenerated from the seed, stored LPS, read back RAS: identical
        np.testing.assert_array_equal(cv.images[m], patient[m].astype(np.float32))
    np.testing.assert_array_equal(cv.seg, patient["seg"])
    stamp = os.path.getmtime(os.path.join(folder, "Phantom_s0_0001_t1.nii.gz"))
    assert phantom.write_patient(root, INDEX, SEED) == folder  # reused, not rewritten
    assert os.path.getmtime(os.path.join(folder, "Phantom_s0_0001_t1.nii.gz")) == stamp
    out = slicing.slice_case(cv, slicing.SliceConfig(size=32))
    assert len(out) == 4 * 70 and max(s.tumour_fraction for s in out) > 0.01


@pytest.mark.parametrize(
    "mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]
)
def test_patient_folder_and_files_get_ordinary_permissions(
    tmp_path, monkeypatch, mask, file_mode, dir_mode
):
    # A tiny stand-in patient: the permissions come from write_patient, not from the anatomy.
    tiny = {m: np.full((4, 4, 3), 7, np.int16) for m in names.MODALITIES}
    tiny.update(seg=np.zeros((4, 4, 3), np.uint8), grade="LGG", case_id=phantom.case_id(0, 5))
    monkeypatch.setattr(phantom, "generate_patient", lambda index, seed=0, **_: tiny)
    old = os.umask(mask)
    try:
        folder = phantom.write_patient(str(tmp_path), 0, 5)
    finally:
        os.umask(old)
    assert os.stat(folder).st_mode & 0o777 == dir_mode  # tempfile.mkdtemp made it 0700
    files = sorted(os.listdir(folder))
    assert len(files) == 5 and not [n for n in os.listdir(os.path.dirname(folder)) if ".tmp-" in n]
    assert {os.stat(os.path.join(folder, n)).st_mode & 0o777 for n in files} == {file_mode}
