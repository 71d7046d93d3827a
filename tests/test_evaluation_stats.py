"""The statistics behind the evaluation report: intervals, disjoint patients, floors, plots."""

import numpy as np
import pytest
from scipy import stats
from test_evaluate import _tiny_keras_generator, toy_slice, write_toy_dataset

from kgan import names
from kgan.evaluation import (
    bootstrap,
    cohort,
    coverage,
    figures,
    frechet,
    intensity,
    report,
    swd,
    two_sample,
)


# ------------------------------------------------------------------ bootstrap
def test_cluster_weights_resample_whole_patients():
    clusters = np.array(["a", "a", "a", "b", "b", "c"])
    w = bootstrap.cluster_weights(clusters, 50, np.random.default_rng(0))
    assert w.shape == (50, 6)
    # all slices of one patient share a multiplicity, and 3 patients are drawn each time
    assert np.all(w[:, 0] == w[:, 1]) and np.all(w[:, 1] == w[:, 2]) and np.all(w[:, 3] == w[:, 4])
    assert np.all(w[:, [0, 3, 5]].sum(1) == 3)
    again = bootstrap.cluster_weights(clusters, 50, np.random.default_rng(0))
    assert np.array_equal(w, again)  # seeded


def test_patient_bootstrap_interval_covers_the_true_mean_and_slice_bootstrap_does_not():
    """Hand-made cohort: each patient has its own level (sd 1) and 30 noisy slices (sd 0.2).

    The population mean is 0. Over 200 cohorts of 15 patients the patient-level
    interval should contain 0 about 95 % of the time; resampling slices as if
    they were independent ignores the patient level and covers far less often.
    """
    rng = np.random.default_rng(42)
    patients, slices, trials = 15, 30, 200
    hit_patient = hit_slice = 0
    clusters = np.repeat(np.arange(patients), slices)
    for _ in range(trials):
        values = np.repeat(rng.normal(0, 1, patients), slices) + rng.normal(
            0, 0.2, patients * slices
        )
        w = bootstrap.cluster_weights(clusters, 300, rng)
        lo, hi = bootstrap.interval(bootstrap.weighted_mean(values, w))
        hit_patient += lo <= 0 <= hi
        w = bootstrap.cluster_weights(np.arange(len(values)), 300, rng)
        lo, hi = bootstrap.interval(bootstrap.weighted_mean(values, w))
        hit_slice += lo <= 0 <= hi
    assert 0.85 <= hit_patient / trials <= 0.99
    assert hit_slice / trials < 0.5


def test_weighted_auc_hand_computed_with_ties_and_weights():
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    positive = np.array([True, True, False, False])
    # pairs (pos, neg): (0.9,0.5)=1, (0.9,0.1)=1, (0.5,0.5)=0.5, (0.5,0.1)=1 -> 3.5/4
    assert bootstrap.weighted_auc(scores, positive) == pytest.approx(0.875)
    assert bootstrap.weighted_auc(scores, positive) == pytest.approx(
        two_sample.auc(scores, positive)
    )
    # weights 2 on the tied positive = that slice twice
    w = np.array([[1.0, 2.0, 1.0, 1.0]])
    repeated = bootstrap.weighted_auc(
        np.array([0.9, 0.5, 0.5, 0.5, 0.1]), np.array([1, 1, 1, 0, 0], bool)
    )
    assert bootstrap.weighted_auc(scores, positive, w)[0] == pytest.approx(repeated)


def test_bias_corrected_interval_is_centred_on_the_point_value():
    est = bootstrap.estimate(2.0, np.array([4.0, 5.0, 6.0] * 100), bias_corrected=True, n=3)
    assert est["value"] == 2.0 and est["bootstrap_bias"] == pytest.approx(3.0)
    assert est["ci95"][0] < 2.0 < est["ci95"][1] and est["n"] == 3


# ------------------------------------------------------------------ weighted metrics = metrics of r
def test_fid_with_integer_weights_equals_fid_of_the_repeated_set():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((40, 3)), rng.standard_normal((30, 3)) + 0.5
    wa, wb = rng.integers(0, 3, 40).astype(float), rng.integers(0, 3, 30).astype(float)
    got = frechet.fid_resampled(a, b, wa[None], wb[None])[0]
    want = frechet.fid(np.repeat(a, wa.astype(int), 0), np.repeat(b, wb.astype(int), 0))
    assert got == pytest.approx(want, rel=1e-6)
    assert frechet.fid_resampled(a, b, np.ones((1, 40)), np.ones((1, 30)))[0] == pytest.approx(
        frechet.fid(a, b)
    )


def test_kid_weights_never_pair_a_slice_with_its_copy():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((6, 2)), rng.standard_normal((5, 2))
    wa, wb = np.array([2.0, 1, 0, 1, 3, 1]), np.array([1.0, 2, 1, 0, 1])
    d = 2

    def k(x, y):
        return (x @ y / d + 1.0) ** 3

    ia, ib = np.repeat(np.arange(6), wa.astype(int)), np.repeat(np.arange(5), wb.astype(int))
    sxx = np.mean([k(a[i], a[j]) for i in ia for j in ia if i != j])
    syy = np.mean([k(b[i], b[j]) for i in ib for j in ib if i != j])
    sxy = np.mean([k(a[i], b[j]) for i in ia for j in ib])
    _, got = frechet.kid_full(a, b, wa[None], wb[None])
    assert got[0] == pytest.approx(sxx + syy - 2 * sxy)
    assert frechet.kid_full(a, b) == pytest.approx(
        frechet.kid_full(a, b, np.ones((1, 6)), np.ones((1, 5)))[1][0]
    )


def test_weighted_swd_matches_wasserstein_of_repeated_projections():
    rng = np.random.default_rng(2)
    ref, cand = rng.uniform(-1, 1, (12, 16, 16, 1)), rng.uniform(-1, 1, (10, 16, 16, 1)) * 0.5
    obj = swd.WeightedSWD(ref, cand, seed=3, patches_per_image=4, projections=8)
    assert obj.point()["mean"] > 0
    same = swd.WeightedSWD(ref, ref.copy(), seed=3, patches_per_image=4, projections=8)
    assert same.point()["mean"] == pytest.approx(0.0, abs=1e-9)
    # integer weights = the same images repeated: compare one direction with scipy
    wa, wb = rng.integers(0, 3, 12).astype(float), rng.integers(1, 3, 10).astype(float)
    size, side, gaps, owner = obj.levels[0]
    w1 = swd._w1_pooled(side, gaps, wa, wb, owner)
    sorted_values = np.concatenate([[0.0], np.cumsum(gaps[:, 0])])  # projections up to a shift
    values_a = sorted_values[side[:, 0]]
    values_b = sorted_values[~side[:, 0]]
    weights = np.concatenate([wa, wb])[owner[:, 0]]
    want = stats.wasserstein_distance(values_a, values_b, weights[side[:, 0]], weights[~side[:, 0]])
    assert w1[0] == pytest.approx(want, rel=1e-5)


def test_intensity_w1_resampled_with_unit_weights_matches_compare():
    rng = np.random.default_rng(4)
    a, b = rng.uniform(-1, 1, (5, 8, 8, 1)), rng.uniform(-1, 0.5, (7, 8, 8, 1))
    ha, _ = intensity.per_slice_histograms(a)
    hb, share_b = intensity.per_slice_histograms(b)
    got = intensity.wasserstein1_resampled(ha, hb, np.ones((1, 5)), np.ones((1, 7)))[0]
    assert got == pytest.approx(intensity.compare(a, b)["wasserstein1"], abs=1e-12)
    assert share_b.mean() == pytest.approx(intensity.compare(a, b)["brain_share_candidate"])


# ------------------------------------------------------------------ patients never in two roles
def test_patient_groups_and_quarters_are_disjoint_and_cover_everyone():
    ids = np.repeat([f"p{k}" for k in range(22)], 5)
    in_a, in_b = cohort.patient_groups(ids, 2, seed=0)
    assert not np.any(in_a & in_b) and np.all(in_a | in_b)
    quarters = report._quarters(ids, in_a, 1) + report._quarters(ids, in_b, 2)
    sets = [set(ids[q]) for q in quarters]
    assert sum(len(s) for s in sets) == 22 and len(set().union(*sets)) == 22
    for i in range(4):
        for j in range(i + 1, 4):
            assert not sets[i] & sets[j]
    assert sorted(len(s) for s in sets) == [5, 5, 6, 6]
    with pytest.raises(cohort.EvaluationInputError, match="at least 4 patients"):
        cohort.patient_groups(ids[:10], 4, 0)


def _toy_cohort(patients, per_patient, seed, prefix):
    rng = np.random.default_rng(seed)
    x = np.stack(
        [
            toy_slice(rng, k % 4, k % 2 == 1, 16)[..., None]
            for _ in range(patients)
            for k in range(per_patient)
        ]
    )
    ids = np.repeat([f"{prefix}{p}" for p in range(patients)], per_patient)
    return x, ids


def test_patient_groups_are_even_in_slices_and_differ_between_seeds():
    counts = np.arange(3, 27)  # 24 patients with 3 to 26 slices each
    ids = np.repeat([f"p{k}" for k in range(24)], counts)
    splits = []
    for seed in range(6):
        groups = cohort.patient_groups(ids, 2, seed)
        assert [len(np.unique(ids[g])) for g in groups] == [12, 12]
        sizes = [int(g.sum()) for g in groups]
        assert abs(sizes[0] - sizes[1]) <= 12  # at most one slice per block of two neighbours
        splits.append(frozenset(np.unique(ids[groups[0]])))
    assert len(set(splits)) == 6  # every seed draws another split


@pytest.fixture(scope="module")
def toy_two_sample():
    ref_x, ref_c = _toy_cohort(24, 16, 0, "r")
    seeds = {k: v for k, v in names.SEED_OFFSETS.items()}

    def run(s1, s2):
        return report.two_sample_test(
            ref_x, ref_c, s1, s2, seeds, 96, epochs=1, min_steps=40, resamples=300, repeats=2
        )

    return run


def test_real_slices_of_other_patients_score_near_the_floor_and_noise_near_100(toy_two_sample):
    other, _ = _toy_cohort(12, 16, 5, "o")  # real slices of patients outside the reference
    result = toy_two_sample(other[:96], other[96:])
    syn, floor = result["synthetic"]["accuracy"], result["floor"]["accuracy"]
    assert 0.35 <= floor["value"] <= 0.65 and floor["ci95"][0] < floor["value"] < floor["ci95"][1]
    assert abs(syn["value"] - floor["value"]) < 0.15 and syn["value"] < 0.68
    assert syn["clusters_pos"] == 24  # every real patient answers in every split
    assert 12 <= floor["clusters_pos"] <= 24 and 12 <= floor["clusters_neg"] <= 24
    assert result["floor"]["repeats"] == 2 and len(result["floor"]["fold_accuracy"]) == 4
    rng = np.random.default_rng(9)
    noise = rng.uniform(-1, 1, (192, 16, 16, 1)).astype(np.float32)
    loud = toy_two_sample(noise[:96], noise[96:])["synthetic"]
    assert loud["accuracy"]["value"] > 0.95 and loud["accuracy"]["ci95"][0] > 0.9
    assert (
        sum(loud["counts"].values()) == 2 * 2 * 2 * 96
    )  # two splits, two folds, 96 per class each


# ------------------------------------------------------------------ modality shares
def test_modality_shares_against_hand_counts():
    synthetic = np.array([0] * 4 + [1] * 30 + [2] * 33 + [3] * 33)  # T1 under-produced
    real_labels = np.tile([0, 1, 2, 3], 25)
    clusters = np.repeat(np.arange(10), 10)
    out = coverage.shares(
        synthetic,
        real_labels,
        real_labels,
        clusters,
        modalities=[0, 1, 2, 3],
        seed=0,
        resamples=200,
    )
    t1 = out["per_modality"]["t1"]
    assert t1["synthetic"]["value"] == pytest.approx(0.04) and t1["real"]["value"] == pytest.approx(
        0.25
    )
    assert t1["difference_points"] == pytest.approx(-21.0) and t1["flagged"]
    assert out["per_modality"]["t1ce"]["synthetic_count"] == 30
    assert not out["per_modality"]["t1ce"]["flagged"]  # 30 % vs 25 %: exactly 5 points, not more
    assert out["flagged"] == ["t1", "t2", "flair"]
    lo, hi = t1["synthetic"]["ci95"]
    assert lo < 0.04 < hi and hi < 0.25


# ------------------------------------------------------------------ figures and numbers
def test_format_number_never_prints_rounding_noise():
    assert figures.format_number(1.11e-16) == "0" and figures.format_number(-2e-17) == "0"
    assert figures.format_number(0.25) == "0.25" and figures.format_number(1234.5) == "1234"
    assert figures.format_number(5e-4) == "5.00e-04" and figures.format_number(None) == "n/a"


def test_line_plot_png_is_written_with_readable_ticks(tmp_path):
    x = np.linspace(-0.95, 1.0, 64)
    fig = figures.line_plot(
        {"a": (x, np.exp(-(x**2))), "b": (x, 1.11e-16 + 0 * x)},
        title="t",
        xlabel="intensity",
        ylabel="share",
    )
    fig.canvas.draw()
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels() + ax.get_xticklabels()]
    assert "0" in labels and not any("e-1" in t for t in labels)
    path = figures.save_png(fig, str(tmp_path / "plot.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    bars = figures.interval_bars(
        {"g": {"s": (0.5, [0.4, 0.6])}}, title="t", ylabel="y", reference=0.5
    )
    assert open(figures.save_png(bars, str(tmp_path / "bars.png")), "rb").read(4) == b"\x89PNG"


# ------------------------------------------------------------------ commands: one-line errors
def _export(tmp_path, metadata):
    from kgan import export

    return export.export_generator(
        _tiny_keras_generator(False),
        str(tmp_path / "exports" / "tiny"),
        metadata={"gan": "dcgan", **metadata},
    )


def _one_line_error(capsys, code):
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1
    return err


def test_missing_training_dataset_is_one_line_naming_what_to_run(tmp_path, capsys):
    from conftest import load_script

    version = _export(
        tmp_path,
        {
            "plane": "sagittal",
            "dataset": {
                "source": "phantom",
                "dataset_dir": str(tmp_path / "gone"),
                "tfds": {"name": "phantom_slices", "config": "sagittal_16", "version": "2.0.0"},
            },
        },
    )
    for name, argv in (
        ("evaluate", ["--model", version, "--data-dir", str(tmp_path / "records")]),
        (
            "turing_test",
            [
                "build",
                "--model",
                version,
                "--out",
                str(tmp_path / "vtt"),
                "--data-dir",
                str(tmp_path / "records"),
            ],
        ),
    ):
        err = _one_line_error(capsys, load_script(name).main(argv))
        assert (
            "phantom_slices/sagittal_16" in err
            and "make_records.py phantom --plane sagittal --size 16" in err
        )


def test_image_size_mismatch_is_one_line(tmp_path, capsys):
    from conftest import load_script

    data = write_toy_dataset(tmp_path / "data32", patients=(2, 2), slices=1, size=32)
    version = _export(
        tmp_path, {"plane": "sagittal", "dataset": {"source": data, "dataset_dir": data}}
    )
    err = _one_line_error(capsys, load_script("evaluate").main(["--model", version]))
    assert "16x16" in err and "32x32" in err and "--data" in err
    err = _one_line_error(
        capsys,
        load_script("turing_test").main(
            ["build", "--model", version, "--data", data, "--out", str(tmp_path / "vtt")]
        ),
    )
    assert "16x16" in err and "32x32" in err
