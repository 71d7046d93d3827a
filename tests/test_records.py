"""TFDS slice datasets: splits, end-to-end builds read back by tfds and load_slices,
bad cases, interruption and rerun, and the phantom dataset through ensure_dataset."""

from __future__ import annotations

import collections
import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow_datasets as tfds
from test_volumes import write_case, write_mha_case

from kgan import names, phantom, pipeline, records, schema, volumes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_split_is_patient_level_deterministic_and_seeded():
    ids = [f"case{i:02d}" for i in range(20)]
    a = records.split_cases(ids, seed=0)
    assert [len(a[s]) for s in records.SPLITS] == [16, 2, 2]
    assert sorted(sum(a.values(), [])) == ids  # every patient exactly once
    assert not set(a["train"]) & set(a["validation"]) and not set(a["train"]) & set(a["test"])
    assert not set(a["validation"]) & set(a["test"])
    assert records.split_cases(list(reversed(ids)), seed=0) == a  # order of discovery is irrelevant
    assert records.split_cases(ids, seed=1) != a
    assert [len(v) for v in records.split_cases(ids[:3]).values()] == [1, 1, 1]
    assert records.split_cases(ids[:1]) == {"train": ["case00"], "validation": [], "test": []}
    with pytest.raises(ValueError, match="duplicate"):
        records.split_cases(["a", "a"])


def test_config_names():
    make = records.SliceBuilderConfig.make
    assert make("sagittal", 64).name == "sagittal_64"
    assert make("axial", 128, "stretch").name == "axial_128_stretch"
    assert make("coronal", 64, patients=50, seed=1).name == "coronal_64_n50_seed1"
    assert make("coronal", 64, patients=50, phantom_cohort=False).name == "coronal_64"
    config_names = {c.name for c in records.PhantomSlices.BUILDER_CONFIGS}
    assert {"sagittal_64", "coronal_128", "axial_256"} <= config_names and len(config_names) == 9
    with pytest.raises(ValueError, match="unknown plane"):
        make("oblique", 64)


@pytest.fixture(scope="module")
def brats_dir(tmp_path_factory):
    """Six small cases in three layouts, one of them bad (no FLAIR)."""
    root = tmp_path_factory.mktemp("brats")
    write_case(root / "HGG", "Brats18_A_1", seed=1)
    write_case(root / "HGG", "Brats18_A_2", seed=2, lps=False)
    write_case(root / "LGG", "Brats18_B_1", seed=3, dtype=np.float32)
    write_case(root / "2023", "BraTS-GLI-00001-000", layout="brats2023", seed=4, labels=(1, 2, 3))
    write_mha_case(root / "2015", "HGG", "brats_tcia_pat101_1", seed=5)
    write_case(root / "HGG", "Brats18_Bad_9", seed=6, skip=("flair",))
    return str(root)


@pytest.fixture(scope="module")
def built(brats_dir, tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("records"))
    summary = records.build_dataset(
        "brats",
        plane="sagittal",
        size=64,
        data_dir=data_dir,
        manual_dir=brats_dir,
        workers=2,
        skip_bad=True,
    )
    return summary, data_dir


def _fingerprints(images, case_ids, modalities, indices):
    return sorted(
        (str(c), int(m), int(i), hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest())
        for x, c, m, i in zip(images, case_ids, modalities, indices)
    )


def test_brats_build_summary_and_skip_bad(built):
    summary, data_dir = built
    assert summary.built and summary.workers == 2
    assert summary.dataset_dir == os.path.join(data_dir, "brats_slices", "sagittal_64", "1.0.0")
    assert [cid for cid, _ in summary.skipped] == ["Brats18_Bad_9"]
    assert "missing modality flair" in summary.skipped[0][1]
    good = sorted(sum(summary.cases.values(), []))
    assert good == sorted(
        ["Brats18_A_1", "Brats18_A_2", "Brats18_B_1", "BraTS-GLI-00001-000", "brats_tcia_pat101_1"]
    )
    for per_mod in summary.slices.values():
        counts = set(per_mod.values())
        assert len(counts) == 1  # the same slices of every modality
    text = str(summary)
    assert "Brats18_Bad_9" in text and "train" in text and summary.dataset_dir in text
    # Reusing: a second call does not rebuild and returns the saved summary.
    again = records.build_dataset(
        "brats", plane="sagittal", size=64, data_dir=data_dir, manual_dir="/nonexistent"
    )
    assert not again.built and again.cases == summary.cases and again.skipped == summary.skipped


def test_tfds_and_load_slices_read_the_same_records(built):
    summary, data_dir = built
    builder = tfds.builder("brats_slices/sagittal_64", data_dir=data_dir)
    by_split = {}
    for split in records.SPLITS:
        if not summary.cases[split]:
            continue
        ds = builder.as_dataset(split=split)
        rows = list(tfds.as_numpy(ds))
        assert len(rows) == sum(summary.slices[split].values())
        ours = _fingerprints(
            [r["image"] for r in rows],
            [r["case_id"].decode() for r in rows],
            [r["modality"] for r in rows],
            [r["slice_index"] for r in rows],
        )
        images, labels = pipeline.load_arrays(summary.dataset_dir, split)
        theirs = _fingerprints(
            schema.to_uint8(images), labels["case_id"], labels["modality"], labels["slice_index"]
        )
        assert ours == theirs
        # The name-based lookup of the pipeline finds the same directory.
        assert (
            pipeline.resolve_dataset_dir("brats_slices/sagittal_64", data_dir)
            == summary.dataset_dir
        )
        by_split[split] = set(labels["case_id"])
        assert by_split[split] == set(summary.cases[split])
        # Labels: sources by layout, grades from folders, tumour present somewhere.
        sources = {r["source"].decode() for r in rows}
        assert sources <= {"brats2021", "brats2023", "brats2015"}
        assert {names.GRADES[g] for g in (r["grade"] for r in rows)} <= set(names.GRADES)
        assert max(r["tumour_fraction"] for r in rows) > 0.05
        assert all(r["image"].shape == (64, 64, 1) and r["image"].dtype == np.uint8 for r in rows)
    splits = list(by_split.values())
    for i in range(len(splits)):
        for j in range(i + 1, len(splits)):
            assert not splits[i] & splits[j]  # a patient never spans splits


def test_grades_reach_the_records(built):
    summary, _ = built
    images, labels = pipeline.load_arrays(summary.dataset_dir, "train")
    grades = collections.defaultdict(set)
    for cid, g in zip(labels["case_id"], labels["grade"]):
        grades[cid].add(names.GRADES[g])
    expect = {
        "Brats18_A_1": "HGG",
        "Brats18_A_2": "HGG",
        "Brats18_B_1": "LGG",
        "BraTS-GLI-00001-000": "unknown",
        "brats_tcia_pat101_1": "HGG",
    }
    for cid, g in grades.items():
        assert g == {expect[cid]}


def test_bad_case_without_skip_bad_fails_and_leaves_nothing(brats_dir, tmp_path):
    with pytest.raises(volumes.VolumeError, match="missing modality flair"):
        records.build_dataset(
            "brats", size=64, data_dir=str(tmp_path), manual_dir=brats_dir, workers=1
        )
    config_dir = tmp_path / "brats_slices" / "sagittal_64"
    left = [p for p in os.listdir(config_dir) if not p.startswith(".kgan-build")]
    assert left == []  # no version folder, no incomplete folder
    with pytest.raises(pipeline.DatasetNotFoundError):
        pipeline.resolve_dataset_dir("brats_slices/sagittal_64", str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(volumes.VolumeError, match="no BraTS cases found"):
        records.build_dataset(
            "brats", size=64, data_dir=str(tmp_path / "r2"), manual_dir=str(empty)
        )
    assert not (tmp_path / "r2").exists()


def test_interrupted_build_leaves_nothing_finished_and_rerun_completes(brats_dir, tmp_path):
    data_dir = str(tmp_path / "rec")
    script = textwrap.dedent(f"""
        import os
        from kgan import records
        def die(case_id, error):
            os._exit(3)  # killed after the first case: shards half written
        records.build_dataset("brats", size=64, data_dir={data_dir!r}, manual_dir={brats_dir!r},
                              workers=1, skip_bad=True, progress=die)
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    config_dir = os.path.join(data_dir, "brats_slices", "sagittal_64")
    leftovers = [p for p in os.listdir(config_dir) if p.startswith("incomplete.")]
    assert leftovers and not os.path.exists(os.path.join(config_dir, "1.0.0"))
    with pytest.raises(pipeline.DatasetNotFoundError):
        pipeline.resolve_dataset_dir("brats_slices/sagittal_64", data_dir)
    summary = records.build_dataset(
        "brats", size=64, data_dir=data_dir, manual_dir=brats_dir, workers=1, skip_bad=True
    )
    assert summary.built and sum(len(v) for v in summary.cases.values()) == 5
    assert not [p for p in os.listdir(config_dir) if p.startswith("incomplete.")]
    ds = pipeline.load_slices("brats_slices/sagittal_64", "train", data_dir=data_dir, batch_size=8)
    assert sum(int(x.shape[0]) for x, _ in ds) == 8 * (sum(summary.slices["train"].values()) // 8)


def test_phantom_dataset_through_ensure_dataset(tmp_path_factory):
    data_dir = str(tmp_path_factory.getbasetemp() / "shared_phantom_records")  # see test_phantom
    path = records.ensure_dataset(
        "phantom", plane="sagittal", size=32, data_dir=data_dir, patients=3, seed=0, workers=2
    )
    version = f"{phantom.PHANTOM_VERSION}.0.0"
    assert path == os.path.join(data_dir, "phantom_slices", "sagittal_32_n3", version)
    written = volumes.find_cases(
        phantom.cohort_dir(data_dir, 0)
    )  # BraTS 2021 layout, graded folders
    assert [c.case_id for c in written] == [phantom.case_id(i, 0) for i in range(3)]
    assert [c.grade for c in written] == [phantom.patient_grade(i, 0) for i in range(3)]
    x, y = next(iter(pipeline.load_slices(path, "train", batch_size=16)))
    assert (
        x.shape == (16, 32, 32, 1)
        and -1.0 <= float(x.numpy().min())
        and float(x.numpy().max()) <= 1.0
    )
    assert set(y["grade"].numpy()) <= {1, 2} and set(y["synthetic"].numpy()) == {0}
    for split in records.SPLITS:
        _, labels = pipeline.load_arrays(path, split)
        assert len(set(labels["case_id"])) == 1 and set(labels["source"]) == {"phantom"}
        assert np.bincount(labels["modality"], minlength=4).min() == 70
    summary = records.build_dataset("phantom", size=32, data_dir=data_dir, patients=3)
    assert not summary.built and summary.total_slices == 3 * 4 * 70


def test_case_with_corrupt_voxels_is_skipped_during_the_build(tmp_path):
    src = tmp_path / "cases"
    ids = ["p1", "p2", "p3", "p4", "p5"]
    for i, cid in enumerate(ids):
        write_case(src, cid, seed=i)
    path = src / "p5" / "p5_t1.nii.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # header intact, voxel data truncated
    volumes.check_case(volumes.find_cases(str(src / "p5"))[0])  # headers pass...
    seed = next(s for s in range(50) if "p5" in records.split_cases(ids, seed=s)["train"])
    summary = records.build_dataset(
        "brats",
        size=32,
        data_dir=str(tmp_path / "rec"),
        manual_dir=str(src),
        workers=1,
        skip_bad=True,
        seed=seed,
    )
    assert [c for c, _ in summary.skipped] == ["p5"]  # ...the worker finds the truncation
    assert "p5_t1.nii.gz" in summary.skipped[0][1] and "truncated" in summary.skipped[0][1]
    assert sorted(sum(summary.cases.values(), [])) == ["p1", "p2", "p3", "p4"]


def _load_script(name):
    from conftest import load_script

    return load_script(name)


def test_make_records_cli_skip_bad_and_error_exit(brats_dir, tmp_path, capsys):
    cli = _load_script("make_records")
    data_dir = str(tmp_path / "rec")
    code = cli.main(
        [
            "brats",
            "--dir",
            brats_dir,
            "--size",
            "16",
            "--plane",
            "axial",
            "--data-dir",
            data_dir,
            "--workers",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "missing modality flair" in err and "--skip-bad" in err
    assert not os.path.exists(os.path.join(data_dir, "brats_slices", "axial_16", "1.0.0"))
    code = cli.main(
        [
            "brats",
            "--dir",
            brats_dir,
            "--size",
            "16",
            "--plane",
            "axial",
            "--data-dir",
            data_dir,
            "--workers",
            "1",
            "--skip-bad",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "brats_slices/axial_16: built" in out and "Brats18_Bad_9" in out
    assert os.path.join(data_dir, "brats_slices", "axial_16", "1.0.0") in out
    x, y = next(
        iter(
            pipeline.load_slices(
                os.path.join(data_dir, "brats_slices", "axial_16", "1.0.0"), "train", batch_size=4
            )
        )
    )
    assert x.shape == (4, 16, 16, 1) and set(y["plane"].numpy()) == {2}
    assert cli.main(["brats", "--dir", str(tmp_path / "nothing")]) == 2


@pytest.fixture(scope="module")
def tiny_phantom_build(tmp_path_factory):
    """A fresh build of a 3-patient axial 16x16 phantom dataset, with everything it printed.

    Uses the session's shared phantom volumes (see test_phantom), so only slicing runs when an
    earlier test generated them; TFDS's global progress-bar switch starts on.
    """
    import contextlib
    import io
    import logging

    from tensorflow_datasets.core.utils import tqdm_utils

    class Collect(logging.Handler):
        def emit(self, record):
            logged.append(record.getMessage())

    logged, collect = [], Collect()

    data_dir = str(tmp_path_factory.getbasetemp() / "shared_phantom_records")
    tfds.display_progress_bar(True)
    out, err = io.StringIO(), io.StringIO()
    old = os.umask(0o022)
    logging.getLogger("absl").addHandler(collect)  # TFDS logs through absl
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            summary = records.build_dataset(
                "phantom", plane="axial", size=16, data_dir=data_dir, patients=3, workers=1
            )
    finally:
        os.umask(old)
        logging.getLogger("absl").removeHandler(collect)
    return summary, data_dir, out.getvalue(), err.getvalue(), tqdm_utils._active, logged


def test_build_shows_one_progress_display_and_a_summary_line(tiny_phantom_build):
    summary, data_dir, out, err, bars_after, logged = tiny_phantom_build
    assert summary.built and summary.total_slices > 0
    assert bars_after is True  # the user's TFDS progress bars stay as they were (it set them off)
    assert "Downloading and preparing" not in out + err and "downloaded and prepared" not in out
    assert not [m for m in logged if "custom data configuration" in m], logged
    lines = err.splitlines()
    assert lines[0].startswith("kgan: building phantom_slices/axial_16_n3 from 3 phantom patients")
    assert lines[-1] == (
        f"kgan: built phantom_slices/axial_16_n3: {summary.total_slices} slices "
        f"from 3 cases in {lines[-1].split(' in ')[1].split(' -> ')[0]} -> "
        f"{summary.dataset_dir}"
    )
    progress_lines = lines[
        1:-1
    ]  # plain lines (stderr is not a terminal): at most one per case here
    assert 1 <= len(progress_lines) <= 3 and "\r" not in err and out == ""
    assert progress_lines[-1].startswith("phantom_slices/axial_16_n3: 3/3 cases (100 %)")
    summary_file = os.path.join(summary.dataset_dir, records.SUMMARY_FILE)
    assert os.stat(summary_file).st_mode & 0o777 == 0o644  # written by kgan.atomic, not 0600


def test_tfds_progress_switch_is_off_during_a_build_and_restored_after(tmp_path, monkeypatch):
    from tensorflow_datasets.core.utils import tqdm_utils

    seen = []

    def failing_build(self, **kwargs):  # stands in for TFDS's build: notes the switch, then fails
        seen.append(tqdm_utils._active)
        raise RuntimeError("interrupted")

    monkeypatch.setattr(records._SliceBuilder, "download_and_prepare", failing_build)
    try:
        for users_choice in (True, False):
            tfds.display_progress_bar(users_choice)
            with pytest.raises(RuntimeError, match="interrupted"):
                records.build_dataset(
                    "phantom", size=16, data_dir=str(tmp_path), patients=3, progress=False
                )
            assert tqdm_utils._active is users_choice
        assert seen == [False, False]  # TFDS's bars never compete with kgan's
    finally:
        tfds.display_progress_bar(True)


def test_sizes_training_refuses_are_refused_before_building(tmp_path, capsys):
    from kgan import networks, sizes

    assert networks.SUPPORTED_SIZES is sizes.IMAGE_SIZES  # one rule for records and networks
    for bad in (48, 8, 512, 64.5):
        with pytest.raises(ValueError, match="16, 32, 64, 128, 256"):
            records.build_dataset("phantom", size=bad, data_dir=str(tmp_path / "r"), patients=3)
    assert not os.path.exists(tmp_path / "r")
    with pytest.raises(SystemExit) as exit_info:
        _load_script("make_records").main(["phantom", "--size", "48", "--data-dir", str(tmp_path)])
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert (
        exit_info.value.code == 2
        and "argument --size: 48 is not a size kgan can train on" in err_lines[-1]
    )
    assert "16, 32, 64, 128, 256" in err_lines[-1] and os.listdir(tmp_path) == []


def test_builders_cite_their_sources_and_the_phantom_is_described_as_its_own(tmp_path):
    brats = records.make_builder("brats", size=16, data_dir=str(tmp_path)).info
    for needle in (
        "Menze",
        "Multimodal Brain Tumor Image Segmentation Benchmark",
        "Bakas",
        "Scientific Data",
        "2107.02314",
        "Baid",
    ):
        assert needle in brats.citation
    assert brats.homepage == "https://www.med.upenn.edu/cbica/brats/"
    fake = records.make_builder("phantom", size=16, data_dir=str(tmp_path), patients=3).info
    assert "brats" not in fake.homepage.lower() and "Menze" not in fake.citation
    assert "MNI152" in fake.description and "nilearn" in fake.description
    assert "Fonov" in fake.citation


def test_tfds_as_dataframe_shows_slice_thumbnails(tiny_phantom_build):
    pytest.importorskip("pandas")
    summary, data_dir, *_ = tiny_phantom_build
    ds, info = tfds.load(
        "phantom_slices/axial_16_n3", data_dir=data_dir, split="train", with_info=True
    )
    frame = tfds.as_dataframe(ds.take(3), records.display_info(info))
    html = frame._repr_html_()
    assert html.count("<img") == 3 and any(f"({m})<" in html for m in names.MODALITIES)
    assert isinstance(
        info.features["image"], tfds.features.Tensor
    )  # the stored schema is unchanged
    # Shards parsed with the schema (raw bytes) give the same uint8 images through as_images.
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(os.path.join(summary.dataset_dir, "*-train.tfrecord*")))
    raw = tf.data.TFRecordDataset(files).map(
        lambda r: tf.io.parse_single_example(r, schema.FEATURE_SPEC)
    )
    for size in (None, 16):
        first = next(iter(records.as_images(raw, size=size)))
        assert first["image"].dtype == tf.uint8 and tuple(first["image"].shape) == (16, 16, 1)
    assert len(files) == 1  # one shard, so tfds.load (no file shuffling) reads the same order
    for loaded, viewed in zip(ds.take(5), records.as_images(raw).take(5)):
        assert loaded["case_id"].numpy() == viewed["case_id"].numpy()
        np.testing.assert_array_equal(loaded["image"].numpy(), viewed["image"].numpy())
