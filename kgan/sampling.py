"""Draw synthetic slices from an exported generator and write them where people need them.

`GeneratorSampler` loads only the SavedModel (``tf.saved_model.load``) and its
``assets.extra/kgan_metadata.json``: no kgan model code and no Keras, so any pipeline with
TensorFlow can draw slices. Writers turn a batch into:

* ``grid``: one PNG of all slices, each upsampled to ``display_size`` pixels (default 256)
  and captioned with its modality, under a title that says the images are synthetic;
* ``png``: one PNG per slice (native size unless ``display_size`` is given);
* ``nifti``: one uint8 NIfTI stack per modality, slices along the third axis, with the
  orientation and nominal spacing of the plane the generator was trained on (see
  `nifti_affine`), so viewers show a sagittal slice as sagittal;
* ``tfrecord``: shards ``synthetic-<split>.tfrecord-0000k-of-0000n`` in the `kgan.schema`
  record format (``synthetic=1``), which `kgan.pipeline.load_slices(DIR, split)` reads, so a
  training pipeline mixes them in with one line::

      mixed = tf.data.Dataset.sample_from_datasets(
          [load_slices(real_dir), load_slices(synthetic_dir)], weights=[0.7, 0.3], seed=0)

Labels the generator cannot know are written as "unknown" values, documented in
docs/serving.md: ``slice_index=-1``, ``grade=0`` ("unknown"); ``tumour_fraction`` is the
requested condition (1.0 or 0.0) for conditional generators and -1.0 for unconditional ones;
``modality`` is -1 for an unconditional generator trained on several modalities.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from kgan import atomic, imaging, names, schema, serving
from kgan import progress as progress_lib

FORMATS = ("grid", "png", "nifti", "tfrecord")
DEFAULT_DISPLAY_SIZE = 256
UNKNOWN_MODALITY = -1


# --------------------------------------------------------------------------------------------
# Loading


@dataclasses.dataclass
class SampleBatch:
    """Generated slices with the conditions and ids that writers label them with."""

    images: np.ndarray  # float32 [N, S, S, 1] in [-1, 1]
    modality: np.ndarray  # int32 [N], index into names.MODALITIES or UNKNOWN_MODALITY
    tumour: np.ndarray | None  # int32 [N] (0/1) for conditional generators, else None
    sample_ids: list[str]
    seed: int


class GeneratorSampler:
    """Draws slices from an exported generator without any kgan model code.

    Args:
      path: an export version directory (``exports/NAME/3``) or base (``exports/NAME``; the
        newest version is used).

    Attributes:
      path: the version directory loaded.
      metadata: the export's kgan_metadata.json as a dict.
      image_size, latent_dim, conditional, max_count, gan: from the metadata.
      modalities: names of the modalities the generator was trained on.
    """

    def __init__(self, path: str):
        self.path = serving.resolve_export_dir(path)
        meta_path = os.path.join(self.path, "assets.extra", serving.METADATA_FILE)
        try:
            with open(meta_path) as f:
                self.metadata: dict[str, Any] = json.load(f)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f"{meta_path} is missing: {self.path} was not written by kgan.export"
            ) from e
        self._model = tf.saved_model.load(self.path)
        for name in serving.SIGNATURES:
            if name not in self._model.signatures:
                raise ValueError(
                    f"{self.path} has no {name!r} signature (has {sorted(self._model.signatures)})"
                )
        self.image_size = int(self.metadata["image_size"])
        self.latent_dim = int(self.metadata["latent_dim"])
        self.conditional = bool(self.metadata["conditional"])
        self.max_count = int(self.metadata.get("max_count", 1024))
        self.gan = str(self.metadata.get("gan", "unknown"))
        self.modalities = list(self.metadata.get("modalities") or names.MODALITIES)

    @property
    def signatures(self):
        """The SavedModel's signatures (serving_default, sample)."""
        return self._model.signatures

    # -- conditions -------------------------------------------------------------------------

    def _modality_index(self, value) -> int:
        if isinstance(value, (str, np.str_)):
            name = str(value).lower()
            if name not in names.MODALITIES:
                raise ValueError(f"unknown modality '{value}'; choose from {self.modalities}")
            index = names.MODALITIES.index(name)
        else:
            index = int(value)
        if not 0 <= index < len(names.MODALITIES) or names.MODALITIES[index] not in self.modalities:
            raise ValueError(
                f"modality '{value}' is not one this generator was trained on ({self.modalities})"
            )
        return index

    def conditions(self, count: int, modality=None, tumour=None):
        """Resolves per-sample (modality, tumour) int32 arrays for `count` samples.

        For conditional generators, None draws a balanced mix: sample i gets the
        (i mod M)-th trained modality and tumour ((i div M) mod 2). Scalars broadcast; strings
        name modalities. For unconditional generators tumour is None and modality is the single
        trained modality, or UNKNOWN_MODALITY (-1) when it was trained on several.
        """
        n_mod = len(self.modalities)
        if not self.conditional:
            if tumour is not None:
                raise ValueError("this generator is unconditional: it cannot be asked for a tumour")
            trained = self._modality_index(self.modalities[0]) if n_mod == 1 else UNKNOWN_MODALITY
            if modality is not None:
                asked = {self._modality_index(m) for m in np.atleast_1d(np.asarray(modality))}
                if asked != {trained}:
                    raise ValueError(
                        f"this generator is unconditional (trained on {self.modalities}): "
                        "it cannot be asked for a modality"
                    )
            return np.full([count], trained, np.int32), None
        index = np.arange(count)
        if modality is None:
            mods = np.array([self._modality_index(m) for m in self.modalities], np.int32)[
                index % n_mod
            ]
        else:
            values = np.atleast_1d(np.asarray(modality))
            mods = np.array([self._modality_index(m) for m in values], np.int32)
            mods = _broadcast(mods, count, "modality")
        if tumour is None:
            tums = ((index // n_mod) % 2).astype(np.int32)
        else:
            tums = _broadcast(np.atleast_1d(np.asarray(tumour)).astype(np.int32), count, "tumour")
            if not np.isin(tums, (0, 1)).all():
                raise ValueError(f"tumour must be 0 or 1, got {sorted(set(tums.tolist()))}")
        return mods, tums

    # -- drawing ----------------------------------------------------------------------------

    def latents(self, count: int, seed: int = 0) -> np.ndarray:
        """The latent vectors `generate` uses: chunk k of max_count from stream [seed, k]."""
        chunks = [
            serving.latent_vectors(
                seed, min(self.max_count, count - start), self.latent_dim, start // self.max_count
            ).numpy()
            for start in range(0, count, self.max_count)
        ]
        return np.concatenate(chunks) if chunks else np.zeros([0, self.latent_dim], np.float32)

    def iter_batches(
        self, count: int, seed: int = 0, modality=None, tumour=None
    ) -> Iterator[SampleBatch]:
        """Yields the slices of `generate_batch` in chunks of at most max_count (bounded memory)."""
        count = int(count)
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        mods, tums = self.conditions(count, modality, tumour)
        serve = self._model.signatures[serving.SERVING_SIGNATURE]
        for start in range(0, count, self.max_count):
            stop = min(count, start + self.max_count)
            inputs = {
                serving.LATENT: serving.latent_vectors(
                    seed, stop - start, self.latent_dim, start // self.max_count
                )
            }
            if self.conditional:
                inputs[serving.MODALITY] = tf.constant(mods[start:stop])
                inputs[serving.TUMOUR] = tf.constant(tums[start:stop])
            yield SampleBatch(
                serve(**inputs)[serving.IMAGES].numpy(),
                mods[start:stop],
                None if tums is None else tums[start:stop],
                [sample_id(self.gan, seed, i) for i in range(start, stop)],
                int(seed),
            )

    def generate_batch(self, count: int, seed: int = 0, modality=None, tumour=None) -> SampleBatch:
        """Like `generate`, also returning the conditions and sample ids."""
        return concat_batches(list(self.iter_batches(count, seed, modality, tumour)))

    def generate(self, count: int, seed: int = 0, modality=None, tumour=None) -> np.ndarray:
        """Generates `count` slices, float32 [N, S, S, 1] in [-1, 1], deterministic per seed.

        For a single modality and tumour value and count <= max_count this equals the exported
        `sample` signature's images for the same seed.
        """
        return self.generate_batch(count, seed, modality, tumour).images

    def sample(self, seed: int, count: int, modality=None, tumour=None) -> dict:
        """Calls the exported `sample` signature (what a TF Serving client gets).

        Returns:
          {"images": float32 [N, S, S, 1], "png_bytes": list of PNG bytes}.
        """
        inputs = {
            serving.SEED: tf.constant(seed, tf.int64),
            serving.COUNT: tf.constant(count, tf.int32),
        }
        if self.conditional:
            if modality is None or tumour is None:
                raise ValueError("a conditional generator's sample needs modality and tumour")
            inputs[serving.MODALITY] = tf.constant(self._modality_index(modality), tf.int32)
            inputs[serving.TUMOUR] = tf.constant(int(tumour), tf.int32)
        out = self._model.signatures[serving.SAMPLE_SIGNATURE](**inputs)
        return {
            serving.IMAGES: out[serving.IMAGES].numpy(),
            serving.PNG_OUTPUT: list(out[serving.PNG_OUTPUT].numpy()),
        }


def sample_id(gan: str, seed: int, index: int) -> str:
    """The case_id of a synthetic slice: unique per (generator kind, seed, position)."""
    return f"synthetic-{gan}-seed{seed}-{index:06d}"


def concat_batches(batches: Sequence[SampleBatch]) -> SampleBatch:
    """Joins consecutive chunks from `GeneratorSampler.iter_batches` into one batch."""
    return SampleBatch(
        np.concatenate([b.images for b in batches]),
        np.concatenate([b.modality for b in batches]),
        None if batches[0].tumour is None else np.concatenate([b.tumour for b in batches]),
        [i for b in batches for i in b.sample_ids],
        batches[0].seed,
    )


def _broadcast(values: np.ndarray, count: int, name: str) -> np.ndarray:
    if values.size == 1:
        return np.full([count], values.reshape(-1)[0], np.int32)
    if values.size != count:
        raise ValueError(f"{name} has {values.size} entries for {count} samples")
    return values.astype(np.int32)


# --------------------------------------------------------------------------------------------
# Pixels


def caption(batch: SampleBatch, i: int) -> str:
    """The text under slice i of a grid: modality (and tumour condition when conditional)."""
    index = int(batch.modality[i])
    text = names.MODALITY_DISPLAY_NAMES[names.MODALITIES[index]] if index >= 0 else f"#{i}"
    if batch.tumour is not None:
        text += " · tumour" if batch.tumour[i] else " · no tumour"
    return text


# --------------------------------------------------------------------------------------------
# Writers


def write_grid(
    batch: SampleBatch,
    path: str,
    *,
    display_size: int = DEFAULT_DISPLAY_SIZE,
    columns: int | None = None,
    resample: str = "nearest",
    title: str | None = None,
) -> str:
    """Writes one PNG with every slice upsampled to `display_size` and captioned.

    Args:
      batch: slices and their labels.
      path: the .png to write.
      display_size: pixels per slice side on screen ("show me bigger images").
      columns: slices per row; about sqrt(N) by default.
      resample: "nearest" (shows the true pixels) or "bicubic" (smoother).
      title: text above the grid; says "SYNTHETIC" and the GAN by default.
    """
    title = title or f"SYNTHETIC slices (seed {batch.seed}) - not patient data"
    pixels = schema.to_uint8(batch.images[..., 0])
    captions = [caption(batch, i) for i in range(len(pixels))]
    grid = imaging.display_grid(
        pixels, captions, title=title, display_size=display_size, columns=columns, resample=resample
    )
    return imaging.write_png(grid, path)


def write_pngs(
    batch: SampleBatch,
    out_dir: str,
    *,
    display_size: int | None = None,
    resample: str = "nearest",
    bar: progress_lib.Progress | None = None,
) -> list[str]:
    """Writes one 8-bit grayscale PNG per slice, named by sample id and modality.

    Args:
      bar: counts each file written (a long --count shows a rate and an ETA).
    """
    os.makedirs(out_dir, exist_ok=True)
    pixels = schema.to_uint8(batch.images[..., 0])
    paths = []
    for i, sample_id in enumerate(batch.sample_ids):
        index = int(batch.modality[i])
        label = names.MODALITIES[index] if index >= 0 else "any"
        if batch.tumour is not None:
            label += "-tumour" if batch.tumour[i] else "-notumour"
        path = os.path.join(out_dir, f"{sample_id}-{label}.png")
        imaging.write_png(imaging.upsample(pixels[i], display_size, resample), path)
        paths.append(path)
        if bar is not None:
            bar.update(1)
    return paths


def slices_to_volume(pixels: np.ndarray) -> np.ndarray:
    """[N, S, S] image rows (top row first) to a [S, S, N] volume a NIfTI viewer shows upright.

    Voxel (x, y, k) is pixel (row S-1-y, column x) of slice k: x runs left to right and y
    bottom to top, as viewers display the first two axes.
    """
    return np.ascontiguousarray(np.transpose(pixels[:, ::-1, :], (2, 1, 0)))


def volume_to_slices(volume: np.ndarray) -> np.ndarray:
    """Inverse of `slices_to_volume`."""
    return np.ascontiguousarray(np.transpose(volume, (2, 1, 0))[:, ::-1, :])


#: Side of the BraTS grid's field of view that slices are resized from: 240 x 240 x 155 voxels
#: of 1 mm, and every plane's longer in-plane side is 240 mm (kgan.slicing pads to a square).
BRATS_FOV_MM = 240.0
#: Per plane, the RAS world direction of NIfTI voxel axis 0 (image columns, left to right),
#: axis 1 (image rows, bottom to top) and axis 2 (the stack), from `kgan.slicing`'s display
#: orientation: sagittal shows anterior on the left, superior up; coronal and axial are
#: radiological (patient's right on the left), superior / anterior up.
PLANE_AXES = {
    "sagittal": ((0, -1, 0), (0, 0, 1), (1, 0, 0)),
    "coronal": ((-1, 0, 0), (0, 0, 1), (0, 1, 0)),
    "axial": ((-1, 0, 0), (0, 1, 0), (0, 0, 1)),
}
#: The world axis each plane's stack runs along, as said in the NIfTI ``descrip`` field.
STACK_AXIS = {"sagittal": "x (L-R)", "coronal": "y (P-A)", "axial": "z (I-S)"}


def nifti_affine(plane: str, size: int, count: int, pixel_mm: float | None = None) -> np.ndarray:
    """The voxel-to-RAS affine of a stack written by `slices_to_volume`.

    Voxels are cubes of `pixel_mm` (default ``BRATS_FOV_MM / size``: the whole 240 mm BraTS
    field of view over `size` pixels, an upper bound since kgan.slicing crops to the brain's box
    first) and the stack is centred on the origin. The stack's third axis holds independent
    samples, not neighbouring slices; it runs along the plane's normal so viewers keep the plane.
    """
    if plane not in PLANE_AXES:
        raise ValueError(f"plane must be one of {names.PLANES}, got {plane!r}")
    spacing = float(pixel_mm) if pixel_mm else BRATS_FOV_MM / int(size)
    affine = np.eye(4)
    affine[:3, :3] = np.array(PLANE_AXES[plane], np.float64).T * spacing
    affine[:3, 3] = -affine[:3, :3] @ ((np.array([size, size, count], np.float64) - 1.0) / 2.0)
    return affine


def nifti_description(plane: str, head: str = "kgan synthetic, not patient data") -> str:
    """The ``descrip`` text (at most 79 ASCII bytes): what the stack is, what its 3rd axis means."""
    meaning = f"3rd axis: sample no., stacked along {STACK_AXIS[plane]}"
    head = head.encode("ascii", "replace").decode()[: 79 - len(meaning) - 2].rstrip()
    return f"{head}; {meaning}"


def write_nifti(
    batch: SampleBatch,
    out_dir: str,
    *,
    plane: str,
    description: str = "",
    pixel_mm: float | None = None,
) -> list[str]:
    """Writes uint8 NIfTI stacks, one per modality, with the plane's orientation and spacing.

    Args:
      batch: slices and their labels.
      out_dir: the folder for ``synthetic-<modality>.nii.gz``.
      plane: the plane the generator was trained on (sets the orientation, `nifti_affine`).
      description: start of the header's ``descrip`` (the stacking axis is always added).
      pixel_mm: voxel side in mm, when known better than the nominal ``240 / size``.
    """
    import nibabel as nib

    os.makedirs(out_dir, exist_ok=True)
    pixels = schema.to_uint8(batch.images[..., 0])
    paths = []
    for index in sorted(set(batch.modality.tolist())):
        keep = batch.modality == index
        name = names.MODALITIES[index] if index >= 0 else "any"
        volume = slices_to_volume(pixels[keep])
        affine = nifti_affine(plane, volume.shape[0], volume.shape[2], pixel_mm)
        image = nib.Nifti1Image(volume, affine)
        image.set_qform(affine, code="aligned")
        image.set_sform(affine, code="aligned")
        image.header.set_xyzt_units("mm")
        image.header["descrip"] = nifti_description(
            plane, description or f"kgan synthetic {name}, not patient data"
        )
        path = os.path.join(out_dir, f"synthetic-{name}.nii.gz")
        with atomic.atomic_path(path, suffix=".nii.gz") as tmp:
            nib.save(image, tmp)
        paths.append(path)
    return paths


def shard_name(split: str, index: int, shards: int) -> str:
    """``synthetic-<split>.tfrecord-0000k-of-0000n``, matched by `load_slices(DIR, split)`."""
    return f"synthetic-{split}.tfrecord-{index:05d}-of-{shards:05d}"


def write_tfrecords(
    batches: SampleBatch | Iterable[SampleBatch],
    out_dir: str,
    *,
    gan: str,
    plane: str,
    split: str = "train",
    shards: int = 1,
    count: int | None = None,
) -> list[str]:
    """Writes the slices as `kgan.schema` records marked synthetic.

    Streams: chunks are written as they come, so the slices need not fit in memory. Each shard
    is written to a hidden temporary file and renamed into place; shards of the same split left
    by an earlier call with another shard count are removed afterwards, so the directory always
    holds exactly one consistent synthetic split.

    Args:
      batches: one SampleBatch, or chunks of one (e.g. `GeneratorSampler.iter_batches`).
      out_dir: the dataset directory (give it to `kgan.pipeline.load_slices`).
      gan: recorded as source "synthetic:<gan>".
      plane: name in `names.PLANES` the generator was trained on.
      split: split name in the file names.
      shards: number of files (consecutive samples; sizes differ by at most one).
      count: total number of slices when `batches` is an iterator (to size the shards).
    """
    if plane not in names.PLANES:
        raise ValueError(
            f"plane must be one of {names.PLANES}, got {plane!r}: the export's "
            "metadata has no plane; pass plane= (--plane)"
        )
    if isinstance(batches, SampleBatch):
        batches, count = [batches], len(batches.images)
    if count is None:
        raise ValueError("count is needed when batches is an iterator")
    if not 1 <= shards <= max(1, count):
        raise ValueError(
            f"shards must be between 1 and the number of slices ({count}), got {shards}"
        )
    os.makedirs(out_dir, exist_ok=True)
    plane_index = names.PLANES.index(plane)
    sizes = [len(part) for part in np.array_split(np.arange(count), shards)]
    paths = []
    shard, left, writer, written = -1, 0, None, 0
    # Every shard goes to its own atomic temporary file; all are moved into place together when
    # the last one is complete, and all are removed if anything fails.
    with contextlib.ExitStack() as shard_files:
        try:
            for batch in batches:
                pixels = schema.to_uint8(batch.images)
                for i in range(len(pixels)):
                    while left == 0:  # next shard
                        if writer is not None:
                            writer.close()
                        shard += 1
                        paths.append(os.path.join(out_dir, shard_name(split, shard, shards)))
                        tmp = shard_files.enter_context(atomic.atomic_path(paths[-1]))
                        writer, left = tf.io.TFRecordWriter(tmp), sizes[shard]
                    fraction = float(batch.tumour[i]) if batch.tumour is not None else -1.0
                    writer.write(
                        schema.encode_example(
                            pixels[i],
                            modality=int(batch.modality[i]),
                            plane=plane_index,
                            slice_index=-1,
                            case_id=batch.sample_ids[i],
                            tumour_fraction=fraction,
                            grade=0,
                            source=f"synthetic:{gan}",
                            synthetic=True,
                        )
                    )
                    left -= 1
                    written += 1
            if written != count or shard != shards - 1:
                raise ValueError(f"got {written} slices, expected count={count}")
        finally:
            if writer is not None:
                writer.close()
    keep = {os.path.basename(p) for p in paths}
    prefix = f"synthetic-{split}.tfrecord-"
    for name in os.listdir(out_dir):
        if name.startswith(prefix) and name not in keep:
            os.remove(os.path.join(out_dir, name))
    return paths


def write_samples(
    model: str | GeneratorSampler,
    out_dir: str,
    *,
    count: int,
    fmt: str = "grid",
    seed: int = 0,
    modality=None,
    tumour=None,
    display_size: int | None = None,
    resample: str = "nearest",
    plane: str | None = None,
    split: str = "train",
    shards: int = 1,
    progress: bool = False,
) -> list[str]:
    """Draws `count` slices from an export and writes them in one format (scripts/sample.py).

    Also writes ``kgan_samples.json``: the export, seed and per-sample ids and conditions.

    Args:
      plane: for nifti and tfrecord, when the export's metadata has none.
      progress: show one progress bar (rate, ETA) on stderr and end with a one-line summary.

    Returns:
      The paths written (data files first, the manifest last).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    sampler = model if isinstance(model, GeneratorSampler) else GeneratorSampler(model)
    mods, tums = sampler.conditions(int(count), modality, tumour)  # fail fast on bad requests
    if fmt in ("tfrecord", "nifti"):
        plane = plane or sampler.metadata.get("plane")
        if plane not in names.PLANES:
            raise ValueError(
                f"the export's metadata has no plane: pass plane= (--plane), one of {names.PLANES}"
            )
    os.makedirs(out_dir, exist_ok=True)
    start = time.perf_counter()
    bar = (
        progress_lib.Progress(int(count), f"sampling {fmt}", "slice")
        if progress
        else progress_lib.Silent(int(count))
    )
    chunks = sampler.iter_batches(count, seed, modality, tumour)
    if fmt != "png":  # the png writer counts file by file
        chunks = _counted(chunks, bar)
    if fmt == "grid":
        size = display_size or DEFAULT_DISPLAY_SIZE
        title = f"SYNTHETIC ({sampler.gan.upper()}, seed {seed}) - not patient data" + (
            ""
            if sampler.conditional or len(sampler.modalities) == 1
            else " - unconditional, trained on "
            f"{', '.join(names.MODALITY_DISPLAY_NAMES[m] for m in sampler.modalities)}"
        )
        paths = [
            write_grid(
                concat_batches(list(chunks)),
                os.path.join(out_dir, f"grid-seed{seed}.png"),
                display_size=size,
                resample=resample,
                title=title,
            )
        ]
    elif fmt == "png":
        paths = [
            p
            for batch in chunks
            for p in write_pngs(
                batch, out_dir, display_size=display_size, resample=resample, bar=bar
            )
        ]
    elif fmt == "nifti":
        paths = write_nifti(
            concat_batches(list(chunks)),
            out_dir,
            plane=plane,
            description=f"kgan synthetic {sampler.gan} seed {seed}",
        )
    else:
        paths = write_tfrecords(
            chunks,
            out_dir,
            gan=sampler.gan,
            plane=plane,
            split=split,
            shards=shards,
            count=int(count),
        )
    manifest = {
        "model": os.path.abspath(sampler.path),
        "gan": sampler.gan,
        "format": fmt,
        "seed": int(seed),
        "count": int(count),
        "synthetic": True,
        "value_range": [-1.0, 1.0],
        "files": [os.path.basename(p) for p in paths],
        "samples": [
            {
                "id": sample_id(sampler.gan, seed, i),
                "modality": (names.MODALITIES[m] if m >= 0 else None),
                **({"tumour": int(tums[i])} if tums is not None else {}),
            }
            for i, m in enumerate(mods.tolist())
        ],
        "export_metadata": sampler.metadata,
    }
    manifest_path = os.path.join(out_dir, "kgan_samples.json")
    atomic.write_bytes(manifest_path, (json.dumps(manifest, indent=2, default=str) + "\n").encode())
    bar.close(
        f"kgan: wrote {int(count)} synthetic slices as {len(paths)} {fmt} file(s) to "
        f"{out_dir} in {progress_lib.format_seconds(time.perf_counter() - start)} "
        f"(list: {manifest_path})"
    )
    return paths + [manifest_path]


def _counted(chunks: Iterable[SampleBatch], bar: progress_lib.Progress) -> Iterator[SampleBatch]:
    for batch in chunks:
        bar.update(len(batch.images))
        yield batch
