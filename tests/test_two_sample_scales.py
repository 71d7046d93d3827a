"""scripts/two_sample_scales.py: its low-pass filters, and the table it writes."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def scales():
    from conftest import load_script

    return load_script("two_sample_scales")


def _checkerboard(size=16):
    yy, xx = np.mgrid[:size, :size]
    return (((yy + xx) % 2) * 2.0 - 1.0).astype("float32")[None, :, :, None]


def test_block_means_remove_detail_finer_than_the_block(scales):
    board = _checkerboard()
    coarse = scales.low_pass(board, "block4")
    assert coarse.shape == board.shape
    np.testing.assert_allclose(coarse, 0.0, atol=1e-6)  # each 4x4 block averages to 0
    ramp = np.repeat(np.arange(4, dtype="float32"), 4)[None, :, None, None] * np.ones(
        (1, 16, 16, 1), "float32"
    )
    np.testing.assert_allclose(scales.low_pass(ramp, "block4"), ramp)  # constant blocks stay


def test_blur_keeps_flat_images_and_softens_edges(scales):
    flat = np.full((2, 16, 16, 1), -1.0, "float32")  # a background-only slice
    np.testing.assert_allclose(scales.low_pass(flat, "blur2"), flat, atol=1e-6)  # edges reflected
    board = _checkerboard()
    for sigma in ("blur1", "blur2"):
        soft = scales.low_pass(board, sigma)
        assert soft.shape == board.shape
        assert float(np.abs(soft).max()) < 0.3  # the finest pattern is nearly gone
    assert float(np.abs(scales.low_pass(board, "blur2")).max()) < float(
        np.abs(scales.low_pass(board, "blur1")).max()
    )
    np.testing.assert_array_equal(scales.low_pass(board, "none"), board)
    with pytest.raises(ValueError, match="unknown filter 'sharpen'"):
        scales.low_pass(board, "sharpen")


def test_table_has_a_cell_per_filter_with_its_floor(scales):
    def est(value):
        return {"value": value, "ci95": [value - 0.02, value + 0.01]}

    filters = {
        name: {"synthetic": est(0.99 - 0.1 * i), "floor": est(0.5)}
        for i, (name, _) in enumerate(scales.FILTERS)
    }
    table = scales.render(
        {
            "rows": {"dcgan:long18k": {"export": "x", "filters": filters}},
            "samples": 1000,
            "repeats": 3,
            "cpu": "AMD EPYC (family 25, model 17), 2 cores",
            "load": "1.0",
        }
    )
    row = next(line for line in table.splitlines() if line.startswith("| dcgan:long18k"))
    assert row.count("(floor 50.0 [48.0, 51.0])") == len(scales.FILTERS)
    assert "99.0 [97.0, 100.0]" in row and "69.0 [67.0, 70.0]" in row
    assert "family 25, model 17" in table


def test_cpu_description_names_family_and_model():
    from kgan import device

    text = device.cpu_description()
    assert text.startswith(device.cpu_model()) and text.endswith(" cores")
    with open("/proc/cpuinfo") as f:
        has_numbers = any(line.startswith("cpu family") for line in f)
    assert ("family" in text) is has_numbers
