"""The serving contract: what an exported generator looks like from outside.

`kgan.export` writes exports to this contract and `kgan.sampling` reads them by it, so neither
depends on the other. It fixes:

* the layout: ``<base>/<integer version>/`` holding ``saved_model.pb``, with
  ``assets.extra/kgan_metadata.json`` and ``assets.extra/tf_serving_warmup_requests``;
* the two signatures and their tensor names and specs:
  ``serving_default``: ``z`` float32 [N, latent] (+ ``modality``, ``tumour`` int32 [N] when
  conditional) -> ``images`` float32 [N, S, S, 1] in [-1, 1];
  ``sample``: ``seed`` int64 [], ``count`` int32 [] (+ ``modality``, ``tumour`` int32 []) ->
  ``images`` and ``png_bytes`` (string [N]);
* the latent stream: standard normals from a stateless Philox generator keyed by
  ``[seed, stream]``, so a seed always gives the same images;
* the pixel mapping of the PNGs (that of `kgan.schema.to_uint8`).

docs/serving.md describes the same contract for clients.
"""

from __future__ import annotations

import os
import re

import tensorflow as tf

#: Export metadata file, in the version's assets.extra/.
METADATA_FILE = "kgan_metadata.json"
#: TF Serving's warm-up file, in the version's assets.extra/.
WARMUP_FILE = "tf_serving_warmup_requests"
#: The metadata's "format" value.
EXPORT_FORMAT = "kgan-generator-savedmodel/1"

#: Signature names.
SERVING_SIGNATURE = "serving_default"
SAMPLE_SIGNATURE = "sample"
SIGNATURES = (SERVING_SIGNATURE, SAMPLE_SIGNATURE)
#: Tensor names of the signatures' inputs and outputs.
LATENT = "z"
MODALITY = "modality"
TUMOUR = "tumour"
SEED = "seed"
COUNT = "count"
IMAGES = "images"
#: Name of the PNG output of the `sample` signature. TF Serving's REST API base64-encodes a
#: string output only when its name ends in "_bytes".
PNG_OUTPUT = "png_bytes"
#: The generator's inputs, in the order a conditional generator takes them.
GENERATOR_INPUTS = (LATENT, MODALITY, TUMOUR)

_VERSION_RE = re.compile(r"^\d+$")


# --- versions -------------------------------------------------------------------------------------


def existing_versions(base: str, *, complete: bool = False) -> list[int]:
    """The integer version directories under an export base, ascending.

    Args:
      complete: only versions that hold a saved_model.pb (what a reader can load); otherwise
        every integer directory (what a writer must not reuse).
    """
    if not os.path.isdir(base):
        return []

    def listed(name: str) -> bool:
        folder = os.path.join(base, name)
        if complete:
            return os.path.isfile(os.path.join(folder, "saved_model.pb"))
        return os.path.isdir(folder)

    return sorted(int(v) for v in os.listdir(base) if _VERSION_RE.match(v) and listed(v))


def resolve_export_dir(path: str) -> str:
    """A version directory, or the newest complete version under an export base directory."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = existing_versions(path, complete=True)
    if versions:
        return os.path.join(path, str(versions[-1]))
    raise FileNotFoundError(
        f"no exported generator at {path}: expected saved_model.pb there or in an integer "
        "version directory below it (write one with scripts/export.py)"
    )


# --- signatures -----------------------------------------------------------------------------------


def input_signatures(latent_dim: int, conditional: bool) -> tuple[list, list]:
    """(serving_default's, sample's) input TensorSpecs, named as the contract says."""
    serving = [tf.TensorSpec([None, latent_dim], tf.float32, name=LATENT)]
    sample = [tf.TensorSpec([], tf.int64, name=SEED), tf.TensorSpec([], tf.int32, name=COUNT)]
    if conditional:
        serving += [
            tf.TensorSpec([None], tf.int32, name=MODALITY),
            tf.TensorSpec([None], tf.int32, name=TUMOUR),
        ]
        sample += [
            tf.TensorSpec([], tf.int32, name=MODALITY),
            tf.TensorSpec([], tf.int32, name=TUMOUR),
        ]
    return serving, sample


def describe_signatures(latent_dim: int, image_size: int, conditional: bool) -> dict:
    """The signatures as the export's metadata lists them: {name: {inputs, outputs}}."""
    images = ["float32", [None, image_size, image_size, 1]]
    return {
        SERVING_SIGNATURE: {
            "inputs": {
                LATENT: ["float32", [None, latent_dim]],
                **({MODALITY: ["int32", [None]], TUMOUR: ["int32", [None]]} if conditional else {}),
            },
            "outputs": {IMAGES: images},
        },
        SAMPLE_SIGNATURE: {
            "inputs": {
                SEED: ["int64", []],
                COUNT: ["int32", []],
                **({MODALITY: ["int32", []], TUMOUR: ["int32", []]} if conditional else {}),
            },
            "outputs": {IMAGES: images, PNG_OUTPUT: ["string", [None]]},
        },
    }


# --- the latent stream and the pixels -------------------------------------------------------------


def latent_vectors(seed, count, latent_dim: int, stream=0) -> tf.Tensor:
    """Standard-normal latents from a stateless Philox generator keyed by ``[seed, stream]``.

    The exported `sample` signature uses stream 0; `GeneratorSampler.generate` uses stream k for
    the k-th chunk of ``max_count`` vectors, so its first chunk equals `sample`'s output and
    different seeds never share a stream.
    """
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(stream, tf.int64)])
    shape = tf.stack([tf.cast(count, tf.int32), tf.constant(latent_dim, tf.int32)])
    return tf.random.stateless_normal(shape, seed=key, dtype=tf.float32, alg="philox")


def images_to_uint8_tensor(images: tf.Tensor) -> tf.Tensor:
    """[-1, 1] floats to uint8 pixels, the same mapping as `kgan.schema.to_uint8`."""
    scaled = tf.round((tf.cast(images, tf.float32) + 1.0) * 127.5)
    return tf.cast(tf.clip_by_value(scaled, 0.0, 255.0), tf.uint8)


__all__ = [
    "COUNT",
    "EXPORT_FORMAT",
    "GENERATOR_INPUTS",
    "IMAGES",
    "LATENT",
    "METADATA_FILE",
    "MODALITY",
    "PNG_OUTPUT",
    "SAMPLE_SIGNATURE",
    "SEED",
    "SERVING_SIGNATURE",
    "SIGNATURES",
    "TUMOUR",
    "WARMUP_FILE",
    "describe_signatures",
    "existing_versions",
    "images_to_uint8_tensor",
    "input_signatures",
    "latent_vectors",
    "resolve_export_dir",
]
