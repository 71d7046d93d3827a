"""Sampling from an export without kgan model code, and the grid/PNG/NIfTI/TFRecord writers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from kgan import export, names, schema
from kgan.pipeline import load_arrays, load_slices
from kgan.sampling import (
    GeneratorSampler,
    SampleBatch,
    slices_to_volume,
    volume_to_slices,
    write_grid,
    write_samples,
    write_tfrecords,
)
from kgan.serving import PNG_OUTPUT, latent_vectors

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # any pytest import mode
from test_export import LATENT, SIZE, make_generator  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cond(tmp_path_factory):
    """A conditional generator on t1 + flair exported with max_count 4 (to test chunking)."""
    generator = make_generator(True, seed=7)
    base = tmp_path_factory.mktemp("exports") / "cond"
    export.export_generator(
        generator,
        str(base),
        max_count=4,
        metadata={"gan": "dcgan", "modalities": ["t1", "flair"], "plane": "axial"},
    )
    return generator, str(base)


@pytest.fixture(scope="module")
def uncond(tmp_path_factory):
    """An unconditional generator trained on all four modalities (as in the paper)."""
    generator = make_generator(False, seed=8)
    base = tmp_path_factory.mktemp("exports") / "uncond"
    export.export_generator(generator, str(base), metadata={"gan": "wgan", "plane": "sagittal"})
    return generator, str(base)


def test_sampler_reads_the_newest_version_and_its_metadata(cond, tmp_path):
    generator, base = cond
    sampler = GeneratorSampler(base)
    assert sampler.path == os.path.join(base, "1")
    assert (sampler.image_size, sampler.latent_dim, sampler.conditional) == (SIZE, LATENT, True)
    assert (sampler.max_count, sampler.gan, sampler.modalities) == (4, "dcgan", ["t1", "flair"])
    assert sampler.metadata["synthetic"] is True
    with pytest.raises(FileNotFoundError, match="no exported generator"):
        GeneratorSampler(str(tmp_path))


def test_generate_matches_sample_signature_and_the_in_memory_generator(cond):
    generator, base = cond
    sampler = GeneratorSampler(base)
    images = sampler.generate(4, seed=5, modality="flair", tumour=1)
    assert images.dtype == np.float32 and images.shape == (4, SIZE, SIZE, 1)
    served = sampler.sample(5, 4, modality="flair", tumour=1)
    np.testing.assert_array_equal(images, served["images"])
    assert len(served[PNG_OUTPUT]) == 4
    np.testing.assert_array_equal(images, sampler.generate(4, seed=5, modality=3, tumour=1))

    # 10 > max_count 4: chunks of 4, 4, 2 from Philox streams [5, 0], [5, 1], [5, 2].
    ten = sampler.generate(10, seed=5, modality="flair", tumour=1)
    np.testing.assert_array_equal(ten[:4], images)
    z = np.concatenate([latent_vectors(5, n, LATENT, k).numpy() for k, n in enumerate((4, 4, 2))])
    np.testing.assert_array_equal(sampler.latents(10, 5), z)
    expected = generator([z, np.full(10, 3, np.int32), np.ones(10, np.int32)], training=False)
    np.testing.assert_allclose(ten, expected.numpy(), atol=1e-6)
    assert not np.allclose(ten[4:8], ten[:4])  # the chunks are not repeats of each other


def test_conditions_default_to_a_balanced_mix_and_reject_what_the_model_cannot_do(cond, uncond):
    sampler = GeneratorSampler(cond[1])
    mods, tums = sampler.conditions(6)
    assert mods.tolist() == [0, 3, 0, 3, 0, 3] and tums.tolist() == [0, 0, 1, 1, 0, 0]
    mods, tums = sampler.conditions(3, modality=["t1", "flair", "t1"], tumour=1)
    assert mods.tolist() == [0, 3, 0] and tums.tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="not one this generator was trained on"):
        sampler.conditions(2, modality="t2")
    with pytest.raises(ValueError, match="unknown modality 'pd'"):
        sampler.conditions(2, modality="pd")
    with pytest.raises(ValueError, match="tumour must be 0 or 1"):
        sampler.conditions(2, tumour=[0, 3])
    with pytest.raises(ValueError, match="modality has 3 entries for 2 samples"):
        sampler.conditions(2, modality=[0, 3, 0])
    with pytest.raises(ValueError, match="count must be at least 1"):
        sampler.generate(0)

    sampler = GeneratorSampler(uncond[1])
    mods, tums = sampler.conditions(3)
    assert mods.tolist() == [-1, -1, -1] and tums is None
    with pytest.raises(ValueError, match="unconditional"):
        sampler.conditions(3, modality="t1")
    images = sampler.generate(3, seed=2)
    z = latent_vectors(2, 3, LATENT).numpy()
    np.testing.assert_allclose(images, uncond[0](z, training=False).numpy(), atol=1e-6)


def test_tfrecords_read_back_through_the_pipeline_and_mix_in_one_line(cond, tmp_path):
    sampler = GeneratorSampler(cond[1])
    out = tmp_path / "synthetic"
    # A stale shard set with another shard count is replaced, not mixed in.
    out.mkdir()
    (out / "synthetic-train.tfrecord-00000-of-00005").write_bytes(b"")
    paths = write_samples(sampler, str(out), count=6, fmt="tfrecord", seed=3, shards=2)
    written = sorted(os.listdir(out))
    assert written == [
        "kgan_samples.json",
        "synthetic-train.tfrecord-00000-of-00002",
        "synthetic-train.tfrecord-00001-of-00002",
    ]
    assert [Path(p).name for p in paths[:2]] == written[1:]

    images, labels = load_arrays(str(out), "train")
    order = np.argsort(labels["case_id"])  # the pipeline interleaves the two shards
    images, labels = images[order], {k: v[order] for k, v in labels.items()}
    batch = sampler.generate_batch(6, seed=3)
    # uint8 storage: within half a grey level of the generated values.
    np.testing.assert_allclose(images, batch.images, atol=1 / 127.5 + 1e-6)
    assert labels["modality"].tolist() == [0, 3, 0, 3, 0, 3]
    assert labels["tumour"].tolist() == [0, 0, 1, 1, 0, 0]
    assert labels["tumour_fraction"].tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert labels["synthetic"].tolist() == [1] * 6
    assert labels["plane"].tolist() == [names.PLANES.index("axial")] * 6
    assert labels["slice_index"].tolist() == [-1] * 6
    assert labels["source"].tolist() == ["synthetic:dcgan"] * 6
    assert labels["case_id"][0] == "synthetic-dcgan-seed3-000000"
    flair = load_arrays(str(out), "train", modalities=["flair"])[1]
    assert sorted(flair["case_id"]) == [f"synthetic-dcgan-seed3-{i:06d}" for i in (1, 3, 5)]

    # The documented one-liner: mix with real slices.
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    with tf.io.TFRecordWriter(str(real_dir / "real-train.tfrecord-00000-of-00001")) as w:
        for i in range(6):
            w.write(
                schema.encode_example(
                    np.full((SIZE, SIZE), 40 * i, np.uint8),
                    modality=1,
                    plane=2,
                    slice_index=80 + i,
                    case_id=f"p{i}",
                    tumour_fraction=0.0,
                    source="phantom",
                )
            )
    real = load_slices(str(real_dir), "train", batch_size=2)
    synthetic = load_slices(str(out), "train", batch_size=2)
    mixed = tf.data.Dataset.sample_from_datasets([real, synthetic], weights=[0.5, 0.5], seed=0)
    flags = np.concatenate([y["synthetic"].numpy() for _, y in mixed])
    assert sorted(flags.tolist()) == [0] * 6 + [1] * 6

    manifest = json.loads((out / "kgan_samples.json").read_text())
    assert manifest["seed"] == 3 and manifest["synthetic"] is True
    assert manifest["samples"][2] == {
        "id": "synthetic-dcgan-seed3-000002",
        "modality": "t1",
        "tumour": 1,
    }


def test_tfrecords_stream_chunks_into_shards_across_chunk_boundaries(cond, tmp_path):
    sampler = GeneratorSampler(cond[1])  # max_count 4: chunks of 4, 4, 2; shards of 4, 3, 3
    paths = write_samples(sampler, str(tmp_path), count=10, fmt="tfrecord", seed=6, shards=3)
    sizes = [sum(1 for _ in tf.data.TFRecordDataset(p)) for p in paths[:3]]
    assert sizes == [4, 3, 3]
    images, labels = load_arrays(str(tmp_path), "train")
    order = np.argsort(labels["case_id"])
    batch = sampler.generate_batch(10, seed=6)
    np.testing.assert_array_equal(
        np.rint((images[order] + 1) * 127.5).astype(np.uint8), schema.to_uint8(batch.images)
    )
    assert labels["case_id"][order].tolist() == batch.sample_ids
    with pytest.raises(ValueError, match="got 10 slices, expected count=12"):
        write_tfrecords(
            sampler.iter_batches(10, seed=6),
            str(tmp_path / "x"),
            gan="dcgan",
            plane="axial",
            count=12,
        )
    assert not (tmp_path / "x").exists() or not os.listdir(tmp_path / "x")
    with pytest.raises(ValueError, match="shards must be between 1 and the number of slices"):
        write_tfrecords(batch, str(tmp_path / "x"), gan="dcgan", plane="axial", shards=11)


def test_unconditional_multi_modality_records_say_modality_unknown(uncond, tmp_path):
    write_samples(uncond[1], str(tmp_path), count=3, fmt="tfrecord", seed=1)
    _, labels = load_arrays(str(tmp_path), "train")
    assert labels["modality"].tolist() == [-1, -1, -1]
    assert labels["tumour_fraction"].tolist() == [-1.0, -1.0, -1.0]
    batch = GeneratorSampler(uncond[1]).generate_batch(2)
    with pytest.raises(ValueError, match="plane must be one of"):
        write_tfrecords(batch, str(tmp_path / "x"), gan="wgan", plane=None)
    # An export that does not know its plane needs one from the caller.
    base = tmp_path / "noplane"
    export.export_generator(uncond[0], str(base), metadata={"modalities": ["t2"]})
    with pytest.raises(ValueError, match=r"no plane: pass plane= \(--plane\)"):
        write_samples(str(base), str(tmp_path / "y"), count=2, fmt="tfrecord")
    write_samples(str(base), str(tmp_path / "y"), count=2, fmt="tfrecord", plane="coronal")
    _, labels = load_arrays(str(tmp_path / "y"), "train")
    assert labels["plane"].tolist() == [1, 1] and labels["modality"].tolist() == [2, 2]


def test_grid_shows_each_slice_large_and_captioned(tmp_path):
    from PIL import Image

    images = np.linspace(-1, 1, 5 * 4 * 4).reshape(5, 4, 4, 1).astype(np.float32)
    batch = SampleBatch(
        images,
        np.array([0, 1, 2, 3, 3], np.int32),
        np.array([0, 1, 0, 1, 0]),
        [f"s{i}" for i in range(5)],
        seed=0,
    )
    path = write_grid(
        batch, str(tmp_path / "grid.png"), display_size=64, columns=3, title="SYNTHETIC"
    )
    grid = np.asarray(Image.open(path))
    # 3 columns, 2 rows; gap 4, caption 12+8 (font 12 px for 64 px tiles), title 1 line 12+4+10.
    assert grid.shape == (26 + 2 * (64 + 20 + 4) + 4, 3 * 64 + 4 * 4)
    # Tile 4 (row 1, column 1) holds slice 4 upsampled 16x by nearest neighbour.
    x, y = 4 + 1 * (64 + 4), 26 + 1 * (64 + 20 + 4)
    expected = np.kron(schema.to_uint8(images[4, ..., 0]), np.ones((16, 16), np.uint8))
    np.testing.assert_array_equal(grid[y : y + 64, x : x + 64], expected)
    # A caption is drawn under each tile; the empty 6th slot stays black.
    assert grid[y + 64 : y + 84, x : x + 64].max() == 255
    assert grid[y : y + 84, 4 + 2 * 68 : 4 + 2 * 68 + 64].max() == 0
    assert grid[:26].max() == 255  # the "SYNTHETIC" title
    # A title too long for the grid wraps onto more lines instead of being cut off.
    long = np.asarray(
        Image.open(
            write_grid(
                batch,
                str(tmp_path / "long.png"),
                display_size=64,
                columns=3,
                title="SYNTHETIC slices from a conditional generator, not patient data, seed 0",
            )
        )
    )
    assert long.shape[1] == grid.shape[1] and (long.shape[0] - grid.shape[0]) % 16 == 0
    assert long.shape[0] - grid.shape[0] >= 32


def test_png_and_nifti_writers_keep_the_pixels(cond, tmp_path):
    import nibabel as nib
    from PIL import Image

    sampler = GeneratorSampler(cond[1])
    batch = sampler.generate_batch(4, seed=9)
    pixels = schema.to_uint8(batch.images[..., 0])
    paths = write_samples(sampler, str(tmp_path / "png"), count=4, fmt="png", seed=9)
    assert [Path(p).name for p in paths[:2]] == [
        "synthetic-dcgan-seed9-000000-t1-notumour.png",
        "synthetic-dcgan-seed9-000001-flair-notumour.png",
    ]
    for path, expected in zip(paths, pixels):
        np.testing.assert_array_equal(np.asarray(Image.open(path)), expected)
    big = write_samples(
        sampler,
        str(tmp_path / "big"),
        count=1,
        fmt="png",
        seed=9,
        display_size=48,
        resample="bicubic",
    )
    assert Image.open(big[0]).size == (48, 48)

    paths = write_samples(sampler, str(tmp_path / "nii"), count=4, fmt="nifti", seed=9)
    assert [Path(p).name for p in paths[:2]] == ["synthetic-t1.nii.gz", "synthetic-flair.nii.gz"]
    t1 = nib.load(paths[0])
    assert t1.shape == (SIZE, SIZE, 2) and t1.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(volume_to_slices(np.asarray(t1.dataobj)), pixels[[0, 2]])
    assert b"synthetic" in t1.header["descrip"].tobytes()


def test_volume_orientation_is_upright():
    # A slice whose top row is bright: in the volume the bright voxels are at the largest y.
    pixels = np.zeros((1, 3, 3), np.uint8)
    pixels[0, 0, :] = 255
    volume = slices_to_volume(pixels)
    assert volume.shape == (3, 3, 1)
    assert volume[:, 2, 0].tolist() == [255, 255, 255] and volume[:, :2].max() == 0
    np.testing.assert_array_equal(volume_to_slices(volume), pixels)


def test_sample_script_writes_a_grid(cond, tmp_path, capsys):
    from conftest import load_script
    from PIL import Image

    script = load_script("sample")
    script.main(
        [
            "--model",
            os.path.join(cond[1], "1"),
            "--count",
            "3",
            "--out",
            str(tmp_path),
            "--modality",
            "flair",
            "--tumour",
            "1",
            "--seed",
            "4",
        ]
    )
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == ["grid-seed4.png", "kgan_samples.json"]
    grid = Image.open(printed[0])
    assert grid.size[0] == 2 * 256 + 3 * 4  # 3 slices: 2 columns of 256 px
    manifest = json.loads(Path(printed[1]).read_text())
    assert {s["modality"] for s in manifest["samples"]} == {"flair"}
    with pytest.raises(SystemExit):
        script.main(
            ["--model", cond[1], "--count", "3", "--out", str(tmp_path), "--format", "jpeg"]
        )
    # A request the model cannot serve ends with exit status 2 and the reason, no traceback.
    with pytest.raises(SystemExit) as exit_info:
        script.main(
            ["--model", cond[1], "--count", "3", "--out", str(tmp_path), "--modality", "t2"]
        )
    assert exit_info.value.code == 2
    assert "modality 't2' is not one this generator was trained on" in capsys.readouterr().err


@pytest.mark.parametrize(
    "plane, codes",
    [("sagittal", ("P", "S", "R")), ("coronal", ("L", "S", "A")), ("axial", ("L", "A", "S"))],
)
def test_nifti_stack_has_the_planes_orientation_and_spacing(tmp_path, plane, codes):
    import nibabel as nib

    from kgan import slicing
    from kgan.sampling import STACK_AXIS, nifti_affine, write_nifti

    # Slices cut by kgan.slicing from a known RAS volume; a viewer that reorients the written stack
    # to RAS (as_closest_canonical) must find the volume's own voxels at the same places.
    size, picked = 8, [2, 3, 5]
    volume = np.random.default_rng(0).integers(0, 256, (size, size, size)).astype(np.uint8)
    axis = {"sagittal": 0, "coronal": 1, "axial": 2}[plane]
    pixels = np.stack([slicing._take(volume, axis, i) for i in picked])
    batch = SampleBatch(
        pixels[..., None].astype(np.float32) / 127.5 - 1.0,
        np.zeros(3, np.int32),
        None,
        ["a", "b", "c"],
        0,
    )
    (path,) = write_nifti(
        batch, str(tmp_path), plane=plane, description="kgan synthetic began seed 3"
    )
    image = nib.load(path)
    assert nib.aff2axcodes(image.affine) == codes
    assert np.allclose(image.header.get_zooms(), [240.0 / size] * 3)
    assert image.header.get_qform(coded=True)[1] and image.header.get_sform(coded=True)[1]
    canonical = nib.as_closest_canonical(image)
    assert nib.aff2axcodes(canonical.affine) == ("R", "A", "S")
    data = np.asarray(canonical.dataobj)
    assert data.shape[axis] == 3  # the stack runs along the plane's normal (x for sagittal)...
    np.testing.assert_array_equal(data, np.take(volume, picked, axis=axis))  # ...in the right place
    descrip = image.header["descrip"].tobytes().rstrip(b"\0")
    assert len(descrip) <= 80 and b"synthetic" in descrip and STACK_AXIS[plane].encode() in descrip
    np.testing.assert_allclose(
        nifti_affine(plane, size, 3) @ [3.5, 3.5, 1, 1], [0, 0, 0, 1], atol=1e-9
    )  # the stack's centre sits at the origin


def test_sample_writers_give_ordinary_permissions_under_two_umasks(cond, tmp_path):
    sampler = GeneratorSampler(cond[1])
    for mask, expected in ((0o022, 0o644), (0o077, 0o600)):
        old = os.umask(mask)
        try:
            written = []
            for fmt in ("grid", "png", "nifti", "tfrecord"):
                written += write_samples(
                    sampler, str(tmp_path / f"{mask:o}" / fmt), count=2, fmt=fmt
                )
        finally:
            os.umask(old)
        assert {os.stat(p).st_mode & 0o777 for p in written} == {expected}, mask


def test_sample_script_shows_one_bar_and_a_summary_not_a_line_per_file(cond, tmp_path, capfd):
    from conftest import load_script

    script = load_script("sample")
    out_dir = tmp_path / "pngs"
    script.main(["--model", cond[1], "--count", "50", "--out", str(out_dir), "--format", "png"])
    out, err = capfd.readouterr()
    assert len(list(out_dir.glob("*.png"))) == 50
    assert out.splitlines() == [
        str(out_dir / "kgan_samples.json")
    ]  # the manifest lists the 50 files
    lines = err.splitlines()  # stderr is not a terminal here: plain lines, about one per 10 %
    assert "\r" not in err and 1 <= len(lines) <= 12, lines
    assert lines[-1].startswith(
        f"kgan: wrote 50 synthetic slices as 50 png file(s) to {out_dir} in "
    )
    assert all("/s" in line for line in lines[:-1])  # progress lines say the rate
    assert len(lines) < 3 or "ETA" in lines[0]  # (a fast run may only print its 100 % line)
