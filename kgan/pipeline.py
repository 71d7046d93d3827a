"""The input pipeline: TFRecord slice shards to batches in [-1, 1].

`SliceStream` is training's resumable stream (slices held in memory, a seeded permutation per
pass); `load_slices` the element-wise tf.data pipeline; `load_arrays` a whole split for evaluation.

Reads the shards directly (not through `tfds.load`) so that parsing is
batched: one `parse_example` and one `decode_raw` per thousand records, which
is 2-3x faster than parsing records one by one. Works on TFDS-built datasets
and on the synthetic shards written by `kgan.sampling` alike, since both use
`kgan.schema`.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

from kgan import names, schema

_PARSE_BATCH = 1024
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset name or directory has no shards for a split."""


def resolve_dataset_dir(data: str, data_dir: str | None = None) -> str:
    """Finds the directory that holds a dataset's shards.

    Args:
      data: a directory holding `*.tfrecord*` shards (a TFDS version directory
        or a synthetic dataset), or a TFDS-style name "builder/config" (or
        "builder/config/version") under `data_dir`; the newest version wins.
      data_dir: the dataset home, `records/` by default.

    Returns:
      The directory path.

    Raises:
      DatasetNotFoundError: when nothing with shards is found.
    """
    if os.path.isdir(data) and glob.glob(os.path.join(data, "*.tfrecord*")):
        return data
    base = os.path.join(data_dir or names.DEFAULT_DATA_DIR, data)
    if os.path.isdir(base) and glob.glob(os.path.join(base, "*.tfrecord*")):
        return base
    if os.path.isdir(base):
        versions = sorted(
            (v for v in os.listdir(base) if _VERSION_RE.match(v)),
            key=lambda v: tuple(int(p) for p in v.split(".")),
        )
        for version in reversed(versions):
            candidate = os.path.join(base, version)
            if glob.glob(os.path.join(candidate, "*.tfrecord*")):
                return candidate
    raise DatasetNotFoundError(
        f"no slice dataset at {data!r} (looked in {os.path.abspath(data)} and "
        f"{os.path.abspath(base)}): build one with scripts/make_records.py"
    )


def shard_files(data: str, split: str = "train", data_dir: str | None = None) -> list[str]:
    """Lists the shard files of one split, sorted for determinism."""
    directory = resolve_dataset_dir(data, data_dir)
    files = sorted(glob.glob(os.path.join(directory, f"*-{split}.tfrecord*")))
    if not files:
        present = sorted(
            {
                os.path.basename(f).split(".tfrecord")[0].rsplit("-", 1)[-1]
                for f in glob.glob(os.path.join(directory, "*.tfrecord*"))
            }
        )
        raise DatasetNotFoundError(
            f"dataset {directory} has no {split!r} split (splits present: {present})"
        )
    return files


def image_size_of(files: Sequence[str]) -> int:
    """Reads the slice size from the first record (all records share it)."""
    for record in tf.data.TFRecordDataset(list(files)[:1]).take(1):
        parsed = tf.io.parse_single_example(record, {"image": schema.FEATURE_SPEC["image"]})
        n = len(parsed["image"].numpy())
        size = int(round(n**0.5))
        if size * size != n:
            raise ValueError(f"{files[0]}: image of {n} bytes is not a square uint8 slice")
        return size
    raise DatasetNotFoundError(f"{files[0]} holds no records")


def _parse_batch(serialized: tf.Tensor, size: int) -> dict:
    parsed = tf.io.parse_example(serialized, schema.FEATURE_SPEC)
    pixels = tf.io.decode_raw(parsed["image"], tf.uint8)
    parsed["image"] = tf.reshape(pixels, [-1, size, size, 1])
    return parsed


def _numeric_labels(record: dict) -> dict:
    """Keeps the labels a compiled train step can take (no strings)."""
    fraction = record["tumour_fraction"]
    return {
        "modality": tf.cast(record["modality"], tf.int32),
        "plane": tf.cast(record["plane"], tf.int32),
        "slice_index": tf.cast(record["slice_index"], tf.int32),
        "tumour_fraction": fraction,
        "tumour": tf.cast(fraction > schema.TUMOUR_PRESENT_FRACTION, tf.int32),
        "grade": tf.cast(record["grade"], tf.int32),
        "synthetic": tf.cast(record["synthetic"], tf.int32),
    }


def to_unit_range(images_uint8: tf.Tensor) -> tf.Tensor:
    """Stored uint8 pixels to float32 in [-1, 1], the generators' tanh range."""
    return tf.cast(images_uint8, tf.float32) / 127.5 - 1.0


def slice_records(
    data: str,
    split: str = "train",
    *,
    modalities: Iterable[str] | None = None,
    data_dir: str | None = None,
    with_ids: bool = False,
) -> tf.data.Dataset:
    """One split's slices, one element each, in file order: (uint8 image [S, S, 1], labels).

    Shards are interleaved and parsed in large batches, then filtered by
    modality. The first stage of `load_slices` and of training's in-memory stream.

    Args:
      data: dataset name or directory (see `resolve_dataset_dir`).
      split: "train", "validation" or "test".
      modalities: names from `names.MODALITIES` to keep; all when None.
      data_dir: the dataset home for names.
      with_ids: add "case_id" and "source" strings to the labels (not for
        compiled train steps).
    """
    files = shard_files(data, split, data_dir)
    size = image_size_of(files)
    keep = None
    if modalities is not None:
        wanted = list(modalities)
        unknown = [m for m in wanted if m not in names.MODALITIES]
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; choose from {names.MODALITIES}")
        keep = tf.constant([names.MODALITIES.index(m) for m in wanted], tf.int64)

    files_ds = tf.data.Dataset.from_tensor_slices(files)
    ds = files_ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    ds = ds.batch(_PARSE_BATCH).map(
        lambda s: _parse_batch(s, size), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    ds = ds.unbatch()
    if keep is not None:
        ds = ds.filter(lambda r: tf.reduce_any(tf.equal(r["modality"], keep)))

    def split_record(record):
        labels = _numeric_labels(record)
        if with_ids:
            labels["case_id"] = record["case_id"]
            labels["source"] = record["source"]
        return record["image"], labels

    return ds.map(split_record, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def load_slices(
    data: str,
    split: str = "train",
    *,
    batch_size: int = 64,
    modalities: Iterable[str] | None = None,
    data_dir: str | None = None,
    shuffle_seed: int | None = 0,
    shuffle_buffer: int = 10_000,
    cache: bool = True,
    drop_remainder: bool = True,
    repeat: bool = False,
    with_ids: bool = False,
) -> tf.data.Dataset:
    """Builds the tf.data pipeline of (images, labels) for evaluation and general use.

    `slice_records`, cached in memory, shuffled with a seed, batched, mapped
    to [-1, 1] and prefetched. (Training uses `SliceStream` below,
    which gathers whole batches from memory and resumes at any step.)

    Args:
      data: dataset name or directory (see `resolve_dataset_dir`).
      split: "train", "validation" or "test".
      batch_size: images per batch.
      modalities: names from `names.MODALITIES` to keep; all when None.
      data_dir: the dataset home for names.
      shuffle_seed: seed of the shuffle (same seed, same order); None to
        keep file order (evaluation).
      shuffle_buffer: shuffle buffer size in slices.
      cache: keep the decoded slices in memory after the first epoch.
      drop_remainder: drop a last partial batch (static shapes for XLA).
      repeat: repeat forever.
      with_ids: add "case_id" and "source" strings to the labels (not for
        compiled train steps).

    Returns:
      A dataset of (images float32 [B, S, S, 1] in [-1, 1], labels dict of
      int32/float32 [B] tensors).
    """
    ds = slice_records(data, split, modalities=modalities, data_dir=data_dir, with_ids=with_ids)
    if cache:
        ds = ds.cache()
    if shuffle_seed is not None:
        ds = ds.shuffle(shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda x, y: (to_unit_range(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def load_arrays(
    data: str,
    split: str,
    *,
    modalities: Iterable[str] | None = None,
    data_dir: str | None = None,
) -> tuple[np.ndarray, dict]:
    """Loads a whole split into memory, in file order (for evaluation).

    Returns:
      images float32 [N, S, S, 1] in [-1, 1] and a dict of label arrays,
      including "case_id" as Python strings.
    """
    ds = load_slices(
        data,
        split,
        batch_size=4096,
        modalities=modalities,
        data_dir=data_dir,
        shuffle_seed=None,
        cache=False,
        drop_remainder=False,
        with_ids=True,
    )
    images, labels = [], {}
    for x, y in ds:
        images.append(x.numpy())
        for key, value in y.items():
            labels.setdefault(key, []).append(value.numpy())
    if not images:
        raise DatasetNotFoundError(
            f"dataset {data!r} split {split!r} has no slices for {modalities}"
        )
    out = {k: np.concatenate(v) for k, v in labels.items()}
    for key in ("case_id", "source"):
        out[key] = np.array([s.decode("utf-8") for s in out[key]])
    return np.concatenate(images), out


# --- training's stream -------------------------------------------------------------------------


class SliceStream:
    """An endless, resumable stream of training batches, gathered from slices held in memory.

    The split's uint8 slices and numeric labels are read once into memory, in file order (the
    size a cached tf.data pipeline would hold too). Pass p over them is the permutation drawn
    with the stateless seed (seed, p), cut into batches; a batch is then one gather and one
    uint8 -> [-1, 1] map, so its cost grows with the batch, not with a tf.data element per
    slice, and the stream keeps ahead of a GPU's step (docs/training.md#benchmark). The stream
    at position s (in batches) starts at pass s // batches_per_pass and skips
    s % batches_per_pass batches, so a run that restarts at step s sees exactly what an
    uninterrupted run saw from step s on.
    """

    def __init__(
        self, dataset_dir: str, *, split: str, batch_size: int, modalities, seed: int
    ) -> None:
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        with tf.device("/CPU:0"):  # the host holds the data; each batch is copied to the device
            chunks = list(slice_records(dataset_dir, split, modalities=modalities).batch(1024))
            self.count = sum(int(x.shape[0]) for x, _ in chunks)
            if self.count < self.batch_size:
                raise ValueError(
                    f"{dataset_dir} split {split!r} has {self.count} slices for modalities "
                    f"{list(modalities) if modalities is not None else 'all'}: fewer than one "
                    f"batch of {self.batch_size}"
                )
            self.images = tf.concat([x for x, _ in chunks], axis=0)
            self.labels = {
                key: tf.concat([y[key] for _, y in chunks], axis=0) for key in chunks[0][1]
            }
        del chunks  # the one copy left is self.images: about the size of the shards
        self.batches_per_pass = self.count // self.batch_size

    def pass_indices(self, index: tf.Tensor) -> tf.data.Dataset:
        """Pass `index` over the data: [batches_per_pass, batch_size] slice indices."""
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(index, tf.int64)])
        order = tf.random.experimental.stateless_shuffle(tf.range(self.count), seed=seed)
        used = self.batches_per_pass * self.batch_size
        return tf.data.Dataset.from_tensor_slices(
            tf.reshape(order[:used], [self.batches_per_pass, self.batch_size])
        )

    def gather(self, indices: tf.Tensor):
        """One batch: (images float32 in [-1, 1], labels) of the slices at `indices`."""
        return (
            to_unit_range(tf.gather(self.images, indices)),
            {key: tf.gather(value, indices) for key, value in self.labels.items()},
        )

    def from_position(
        self, position: int, steps: int, *, shard: tuple[int, int] = (0, 1), shards: int = 1
    ) -> tf.data.Dataset:
        """The `steps` batches that follow `position` batches of the stream.

        Args:
          position: batches of the stream already consumed.
          steps: batches to yield.
          shard: (first, count): with `shards` > 1, yield, for every batch, its parts
            first .. first + count - 1 (each a dataset element) instead of the whole batch:
            a worker of a multi-worker run feeds its local replicas, and gathers only the
            slices they train on (`kgan.distribute.distributed_stream`).
          shards: equal parts each batch is cut into (the run's replicas).
        """
        if steps <= 0:
            raise ValueError(f"steps must be positive, got {steps}")
        first, skip = divmod(int(position), self.batches_per_pass)
        last = (int(position) + int(steps) - 1) // self.batches_per_pass
        ds = tf.data.Dataset.range(first, last + 1).flat_map(self.pass_indices)
        if skip:
            ds = ds.skip(skip)
        ds = ds.take(int(steps))
        if shards > 1:
            part_first, part_count = shard
            if self.batch_size % shards or not 0 <= part_first < part_first + part_count <= shards:
                raise ValueError(
                    f"cannot give parts {part_first}..{part_first + part_count - 1} of {shards} "
                    f"equal parts of a batch of {self.batch_size} slices"
                )
            part = self.batch_size // shards
            ds = ds.flat_map(
                lambda indices: tf.data.Dataset.from_tensor_slices(
                    tf.reshape(indices, [shards, part])[part_first : part_first + part_count]
                )
            )
        ds = ds.map(self.gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)
