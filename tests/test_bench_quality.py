"""scripts/bench_quality.py: the bars it checks and the table it writes, on hand-made summaries."""

from __future__ import annotations

import json

import pytest


def _e(value, lo=None, hi=None):
    return {"value": value, "ci95": None if lo is None else [lo, hi]}


def _summary(
    acc=0.70,
    floor=0.52,
    swd=(30.0, 25.0),
    fid=(3.0, 2.0),
    ms=(0.40, 0.38),
    shares=(25, 25, 25, 25),
    real=(25, 25, 25, 25),
    memorised=False,
    helps=True,
):
    names = ("t1", "t1ce", "t2", "flair")
    return {
        "reference_patients": 24,
        "reference_kind": "evaluation cohort",
        "two_sample_accuracy": {
            "synthetic": _e(acc, acc - 0.05, acc + 0.05),
            "floor": _e(floor, floor - 0.08, floor + 0.08),
        },
        "swd_x1e3": {"synthetic": _e(swd[0]), "floor": _e(swd[1]), "n": 1000},
        "fid": {"synthetic": _e(fid[0]), "floor": _e(fid[1]), "n": 1000},
        "ms_ssim": {"synthetic_pairs": _e(ms[0]), "real_pairs": _e(ms[1])},
        "modality_shares": {
            n: {
                "synthetic": _e(s / 100),
                "real": _e(r / 100),
                "difference_points": s - r,
                "flagged": abs(s - r) > 5,
            }
            for n, s, r in zip(names, shares, real)
        },
        "memorisation_flagged": memorised,
        "augmentation": {
            "real_plus_synthetic_minus_real_only": {
                "balanced_accuracy": _e(0.04, 0.01, 0.07) if helps else _e(0.04, -0.01, 0.09),
                "auc": _e(0.05, -0.01, 0.11),
            },
        },
    }


@pytest.fixture(scope="module")
def bench():
    from conftest import load_script

    return load_script("bench_quality")


def test_a_generator_that_meets_every_bar(bench):
    assert all(met for met, _ in bench.bars(_summary()).values())


def test_each_bar_fails_on_its_own_number(bench):
    cases = {
        "two-sample accuracy <= 75 %": _summary(acc=0.80),
        "swd_x1e3 <= 1.5x floor": _summary(swd=(40.0, 25.0)),  # 1.6x
        "fid <= 2.0x floor": _summary(fid=(4.2, 2.0)),  # 2.1x
        "MS-SSIM within 10 % of real pairs": _summary(
            ms=(0.60, 0.38)
        ),  # mode collapse: too similar
        "every modality share within 5 points": _summary(shares=(4, 30, 40, 26)),
        "memorisation not flagged": _summary(memorised=True),
        "augmentation beats real only beyond the interval": _summary(helps=False),
        # a floor far from chance whose interval also misses 50 %: the test itself is biased
        "real-vs-real floor within 50-65 %": _summary(floor=0.90),
    }
    for bar, summary in cases.items():
        checks = bench.bars(summary)
        assert checks[bar][0] is False, bar
        assert sum(not met for met, _ in checks.values()) == 1, (bar, checks)


def test_a_floor_below_50_misses_the_band_even_when_its_interval_covers_chance(bench):
    met, detail = bench.bars(_summary(floor=0.447))["real-vs-real floor within 50-65 %"]
    assert not met and "interval covers 50 %" in detail


def test_table_has_a_row_per_gan_and_the_bars(bench):
    results = {
        g: {"gan": g, "steps": 1000, "cpu": "AMD EPYC", "summary": _summary()}
        for g in ("began", "dcgan")
    }
    table = bench.markdown(results)
    assert table.index("| DCGAN |") < table.index("| BEGAN |")  # the paper's order
    assert "70.0 [65.0, 75.0] (52.0 [44.0, 60.0])" in table
    assert "| memorisation not flagged | met | met |" in table


def test_levers_table_sets_each_variant_beside_its_plain_gan(bench):
    plain = _summary(acc=0.95, fid=(8.0, 3.0), shares=(25, 16, 25, 34), real=(23, 27, 25, 25))
    plain["fid"]["synthetic"]["ci95"] = [6.0, 10.0]
    filtered = _summary(acc=0.70, fid=(9.0, 3.0), shares=(23, 26, 25, 26), real=(23, 27, 25, 25))
    filtered["fid"]["synthetic"]["ci95"] = [7.0, 11.0]
    results = {
        "dcgan": {"gan": "dcgan", "steps": 3000, "cpu": "AMD EPYC", "summary": plain},
        "dcgan:filter": {
            "gan": "dcgan",
            "lever": "realism filter",
            "steps": 3000,
            "cpu": "AMD EPYC",
            "summary": filtered,
        },
    }
    table = bench.levers_markdown(results)
    row = next(line for line in table.splitlines() if line.startswith("| realism filter |"))
    assert "-> 70.0 [65.0, 75.0] (52.0 [44.0, 60.0]): better" in row  # intervals apart, lower
    assert "8.00 [6.00, 10.00] -> 9.00 [7.00, 11.00]: within intervals" in row
    assert "11.0 -> 1.0" in row  # worst share gap, points
    assert "| realism filter |" not in bench.markdown(results)  # the GAN table keeps plain GANs
    assert bench.levers_markdown({"dcgan": results["dcgan"]}) == ""


def test_gains_from_an_older_evaluation_are_marked_as_such(bench):
    # v3's tumour classifier could not see a gain; a v3 "missed" must not read as a v4 verdict.
    old = {"gan": "dcgan", "steps": 3000, "cpu": "AMD EPYC", "evaluation_version": 3}
    new = {"gan": "wgan", "steps": 3000, "cpu": "AMD EPYC", "evaluation_version": 4}
    results = {
        "dcgan": {**old, "summary": _summary(helps=False)},
        "wgan": {**new, "summary": _summary()},
        "dcgan:long": {**new, "lever": "longer", "summary": _summary()},
    }
    table = bench.markdown(results)
    dcgan_row = next(line for line in table.splitlines() if line.startswith("| DCGAN |"))
    wgan_row = next(line for line in table.splitlines() if line.startswith("| WGAN |"))
    assert dcgan_row.endswith("0.040 [-0.010, 0.090] (one draw, evaluation v3) |")
    assert wgan_row.endswith("0.040 [0.010, 0.070] (one draw) |")
    bar = next(line for line in table.splitlines() if line.startswith("| augmentation beats"))
    assert bar.endswith(
        "| missed (one draw, evaluation v3) | met (bal. acc. 0.040 [0.010, 0.070]; one draw) |"
    )
    levers = bench.levers_markdown(results)
    assert "0.040 [-0.010, 0.090] (one draw, evaluation v3) -> 0.040 [0.010, 0.070] (one" in levers
    # one version throughout (or none recorded): nothing to mark
    for r in results.values():
        r["evaluation_version"] = 4
    assert "evaluation v" not in bench.markdown(results) + bench.levers_markdown(results)


def test_the_augmentation_bar_counts_a_gain_in_auc_alone(bench):
    # The bar: beyond the interval in balanced accuracy *or* AUC.
    summary = _summary(helps=False)
    assert bench.bars(summary)["augmentation beats real only beyond the interval"] == (False, "")
    summary["augmentation"]["real_plus_synthetic_minus_real_only"]["auc"] = _e(0.05, 0.012, 0.09)
    met, detail = bench.bars(summary)["augmentation beats real only beyond the interval"]
    assert met and detail == "AUC 0.050 [0.012, 0.090]"


def test_bars_table_has_a_row_per_run_levers_included(bench):
    results = {
        "dcgan": {"gan": "dcgan", "steps": 3000, "summary": _summary(acc=0.99)},
        "began": {"gan": "began", "steps": 4000, "summary": _summary(memorised=True)},
        "dcgan:long": {
            "gan": "dcgan",
            "tag": "long",
            "lever": "9,000 steps",
            "steps": 9000,
            "summary": _summary(),
        },
    }
    rows = bench.bars_markdown(results).splitlines()
    assert rows[0].startswith("| run | steps | real-vs-real floor within 50-65 % |")
    assert [r.split(" | ")[0] for r in rows[2:]] == ["| DCGAN", "| BEGAN", "| DCGAN: 9,000 steps"]
    assert "| missed (99.0%) |" in rows[2] and "| met (70.0%) |" in rows[4]
    assert rows[3].count("missed") == 1  # BEGAN: memorisation only
    assert bench.bars_markdown({}) == ""


def test_the_augmentation_bar_reads_the_mean_over_draws_where_it_was_measured(bench):
    # One draw of 4 patients is noisy; bench_augmentation.py's mean over draws, measured on the
    # same export, is what the bar reads. Another export under the same key is not mixed in.
    results = {
        "dcgan": {
            "gan": "dcgan",
            "steps": 3000,
            "cpu": "x",
            "export": "e/dcgan/1",
            "summary": _summary(),
        },
        "wgan": {
            "gan": "wgan",
            "steps": 3000,
            "cpu": "x",
            "export": "e/wgan/1",
            "summary": _summary(),
        },
    }
    mean = {
        "balanced_accuracy": _e(0.011, -0.008, 0.029),
        "auc": _e(0.002, -0.03, 0.04),
        "draws": 3,
    }
    augmentation = {
        "rows": {
            "dcgan": {
                "export": "e/dcgan/1",
                "mean_over_draws": {"real_plus_synthetic_minus_real_only": mean},
            },
            "wgan": {
                "export": "e/elsewhere/1",
                "mean_over_draws": {"real_plus_synthetic_minus_real_only": mean},
            },
        }
    }
    view = bench.augmentation_view(results, augmentation)
    assert view["dcgan"] == (
        {"balanced_accuracy": mean["balanced_accuracy"], "auc": mean["auc"]},
        "mean of 3 draws",
    )
    assert view["wgan"][1] == "one draw"
    table = bench.markdown(results, augmentation)
    bar = next(line for line in table.splitlines() if line.startswith("| augmentation beats"))
    assert bar.endswith(
        "| missed (mean of 3 draws) | met (bal. acc. 0.040 [0.010, 0.070]; one draw) |"
    )
    assert "| 0.011 [-0.008, 0.029] (mean of 3 draws) |" in table
    rows = bench.bars_markdown(results, augmentation).splitlines()
    assert rows[2].endswith("| missed (mean of 3 draws) |")


def test_a_near_miss_never_prints_as_the_bar_itself(bench):
    checks = bench.bars(_summary(swd=(33.37, 21.94), shares=(30.01, 25, 25, 20), real=(25,) * 4))
    assert checks["swd_x1e3 <= 1.5x floor"] == (False, "1.52x")
    assert checks["every modality share within 5 points"] == (False, "worst 5.01 points")


def test_stored_exports_keeps_the_runs_whose_export_is_here(tmp_path):
    from kgan.evaluation import sources

    here = tmp_path / "exports" / "dcgan" / "1"
    here.mkdir(parents=True)
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps({"dcgan": {"export": str(here)}, "began": {"export": str(tmp_path / "gone")}})
    )
    lines = []
    assert sources.stored_exports(str(results), log=lines.append) == {"dcgan": str(here)}
    assert lines == ["skipped (export not on this machine): began"]
    assert sources.stored_exports(str(results), ["dcgan"], log=lines.append) == {"dcgan": str(here)}
    lines.clear()
    assert sources.stored_exports(str(results), ["began"], log=lines.append) == {}
    assert lines[-1] == f"no export of {results} is on this machine"
    assert sources.stored_exports(str(results), ["wgan", "dcgan"], log=lines.append) == {}
    assert lines[-1] == f"error: {results} holds no run wgan; it holds dcgan, began"
