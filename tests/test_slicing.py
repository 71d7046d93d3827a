"""Slicing: ranges, orientation, crop/resize, normalisation, labels; real cases when present."""

from __future__ import annotations

import numpy as np
import pytest
from test_volumes import make_volumes, write_case

from kgan import names, slicing, volumes


def _case_volumes(vols: dict, seg: bool = True, case_id: str = "c") -> volumes.CaseVolumes:
    case = volumes.Case(
        case_id,
        "/nowhere",
        {m: f"/nowhere/{m}" for m in names.MODALITIES},
        "/nowhere/seg" if seg else None,
        "HGG",
        "brats2021",
    )
    return volumes.CaseVolumes(
        case, {m: vols[m] for m in names.MODALITIES}, vols["seg"] if seg else None, np.eye(4)
    )


def test_paper_range_is_80_to_149_of_240_and_scales_with_the_grid():
    assert list(slicing.slice_indices(240, slicing.DEFAULT_RANGES["sagittal"])) == list(
        range(80, 150)
    )
    assert list(slicing.slice_indices(120, slicing.DEFAULT_RANGES["sagittal"])) == list(
        range(40, 75)
    )
    assert list(slicing.slice_indices(48, (0.0, 1.0))) == list(range(48))
    assert list(slicing.slice_indices(10, (0.5, 0.51))) == [5]  # never empty


def test_config_validation():
    with pytest.raises(ValueError, match="unknown plane"):
        slicing.SliceConfig(plane="oblique")
    with pytest.raises(ValueError, match="resize"):
        slicing.SliceConfig(resize="crop")
    with pytest.raises(ValueError, match="slice_range"):
        slicing.SliceConfig(slice_range=(0.6, 0.4))


def test_normalise_maps_percentiles_to_unit_range_and_zeroes_background():
    data = np.zeros((4, 4, 4), np.float32)
    brain = np.zeros_like(data, bool)
    brain[1:3, 1:3, 1:3] = True  # 8 voxels
    data[brain] = np.arange(8, dtype=np.float32) * 10 - 20  # -20..50, negative values included
    data[0, 0, 0] = 999  # outside the brain: ignored, then zeroed
    out = slicing.normalise(data, brain, (0, 100))
    np.testing.assert_allclose(out[brain], (np.arange(8) * 10) / 70.0, atol=1e-6)
    assert out[0, 0, 0] == 0.0
    # Robust percentiles: the 50th..100th map to 0..1 and below is clipped to 0.
    half = slicing.normalise(data, brain, (50, 100))
    lo = np.percentile(data[brain], 50)
    np.testing.assert_allclose(
        half[brain], np.clip((data[brain] - lo) / (50 - lo), 0, 1), atol=1e-6
    )


def test_fit_square_pads_keeping_aspect_or_stretches():
    img = np.ones((10, 20), np.float32)
    padded = slicing.fit_square(img, 20, "pad")
    assert padded.shape == (20, 20)
    assert padded[:5].max() == 0 and padded[15:].max() == 0 and padded[5:15].min() == 1
    stretched = slicing.fit_square(img, 16, "stretch")
    np.testing.assert_allclose(stretched, 1.0, atol=1e-5)
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    small = slicing.fit_square(ramp, 8)
    assert small.min() >= 0 and small.max() <= 1 and np.all(np.diff(small[4]) > 0)


def test_display_orientation_superior_up_anterior_left():
    vol = np.zeros((5, 6, 7), np.float32)
    vol[2, 5, 6] = 1  # most anterior (y max), most superior (z max)
    sag = slicing._take(vol, 0, 2)
    assert sag.shape == (7, 6) and sag[0, 0] == 1  # top-left
    vol = np.zeros((5, 6, 7), np.float32)
    vol[4, 3, 6] = 1  # patient's right (x max), superior
    cor = slicing._take(vol, 1, 3)
    assert cor.shape == (7, 5) and cor[0, 0] == 1  # radiological: right on the left, superior up
    vol = np.zeros((5, 6, 7), np.float32)
    vol[4, 5, 3] = 1  # right, anterior
    ax = slicing._take(vol, 2, 3)
    assert ax.shape == (6, 5) and ax[0, 0] == 1


def test_tumour_fraction_is_tumour_over_brain_pixels_per_slice():
    vols = {m: np.zeros((6, 8, 8), np.float32) for m in names.MODALITIES}
    for m in names.MODALITIES:
        vols[m][:, 2:6, 2:6] = (
            5.0 + np.arange(4)[None, :, None]
        )  # 16 brain pixels per sagittal slice
    seg = np.zeros((6, 8, 8), np.uint8)
    seg[3, 2:4, 2:4] = 4  # 4 of 16 pixels in slice 3
    seg[4, 2, 2] = 2  # 1 of 16 in slice 4
    vols["seg"] = seg
    out = slicing.slice_case(
        _case_volumes(vols), slicing.SliceConfig(size=8, slice_range=(0.0, 1.0))
    )
    fractions = {s.slice_index: s.tumour_fraction for s in out}
    assert fractions == {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.25, 4: 1 / 16, 5: 0.0}
    assert len(out) == 6 * 4
    assert {s.grade for s in out} == {"HGG"} and {s.source for s in out} == {"brats2021"}


def test_slices_with_too_little_brain_are_skipped():
    vols = {m: np.zeros((4, 10, 10), np.float32) for m in names.MODALITIES}
    for m in names.MODALITIES:
        vols[m][0, 1:9, 1:9] = 1.0  # 64 px
        vols[m][1, 4:6, 4:6] = 2.0  # 4 px: below 25% of 64
        vols[m][2, 2:8, 2:8] = 3.0  # 36 px
    vols["seg"] = np.zeros((4, 10, 10), np.uint8)
    out = slicing.slice_case(
        _case_volumes(vols), slicing.SliceConfig(size=8, slice_range=(0.0, 1.0))
    )
    assert sorted({s.slice_index for s in out}) == [0, 2]


def test_synthetic_case_slices_are_aligned_uint8_and_labelled(tmp_path):
    write_case(tmp_path, "case7")
    cv = volumes.read_case(volumes.find_cases(str(tmp_path))[0])
    for plane in names.PLANES:
        out = slicing.slice_case(
            cv, slicing.SliceConfig(plane=plane, size=32, slice_range=(0.3, 0.7))
        )
        assert out and all(s.image.dtype == np.uint8 and s.image.shape == (32, 32) for s in out)
        by_index = {}
        for s in out:
            by_index.setdefault(s.slice_index, []).append(s)
        for group in by_index.values():
            assert [s.modality for s in group] == list(names.MODALITIES)
            masks = [s.image > 0 for s in group]
            for m in masks[1:]:  # same brain footprint in every modality
                assert (m & masks[0]).sum() / max((m | masks[0]).sum(), 1) > 0.9
        assert {s.case_id for s in out} == {"case7"} and {s.plane for s in out} == {plane}
        assert max(s.tumour_fraction for s in out) > 0


def test_lps_and_ras_cases_give_identical_slices(tmp_path):
    write_case(tmp_path / "a", "c", lps=True)
    write_case(tmp_path / "b", "c", lps=False)
    config = slicing.SliceConfig(plane="sagittal", size=16, slice_range=(0.2, 0.8))
    a = slicing.slice_case_file(volumes.find_cases(str(tmp_path / "a"))[0], config)
    b = slicing.slice_case_file(volumes.find_cases(str(tmp_path / "b"))[0], config)
    assert len(a) == len(b) > 0
    for sa, sb in zip(a, b):
        assert (sa.slice_index, sa.modality) == (sb.slice_index, sb.modality)
        np.testing.assert_array_equal(sa.image, sb.image)


def test_pad_keeps_aspect_stretch_fills():
    vols = make_volumes()
    cv = _case_volumes(vols)
    pad = slicing.slice_case(
        cv, slicing.SliceConfig(plane="sagittal", size=32, slice_range=(0.5, 0.52))
    )
    stretch = slicing.slice_case(
        cv,
        slicing.SliceConfig(plane="sagittal", size=32, resize="stretch", slice_range=(0.5, 0.52)),
    )
    # The sagittal brain box is 48 (y) wide and 31 (z) tall: padding leaves empty rows.
    assert pad[0].image[:4].max() == 0 and pad[0].image[-4:].max() == 0
    assert stretch[0].image[:, 16].astype(bool).sum() > pad[0].image[:, 16].astype(bool).sum()


# ---------------------------------------------------------------------------
# Real cases (../shared/mri)


def test_real_cases_slice_into_aligned_non_empty_modalities(shared_mri):
    cases = volumes.find_cases(str(shared_mri))
    assert len(cases) >= 1
    for case in cases:
        cv = volumes.read_case(case)
        assert cv.shape == (240, 240, 155)
        out = slicing.slice_case(cv, slicing.SliceConfig(size=64))
        indices = sorted({s.slice_index for s in out})
        assert indices and indices[0] >= 80 and indices[-1] <= 149
        tumour = cv.tumour_mask()
        for i in indices:
            group = [s for s in out if s.slice_index == i]
            assert [s.modality for s in group] == list(names.MODALITIES)
            for s in group:
                assert s.image.max() > 100 and (s.image > 0).mean() > 0.2  # non-empty slice
            masks = [s.image > 0 for s in group]
            for m in masks[1:]:
                assert (m & masks[0]).sum() / (m | masks[0]).sum() > 0.9  # aligned
            has_tumour = tumour[i].any()
            assert (group[0].tumour_fraction > 0) == bool(has_tumour)
        assert max(s.tumour_fraction for s in out) > 0.01
