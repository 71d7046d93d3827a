"""scripts/bench_augmentation.py: merging runs and the table it writes, on hand-made results."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def bench():
    from conftest import load_script

    return load_script("bench_augmentation")


def _e(value, lo, hi):
    return {"value": value, "ci95": [lo, hi]}


def _row(gain_lo, label_source="the generator's tumour condition"):
    return {
        "export": "exports/x/1",
        "label_source": label_source,
        "synthetic_tumour_share": 0.5,
        "per_draw_balanced_accuracy": [
            {"real_only": 0.55, "real_plus_synthetic": 0.60, "synthetic_only": 0.58}
        ],
        "mean_over_draws": {
            "real_plus_synthetic_minus_real_only": {
                "balanced_accuracy": _e(0.05, gain_lo, 0.08),
                "auc": _e(0.07, 0.04, 0.10),
            },
            "synthetic_only_minus_real_only": {
                "balanced_accuracy": _e(0.03, -0.01, 0.06),
                "auc": _e(0.02, -0.02, 0.05),
            },
        },
    }


def _result(rows):
    return {
        "draws": [["p1", "p2", "p3", "p4"]],
        "samples": 1000,
        "seed": 0,
        "min_steps": 600,
        "classifier": "kgan.evaluation.cnn.lesion_classifier",
        "rows": rows,
        "ceiling_minus_real_only": {
            "balanced_accuracy": _e(0.08, 0.04, 0.11),
            "auc": _e(0.10, 0.06, 0.15),
        },
        "train_patients": 16,
        "test_patients": 24,
        "cpu": "test CPU",
        "load": "1.0",
    }


def test_render_marks_gains_beyond_the_interval_and_label_source(bench):
    table = bench.render(
        _result({"cond": _row(0.02), "plain": _row(-0.01, "the ceiling classifier's calls")})
    )
    lines = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    assert lines["| cond"].endswith("| balanced_accuracy, auc |")
    assert "| condition |" in lines["| cond"]
    assert lines["| plain"].endswith("| auc |")  # balanced accuracy's interval reaches below 0
    assert "| ceiling's calls |" in lines["| plain"]
    assert "+0.080 [+0.040, +0.110]" in table  # the ceiling's room to gain


def test_merged_keeps_earlier_rows_only_under_the_same_settings(bench, tmp_path):
    path = tmp_path / "augmentation.json"
    path.write_text(json.dumps(_result({"old": _row(0.01), "both": _row(0.01)})))
    merged = bench._merged(_result({"both": _row(0.03), "new": _row(0.02)}), str(path))
    assert set(merged["rows"]) == {"old", "both", "new"}
    both = merged["rows"]["both"]["mean_over_draws"]["real_plus_synthetic_minus_real_only"]
    assert both["balanced_accuracy"]["ci95"][0] == 0.03  # the new run wins
    other = _result({"new": _row(0.02)})
    other["draws"] = [["p5", "p6", "p7", "p8"]]  # other patients: earlier rows do not compare
    assert set(bench._merged(other, str(path))["rows"]) == {"new"}
    assert set(
        bench._merged(_result({"new": _row(0.02)}), str(tmp_path / "none.json"))["rows"]
    ) == {"new"}
