"""The tf.data pipeline reads schema shards into [-1, 1] batches, by split and modality."""

import numpy as np
import pytest
import tensorflow as tf

from kgan import names, pipeline, schema


def _write_shards(directory, split, rows, shards=2, size=8, prefix="toy"):
    """Writes rows (modality, value, case) as uniform images of that value."""
    for k in range(shards):
        path = directory / f"{prefix}-{split}.tfrecord-{k:05d}-of-{shards:05d}"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for modality, value, case in rows[k::shards]:
                image = np.full((size, size), value, np.uint8)
                writer.write(
                    schema.encode_example(
                        image,
                        modality=modality,
                        plane=0,
                        slice_index=value,
                        case_id=case,
                        tumour_fraction=0.5 if value % 2 else 0.0,
                        source="test",
                    )
                )


@pytest.fixture
def toy_dir(tmp_path):
    rows = [(i % 4, i, f"case{i // 8}") for i in range(40)]
    _write_shards(tmp_path, "train", rows)
    _write_shards(tmp_path, "test", rows[:8], shards=1)
    return tmp_path


def test_batches_are_scaled_and_complete(toy_dir):
    ds = pipeline.load_slices(str(toy_dir), "train", batch_size=8, shuffle_seed=None)
    images, labels = zip(*[(x.numpy(), y) for x, y in ds])
    assert all(x.shape == (8, 8, 8, 1) and x.dtype == np.float32 for x in images)
    values = sorted(int(v) for y in labels for v in y["slice_index"].numpy())
    assert values == list(range(40))  # every slice once, none duplicated
    flat = np.concatenate(images)
    # pixel value v maps to v / 127.5 - 1 and labels stay with their image
    index = np.concatenate([y["slice_index"].numpy() for y in labels])
    np.testing.assert_allclose(flat[:, 0, 0, 0], index / 127.5 - 1.0, atol=1e-6)
    tumour = np.concatenate([y["tumour"].numpy() for y in labels])
    np.testing.assert_array_equal(tumour, index % 2)


def test_uint8_extremes_map_to_unit_range():
    out = pipeline.to_unit_range(tf.constant([0, 255], tf.uint8)).numpy()
    np.testing.assert_allclose(out, [-1.0, 1.0])
    back = schema.to_uint8(out)
    np.testing.assert_array_equal(back, [0, 255])


def test_modality_filter_and_drop_remainder(toy_dir):
    ds = pipeline.load_slices(str(toy_dir), "train", batch_size=4, modalities=["flair"])
    mods = np.concatenate([y["modality"].numpy() for _, y in ds])
    assert set(mods) == {names.MODALITIES.index("flair")}
    assert len(mods) == 8  # 10 flair slices, batches of 4, remainder dropped


def test_same_seed_same_order(toy_dir):
    def order(seed):
        ds = pipeline.load_slices(str(toy_dir), "train", batch_size=40, shuffle_seed=seed)
        return next(iter(ds))[1]["slice_index"].numpy()

    np.testing.assert_array_equal(order(3), order(3))
    assert not np.array_equal(order(3), order(4))


def test_names_resolve_to_newest_version(tmp_path):
    for version in ("1.0.0", "1.2.0"):
        d = tmp_path / "phantom_slices" / "sagittal_8" / version
        d.mkdir(parents=True)
        _write_shards(d, "train", [(0, 7 if version == "1.2.0" else 3, "c")], shards=1)
    found = pipeline.resolve_dataset_dir("phantom_slices/sagittal_8", str(tmp_path))
    assert found.endswith("1.2.0")
    x, y = pipeline.load_arrays("phantom_slices/sagittal_8", "train", data_dir=str(tmp_path))
    assert y["case_id"].tolist() == ["c"] and y["slice_index"].tolist() == [7]


def test_missing_dataset_and_split_are_named(toy_dir, tmp_path):
    with pytest.raises(pipeline.DatasetNotFoundError, match="make_records"):
        pipeline.load_slices("nope/sagittal_64", data_dir=str(tmp_path / "empty"))
    with pytest.raises(pipeline.DatasetNotFoundError, match="'validation'.*train"):
        pipeline.load_slices(str(toy_dir), "validation")
    with pytest.raises(ValueError, match="unknown modalities"):
        pipeline.load_slices(str(toy_dir), modalities=["dwi"])


def test_non_square_record_is_rejected(tmp_path):
    path = tmp_path / "bad-train.tfrecord-00000-of-00001"
    example = tf.train.Example(
        features=tf.train.Features(
            feature={"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"\x00" * 10]))}
        )
    )
    with tf.io.TFRecordWriter(str(path)) as w:
        w.write(example.SerializeToString())
    with pytest.raises(ValueError, match="bad-train.*not a square"):
        pipeline.image_size_of([str(path)])


def test_encode_rejects_wrong_images():
    with pytest.raises(ValueError, match="uint8"):
        schema.encode_example(
            np.zeros((4, 4), np.float32),
            modality=0,
            plane=0,
            slice_index=0,
            case_id="c",
            tumour_fraction=0.0,
        )
    with pytest.raises(ValueError, match="square"):
        schema.encode_example(
            np.zeros((4, 5), np.uint8),
            modality=0,
            plane=0,
            slice_index=0,
            case_id="c",
            tumour_fraction=0.0,
        )
