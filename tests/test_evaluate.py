"""The evaluation report runs end to end on a tiny dataset and writes files that parse."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from kgan import schema
from kgan.evaluation import report as report_lib
from kgan.evaluation.sources import SyntheticSource

SIZE = 16


def toy_slice(rng, modality: int, tumour: bool, size: int = SIZE) -> np.ndarray:
    """A disc 'head' whose brightness depends on the modality, with a bright blob for tumour."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    radius = size * rng.uniform(0.3, 0.42)
    image = np.where(xx**2 + yy**2 < radius**2, 0.2 + 0.15 * modality, -1.0)
    image = image + rng.normal(0, 0.05, image.shape) * (image > -1)
    if tumour:
        cy, cx = rng.uniform(-size / 6, size / 6, 2)
        image = np.where((xx - cx) ** 2 + (yy - cy) ** 2 < (size / 8) ** 2, 0.95, image)
    return np.clip(image, -1, 1).astype(np.float32)


def write_toy_dataset(directory, patients=(8, 4), slices=6, size=SIZE, seed=0, prefix=""):
    """train/test shards: `patients` per split, 4 modalities x `slices` each, half with tumour.

    Case ids are `<prefix><split><k>`: give two datasets different prefixes for disjoint patients.
    """
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "test"), patients):
        path = os.path.join(directory, f"toy-{split}.tfrecord-00000-of-00001")
        with tf.io.TFRecordWriter(path) as writer:
            for p in range(count):
                for m in range(4):
                    for s in range(slices):
                        tumour = s % 2 == 1
                        image = schema.to_uint8(toy_slice(rng, m, tumour, size))
                        writer.write(
                            schema.encode_example(
                                image,
                                modality=m,
                                plane=0,
                                slice_index=40 + s,
                                case_id=f"{prefix}{split}{p}",
                                tumour_fraction=0.1 if tumour else 0.0,
                                source="toy",
                            )
                        )
    return str(directory)


def toy_generator(conditional: bool, size: int = SIZE):
    def generate(count, seed=0, modality=None, tumour=None):
        rng = np.random.default_rng(seed)
        mods = (
            rng.integers(0, 4, count) if modality is None else np.broadcast_to(modality, (count,))
        )
        tums = rng.integers(0, 2, count) if tumour is None else np.broadcast_to(tumour, (count,))
        return np.stack(
            [toy_slice(rng, int(m), bool(t), size)[..., None] for m, t in zip(mods, tums)]
        )

    return SyntheticSource(generate, conditional=conditional, name="toy")


def _estimates(node):
    """Every {"value": ..., "ci95": ...} entry anywhere in a report."""
    if isinstance(node, dict):
        if "value" in node and "ci95" in node:
            yield node
        for v in node.values():
            yield from _estimates(v)
    elif isinstance(node, list):
        for v in node:
            yield from _estimates(v)


@pytest.mark.parametrize("conditional", [True, False])
def test_report_files_exist_and_parse(tmp_path, conditional):
    data = write_toy_dataset(tmp_path / "data", patients=(8, 2))
    ref = write_toy_dataset(tmp_path / "ref", patients=(4, 4), slices=6, prefix="new", seed=1)
    out = tmp_path / "report"
    encoder_path = tmp_path / "enc" / "toy.keras"
    lines = []
    result = report_lib.evaluate(
        toy_generator(conditional),
        data,
        str(out),
        reference=ref,
        seed=3,
        samples=48,
        encoder_path=str(encoder_path),
        encoder_epochs=1,
        classifier_epochs=1,
        pairs=40,
        min_steps=10,
        resamples=100,
        swd_resamples=10,
        augment_patients=2,
        augment_min_steps=10,
        log=lines.append,
    )
    assert any(line.startswith("[8/8]") for line in lines)  # progress was shown
    loaded = json.loads((out / "report.json").read_text())
    assert loaded == json.loads(json.dumps(result))
    assert loaded["seed"] == 3 and loaded["samples"]["synthetic_per_set"] == 48
    ref_info = loaded["reference"]
    assert (
        ref_info["patients"] == 8
        and ref_info["half_a_patients"] == 4
        and ref_info["quarter_patients"] == [2, 2, 2, 2]
    )
    assert any("small real cohort" in w for w in loaded["warnings"])  # 4 < 10 patients per side
    assert any("WARNING: small real cohort" in line for line in lines)  # and on the console
    assert (
        loaded["samples"]["train_slices"] == 8 * 4 * 6
        and loaded["samples"]["reference_slices"] == 8 * 4 * 6
    )
    assert set(loaded["fidelity"]) == {"all", "t1", "t1ce", "t2", "flair"}
    for name, entry in loaded["fidelity"].items():
        if (
            "skipped" in entry
        ):  # an undertrained encoder may put no unconditional sample in a modality
            assert not conditional and name != "all" and "too few" in entry["skipped"]
            continue
        assert entry["swd_x1e3"]["synthetic"]["value"] >= 0 and entry["fid"]["floor"]["value"] >= 0
    estimates = list(_estimates(loaded))
    assert len(estimates) > 40
    for est in estimates:  # every number carries its interval
        if est["value"] is not None and est["ci95"] is not None:
            assert est["ci95"][0] <= est["ci95"][1]
    summary = loaded["summary"]
    for key in ("two_sample_accuracy", "swd_x1e3", "fid", "kid"):
        assert summary[key]["synthetic"]["ci95"] and summary[key]["floor"]["ci95"]
    assert set(summary["modality_shares"]) == {"t1", "t1ce", "t2", "flair"}
    assert summary["ms_ssim"]["synthetic_pairs"]["ci95"] and "memorisation_flagged" in summary
    assert "real_only" in summary["augmentation"]
    vtt = loaded["visual_turing_test_automated"]["synthetic"]
    assert vtt["folds"] == 2 * report_lib.TWO_SAMPLE_REPEATS == 2 * len(vtt["repeat_accuracy"])
    assert (
        sum(vtt["counts"].values())
        == vtt["n_real"] + vtt["n_synthetic"]
        == 2 * vtt["folds"] * vtt["test_per_class"]
    )
    assert loaded["encoder"]["sha256"] and os.path.isfile(encoder_path)
    labels = loaded["augmentation"]["label_source"]
    assert ("condition" in labels) if conditional else ("ceiling classifier" in labels)
    assert "real_all_patients" in summary["augmentation"]  # the ceiling is reported
    assert len(loaded["augmentation"]["real_patients"]) == 2
    md = (out / "report.md").read_text()
    for heading in (
        "## Automated Visual Turing Test",
        "## Modality coverage",
        "## Fidelity",
        "## Diversity",
        "## Intensity",
        "## Memorisation",
        "## Augmentation",
        "floor",
        "**warning**",
    ):
        assert heading in md
    assert "e-16" not in md and "e-17" not in md
    for name in (
        "samples_synthetic",
        "samples_real",
        "memorisation_closest_pairs",
        "memorisation_distances",
        "intensity_all",
        "modality_shares",
        "summary_intervals",
    ):
        png = out / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _tiny_keras_generator(conditional: bool, size: int = SIZE, latent: int = 8):
    """A tiny generator with the models contract's I/O (built-in layers only)."""
    import keras

    keras.utils.set_random_seed(0)
    z = keras.Input((latent,), name="z")
    inputs, h = z, z
    if conditional:
        modality = keras.Input((), dtype="int32", name="modality")
        tumour = keras.Input((), dtype="int32", name="tumour")
        h = keras.layers.Concatenate()(
            [z, keras.layers.Embedding(4, 4)(modality), keras.layers.Embedding(2, 4)(tumour)]
        )
        inputs = [z, modality, tumour]
    h = keras.layers.Dense(size * size, activation="tanh")(h)
    return keras.Model(inputs, keras.layers.Reshape((size, size, 1))(h))


def test_evaluate_script_on_an_exported_savedmodel(tmp_path, capsys):
    """scripts/evaluate.py: export dir in, report out; only the generator's modalities compared."""

    from kgan import export

    data = write_toy_dataset(tmp_path / "data", patients=(6, 4), slices=4)
    base = tmp_path / "exports" / "tiny"
    version = export.export_generator(
        _tiny_keras_generator(True),
        str(base),
        metadata={"gan": "dcgan", "modalities": ["t1", "flair"]},
    )
    from conftest import load_script

    cli = load_script("evaluate")
    out = tmp_path / "report"
    code = cli.main(
        [
            "--model",
            version,
            "--data",
            data,
            "--out",
            str(out),
            "--seed",
            "1",
            "--samples",
            "24",
            "--encoder",
            str(tmp_path / "enc.keras"),
            "--encoder-epochs",
            "1",
            "--classifier-epochs",
            "1",
            "--min-steps",
            "5",
            "--resamples",
            "50",
            "--swd-resamples",
            "5",
            "--augment-patients",
            "2",
            "--augment-min-steps",
            "10",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "[1/8]" in printed and "[8/8]" in printed
    report = json.loads((out / "report.json").read_text())
    assert set(report["fidelity"]) == {"all", "t1", "flair"}
    assert report["generator"]["conditional"] and report["generator"]["modalities"] == [
        "t1",
        "flair",
    ]
    assert (
        report["samples"]["reference_slices"] == 4 * 2 * 4
    )  # test patients x modalities kept x slices
    assert report["reference"]["splits"] == ["test"] and "held-out" in report["reference"]["kind"]
    assert report["samples"]["train_slices"] == 6 * 2 * 4
    assert report["encoder"]["path"] == str(tmp_path / "enc.keras")
    assert report["augmentation"]["min_steps"] == 10  # --augment-min-steps reached the test
    assert cli.main(["--model", str(tmp_path / "missing"), "--data", data]) == 2


def test_a_gain_counts_when_its_interval_clears_zero_in_either_metric():
    gains = {
        "balanced_accuracy": {"value": 0.03, "ci95": [-0.01, 0.07]},
        "auc": {"value": 0.05, "ci95": [0.012, 0.09]},
    }
    assert report_lib.gains_beyond_interval(gains) == ["auc"]
    gains["balanced_accuracy"]["ci95"] = [0.001, 0.06]
    assert report_lib.gains_beyond_interval(gains) == ["balanced_accuracy", "auc"]
    gains["auc"]["ci95"] = [0.0, 0.09]  # touching zero is not beyond it
    gains["balanced_accuracy"]["ci95"] = [None, None]  # no interval: no claim
    assert report_lib.gains_beyond_interval(gains) == []
