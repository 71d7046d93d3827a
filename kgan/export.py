"""Export trained generators as SavedModels that TF Serving loads.

Layout (what TF Serving's file-system source watches)::

    exports/<name>/<integer version>/
        saved_model.pb, variables/
        assets.extra/tf_serving_warmup_requests   # PredictionLog records, one per signature
        assets.extra/kgan_metadata.json           # GAN, recipe, sizes, modalities, dataset, ...

Signatures (named inputs and outputs, so REST and gRPC clients address them by name; the names,
specs and latent stream are `kgan.serving`'s, the contract `kgan.sampling` reads exports by):

* ``serving_default``: ``z`` float32 [N, latent] (+ ``modality``, ``tumour`` int32 [N] when
  conditional) -> ``images`` float32 [N, S, S, 1] in [-1, 1].
* ``sample``: ``seed`` int64 [], ``count`` int32 [] (+ ``modality``, ``tumour`` int32 [] when
  conditional) -> ``images`` and ``png_bytes`` (string [N], 8-bit grayscale PNGs). The latent
  vectors come from a stateless Philox generator keyed by ``[seed, 0]``, so a seed always gives
  the same images. The PNG output ends in ``_bytes`` because TF Serving's REST API base64-encodes
  string outputs only under that suffix; a raw PNG in JSON would corrupt the response.

Requests that would crash or silently misbehave (a wrong latent size, NaN latents, a count above
the exported maximum, a modality the generator was not trained on) fail inside the graph with a
`tf.debugging` assertion, which TF Serving returns as an INVALID_ARGUMENT error naming the problem.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

import kgan
from kgan import atomic, names, serving

#: Default largest batch one request may ask for (images and PNG bytes of a 64x64 batch of
#: 1024 are ~20 MB: enough for augmentation, small enough not to exhaust a server).
DEFAULT_MAX_COUNT = 1024


class ExportError(ValueError):
    """Raised when a generator or run directory cannot be exported."""


# --------------------------------------------------------------------------------------------
# Versions and atomic writes


def next_version(out_base: str) -> int:
    """The version number the next export gets: 1, or one past the highest present."""
    versions = serving.existing_versions(out_base)
    return versions[-1] + 1 if versions else 1


def _publish(tmp_dir: str, out_base: str) -> str:
    """Renames a finished export into the next free version directory.

    `os.rename` of a directory onto an existing non-empty directory fails, so two exports
    racing for the same number cannot overwrite each other: the loser takes the next number.
    """
    for _ in range(100):
        target = os.path.join(out_base, str(next_version(out_base)))
        try:
            os.rename(tmp_dir, target)
            atomic.fsync_dir(out_base)
            return target
        except OSError:
            if not os.path.exists(target):
                raise
    raise ExportError(f"could not find a free version directory under {out_base}")


# --------------------------------------------------------------------------------------------
# Inspecting the generator


def _input_shapes(generator) -> list[tuple]:
    try:
        inputs = generator.inputs
    except AttributeError:
        inputs = None
    if not inputs:
        raise ExportError(
            f"generator {getattr(generator, 'name', generator)!r} has no symbolic inputs; "
            "export a functional or Sequential keras.Model built with keras.Input"
        )
    return [tuple(t.shape) for t in inputs]


def describe_generator(generator) -> dict:
    """Reads latent size, image size and conditioning from a generator's inputs and output.

    Returns:
      dict with latent_dim, image_size, conditional.

    Raises:
      ExportError: when the model's I/O is not the contract's
        ``generator(z)`` / ``generator([z, modality, tumour])`` -> [N, S, S, 1].
    """
    shapes = _input_shapes(generator)
    if len(shapes) not in (1, 3):
        raise ExportError(
            f"generator has {len(shapes)} inputs {shapes}; expected 1 (z) or 3 (z, modality, "
            "tumour)"
        )
    input_names = [getattr(t, "name", "") for t in generator.inputs]
    if (
        len(shapes) == 3
        and set(input_names) == set(serving.GENERATOR_INPUTS)
        and (tuple(input_names) != serving.GENERATOR_INPUTS)
    ):
        raise ExportError(
            f"conditional generator inputs are ordered {input_names}; the contract is "
            "generator([z, modality, tumour])"
        )
    z_shape = shapes[0]
    if len(z_shape) != 2 or z_shape[1] is None:
        raise ExportError(f"latent input must be [N, latent_dim], got {z_shape}")
    out_shape = tuple(generator.outputs[0].shape)
    if len(out_shape) != 4 or out_shape[1] != out_shape[2] or out_shape[3] != 1:
        raise ExportError(f"generator output must be [N, S, S, 1], got {out_shape}")
    return {
        "latent_dim": int(z_shape[1]),
        "image_size": int(out_shape[1]),
        "conditional": len(shapes) == 3,
    }


# --------------------------------------------------------------------------------------------
# The exported functions


def _generator_runner(generator, conditional: bool):
    """generator(z[, modality, tumour]) in inference mode, as float32 clipped to [-1, 1]."""
    cond_ranks = [len(s) for s in _input_shapes(generator)[1:]]

    def run_generator(z, modality=None, tumour=None):
        if conditional:
            conds = []
            for value, rank in zip((modality, tumour), cond_ranks):
                conds.append(tf.reshape(value, [-1, 1]) if rank == 2 else value)
            images = generator([z, conds[0], conds[1]], training=False)
        else:
            images = generator(z, training=False)
        # Clipping documents the range for every GAN (a no-op after tanh; BEGAN's decoder is
        # clipped already, but an exported model should not depend on that).
        return tf.clip_by_value(tf.cast(images, tf.float32), -1.0, 1.0)

    return run_generator


def _condition_checks(modality, tumour, n, allowed_modalities) -> list:
    """In-graph assertions: one condition per latent, a trained modality, tumour 0 or 1."""
    allowed = tf.constant(sorted(allowed_modalities), tf.int32)
    allowed_text = ", ".join(f"{i} ({names.MODALITIES[i]})" for i in sorted(allowed_modalities))
    checks = [
        tf.debugging.assert_equal(
            tf.size(modality),
            n,
            message="modality must have one entry per latent vector (shape [N])",
        ),
        tf.debugging.assert_equal(
            tf.size(tumour), n, message="tumour must have one entry per latent vector (shape [N])"
        ),
    ]
    with tf.control_dependencies(checks):
        known = tf.reduce_any(tf.equal(tf.reshape(modality, [-1, 1]), allowed[None, :]), axis=1)
        checks.append(
            tf.debugging.assert_equal(
                tf.reduce_all(known),
                True,
                message=f"modality must be one of {allowed_text}: the modalities this "
                f"generator was trained on (indices into {list(names.MODALITIES)})",
            )
        )
        checks.append(
            tf.debugging.assert_equal(
                tf.reduce_all((tumour == 0) | (tumour == 1)),
                True,
                message="tumour must be 0 (no tumour) or 1 (tumour)",
            )
        )
    return checks


def _latent_checks(z, latent_dim: int, max_count: int):
    """In-graph assertions on z ([N, latent_dim], N <= max_count, finite), and N."""
    rank = tf.debugging.assert_rank(z, 2, message=f"z must have shape [N, {latent_dim}]")
    with tf.control_dependencies([rank]):
        shape = tf.shape(z)
        checks = [
            tf.debugging.assert_equal(
                shape[1], latent_dim, message=f"z must have shape [N, {latent_dim}]"
            ),
            tf.debugging.assert_less_equal(
                shape[0], max_count, message=f"at most {max_count} latent vectors per request"
            ),
        ]
    with tf.control_dependencies(checks):
        checks.append(tf.debugging.assert_all_finite(z, "z contains NaN or Inf"))
    return checks, shape[0]


def _count_checks(count, max_count: int) -> list:
    return [
        tf.debugging.assert_greater_equal(count, 1, message="count must be at least 1"),
        tf.debugging.assert_less_equal(
            count,
            max_count,
            message=f"count must be at most {max_count} (the exported "
            "max_count); ask several times with other seeds",
        ),
    ]


def _png_of(images):
    pixels = serving.images_to_uint8_tensor(images)
    return tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.string)


def _build_endpoints(
    generator, *, latent_dim: int, conditional: bool, allowed_modalities, max_count: int
):
    """Returns (serving_fn, sample_fn, serving_signature, sample_signature)."""
    run_generator = _generator_runner(generator, conditional)
    serving_sig, sample_sig = serving.input_signatures(latent_dim, conditional)

    def sampled(seed, count, modalities=None, tumours=None):
        z = serving.latent_vectors(seed, count, latent_dim)
        images = run_generator(z, modalities, tumours)
        return {serving.IMAGES: images, serving.PNG_OUTPUT: _png_of(images)}

    if conditional:

        def serving_fn(z, modality, tumour):
            checks, n = _latent_checks(z, latent_dim, max_count)
            with tf.control_dependencies(checks):
                checks = _condition_checks(modality, tumour, n, allowed_modalities)
            with tf.control_dependencies(checks):
                return {serving.IMAGES: run_generator(z, modality, tumour)}

        def sample_fn(seed, count, modality, tumour):
            checks = _count_checks(count, max_count)
            with tf.control_dependencies(checks):
                modalities = tf.fill([count], modality)
                tumours = tf.fill([count], tumour)
                checks = _condition_checks(modalities, tumours, count, allowed_modalities)
            with tf.control_dependencies(checks):
                return sampled(seed, count, modalities, tumours)
    else:

        def serving_fn(z):
            checks, _ = _latent_checks(z, latent_dim, max_count)
            with tf.control_dependencies(checks):
                return {serving.IMAGES: run_generator(z)}

        def sample_fn(seed, count):
            with tf.control_dependencies(_count_checks(count, max_count)):
                return sampled(seed, count)

    return serving_fn, sample_fn, serving_sig, sample_sig


# --------------------------------------------------------------------------------------------
# Warm-up requests


def warmup_requests(
    *, model_name: str, latent_dim: int, conditional: bool, modality: int, batch_sizes=(1, 8)
) -> list:
    """Builds the PredictionLog records TF Serving replays before it reports a model ready.

    One `serving_default` request per batch size (so the first real requests of those sizes do
    not pay for graph warm-up) and one `sample` request. Latents are fixed (seeded) numbers.
    Batch sizes must not exceed the export's max_count: a refused warm-up request makes TF
    Serving refuse to load the model.
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    def request(signature, inputs):
        req = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
        )
        for key, value in inputs.items():
            req.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        return prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=req)
        )

    rng = np.random.default_rng(0)
    logs = []
    for n in batch_sizes:
        inputs = {serving.LATENT: rng.standard_normal((n, latent_dim)).astype(np.float32)}
        if conditional:
            inputs[serving.MODALITY] = np.full([n], modality, np.int32)
            inputs[serving.TUMOUR] = (np.arange(n) % 2).astype(np.int32)
        logs.append(request(serving.SERVING_SIGNATURE, inputs))
    inputs = {serving.SEED: np.int64(0), serving.COUNT: np.int32(1)}
    if conditional:
        inputs[serving.MODALITY] = np.int32(modality)
        inputs[serving.TUMOUR] = np.int32(1)
    logs.append(request(serving.SAMPLE_SIGNATURE, inputs))
    return logs


def _write_warmup(path: str, logs) -> None:
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())


# --------------------------------------------------------------------------------------------
# Public entry points


def export_metadata(generator, metadata: Mapping[str, Any], max_count: int) -> dict:
    """The export's kgan_metadata.json: the given facts, checked against the generator, plus
    the contract (signatures, value range, latent stream) and the versions that wrote it.

    Raises:
      ExportError: when the generator's I/O, the metadata or max_count are inconsistent.
    """
    import keras

    described = describe_generator(generator)
    meta = dict(metadata)
    for key, value in described.items():
        if key in meta and meta[key] is not None and meta[key] != value:
            raise ExportError(
                f"metadata says {key}={meta[key]!r} but the generator has {key}={value!r}"
            )
        meta[key] = value
    modalities = list(meta.get("modalities") or names.MODALITIES)
    unknown = [m for m in modalities if m not in names.MODALITIES]
    if unknown:
        raise ExportError(f"unknown modalities {unknown}; choose from {names.MODALITIES}")
    if int(max_count) < 1:
        raise ExportError(f"max_count must be positive, got {max_count}")
    meta.update(
        {
            "format": serving.EXPORT_FORMAT,
            "gan": meta.get("gan", "unknown"),
            "modalities": modalities,
            "modality_index": {m: i for i, m in enumerate(names.MODALITIES)},
            "synthetic": True,
            "value_range": [-1.0, 1.0],
            "dtype": "float32",
            "channels": 1,
            "max_count": int(max_count),
            "latent_distribution": "standard normal; sample: stateless Philox keyed by [seed, 0]",
            "png": "8-bit grayscale, pixel = round((image + 1) * 127.5), as kgan.schema.to_uint8",
            "signatures": serving.describe_signatures(
                described["latent_dim"], described["image_size"], described["conditional"]
            ),
            "kgan_version": kgan.__version__,
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
        }
    )
    return meta


def _write_version(archive, out_base: str, meta: Mapping[str, Any], warmup: list) -> str:
    """Writes the SavedModel, warm-up requests and metadata into a hidden directory beside the
    versions, makes it durable, and renames it into the next version; returns that directory."""
    os.makedirs(out_base, exist_ok=True)
    tmp_dir = os.path.join(out_base, f".tmp-export-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        archive.write_out(tmp_dir, verbose=False)
        extra = os.path.join(tmp_dir, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        _write_warmup(os.path.join(extra, serving.WARMUP_FILE), warmup)
        with open(os.path.join(extra, serving.METADATA_FILE), "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True, default=str)
            f.write("\n")
        atomic.fsync_tree(tmp_dir)  # durable before it becomes visible to TF Serving
        return _publish(tmp_dir, out_base)
    finally:
        if os.path.exists(tmp_dir):
            shutil.rmtree(tmp_dir, ignore_errors=True)


def export_generator(
    generator,
    out_base: str,
    *,
    metadata: Mapping[str, Any],
    max_count: int = DEFAULT_MAX_COUNT,
    model_name: str | None = None,
) -> str:
    """Exports a Keras generator to ``out_base/<next integer version>/``.

    The export is written into a hidden temporary directory beside the versions and renamed
    into place when complete, so TF Serving (which polls ``out_base``) never sees a half-written
    version.

    Args:
      generator: a keras.Model with the contract's I/O: ``generator(z)`` or
        ``generator([z, modality, tumour])`` -> float32 [N, S, S, 1] in [-1, 1].
      out_base: the model's base directory (TF Serving's ``base_path``).
      metadata: facts stored in ``assets.extra/kgan_metadata.json``; should hold at least
        "gan", and "modalities" (names the generator was trained on, default all four),
        "dataset" (training dataset identity), "recipe" (the training config). Latent size,
        image size and conditioning are read from the model and checked against any given.
      max_count: the largest batch a request may ask for.
      model_name: name in the warm-up requests' ModelSpec; defaults to basename(out_base).

    Returns:
      The version directory written.

    Raises:
      ExportError: when the generator's I/O or the metadata are inconsistent.
    """
    import keras

    meta = export_metadata(generator, metadata, max_count)
    allowed = [names.MODALITIES.index(m) for m in meta["modalities"]]
    serving_fn, sample_fn, serving_sig, sample_sig = _build_endpoints(
        generator,
        latent_dim=meta["latent_dim"],
        conditional=meta["conditional"],
        allowed_modalities=allowed,
        max_count=int(max_count),
    )
    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint(serving.SERVING_SIGNATURE, serving_fn, input_signature=serving_sig)
    archive.add_endpoint(serving.SAMPLE_SIGNATURE, sample_fn, input_signature=sample_sig)
    warmup = warmup_requests(
        model_name=model_name or os.path.basename(os.path.normpath(out_base)),
        latent_dim=meta["latent_dim"],
        conditional=meta["conditional"],
        modality=allowed[0],
        batch_sizes=sorted({1, min(8, int(max_count))}),
    )
    return _write_version(archive, out_base, meta, warmup)


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = config.get(name)
    return value if isinstance(value, Mapping) else {}


def _lookup(config: Mapping[str, Any], key: str, *sections: str):
    """A key at the top level of config.json or inside one of its sections."""
    if key in config:
        return config[key]
    for section in sections:
        if key in _section(config, section):
            return _section(config, section)[key]
    return None


def dataset_identity(dataset_dir: str, split: str = "train") -> dict:
    """What identifies a training dataset without copying it: TFDS name/version/config and a
    SHA-256 of the sorted training case ids (ids themselves stay out of a shareable model)."""
    import hashlib

    found: dict[str, Any] = {}
    try:
        with open(os.path.join(dataset_dir, "dataset_info.json")) as f:
            info = json.load(f)
        found["tfds"] = {
            k: info[key]
            for k, key in (("name", "name"), ("version", "version"), ("config", "configName"))
            if key in info
        }
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(dataset_dir, "kgan_build_summary.json")) as f:
            summary = json.load(f)
        cases = sorted(summary.get("cases", {}).get(split, []))
        if cases:
            found["split_cases"] = len(cases)
            found["split_cases_sha256"] = hashlib.sha256("\n".join(cases).encode()).hexdigest()
        if split in summary.get("slices", {}):
            found["split_slices"] = summary["slices"][split]
    except (OSError, ValueError, AttributeError):
        pass
    return found


def metadata_from_config(config: Mapping[str, Any], run_dir: str | None = None) -> dict:
    """Maps a training run's resolved config.json to the export metadata.

    Accepts the nested layout `kgan.config.save_json` writes (model/data/train sections plus
    "resolved" facts about the dataset) and a flat one (image_size, latent_dim, ... at the top).
    """
    data = _section(config, "data")
    dataset = {k: v for k, v in data.items() if k in ("source", "split", "patients", "data_dir")}
    dataset.update({k: v for k, v in config.items() if k.startswith("dataset")})
    dataset.update(
        {
            k: v
            for k, v in _section(config, "resolved").items()
            if "dataset" in k or k == "train_slices"
        }
    )
    dataset_dir = dataset.get("dataset_dir")
    if isinstance(dataset_dir, str) and os.path.isdir(dataset_dir):
        dataset.update(dataset_identity(dataset_dir, str(dataset.get("split") or "train")))
    plane = _lookup(config, "plane", "data")
    if plane not in names.PLANES:  # a TFDS config name such as "sagittal_64" still tells it
        text = " ".join(str(v) for v in dataset.values())
        plane = next((p for p in names.PLANES if p in text), None)
    meta = {
        "gan": config.get("gan", "unknown"),
        "name": config.get("name"),
        "recipe": dict(config),
        "modalities": list(_lookup(config, "modalities", "data") or names.MODALITIES),
        "dataset": dataset or None,
        "plane": plane,
        "seed": _lookup(config, "seed", "train"),
    }
    for key in ("image_size", "latent_dim", "conditional"):
        value = _lookup(config, key, "model")
        if value is not None:
            meta[key] = value
    if run_dir is not None:
        meta["run"] = os.path.abspath(run_dir)
    return meta


def export_run(run_dir: str, out_base: str, **kwargs) -> str:
    """Exports a training run's generator (``run_dir/generator.keras`` + ``config.json``).

    Args:
      run_dir: ``runs/<name>/`` as written by training.
      out_base: ``exports/<name>/``.
      **kwargs: passed to `export_generator` (max_count, model_name).

    Returns:
      The version directory written.
    """
    import keras

    config_path = os.path.join(run_dir, "config.json")
    model_path = os.path.join(run_dir, "generator.keras")
    for path in (config_path, model_path):
        if not os.path.isfile(path):
            raise ExportError(f"{path} is missing: is {run_dir} a kgan training run directory?")
    try:
        with open(config_path) as f:
            config = json.load(f)
    except json.JSONDecodeError as e:
        raise ExportError(f"{config_path} is not valid JSON: {e}") from e
    if not isinstance(config, dict):
        raise ExportError(f"{config_path} must hold a JSON object, got {type(config).__name__}")
    try:
        generator = keras.models.load_model(model_path, compile=False)
    except Exception as e:  # keras raises many types for a bad archive
        raise ExportError(f"{model_path} could not be loaded as a Keras model: {e}") from e
    return export_generator(
        generator, out_base, metadata=metadata_from_config(config, run_dir), **kwargs
    )
