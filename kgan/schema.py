"""The slice record schema shared by real and synthetic datasets.

One `tf.train.Example` per 2-D slice. The TFDS builders in `kgan.records`
declare features that serialise to exactly these keys (flat, no nesting), so
the fast batched parser in `kgan.pipeline` reads TFDS shards and the
synthetic shards written by `kgan.sampling` alike.

Pixels are stored as raw `uint8` bytes, row-major, shape (size, size, 1):
0 is the darkest value of the volume's robust intensity range (and the
background), 255 the brightest. Raw bytes, unlike PNG, decode in one batched
`tf.io.decode_raw` call.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

#: Tumour fraction (of brain pixels) above which a slice counts as "with tumour".
TUMOUR_PRESENT_FRACTION = 0.01

#: Feature keys and their `tf.io` parse spec. The integer class labels index the tuples of
#: `kgan.names` (MODALITIES, PLANES, GRADES).
FEATURE_SPEC = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "modality": tf.io.FixedLenFeature([], tf.int64),
    "plane": tf.io.FixedLenFeature([], tf.int64),
    "slice_index": tf.io.FixedLenFeature([], tf.int64),
    "case_id": tf.io.FixedLenFeature([], tf.string),
    "tumour_fraction": tf.io.FixedLenFeature([], tf.float32),
    "grade": tf.io.FixedLenFeature([], tf.int64),
    "source": tf.io.FixedLenFeature([], tf.string),
    "synthetic": tf.io.FixedLenFeature([], tf.int64),
}


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def _float(value: float) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))


def encode_example(
    image: np.ndarray,
    *,
    modality: int,
    plane: int,
    slice_index: int,
    case_id: str,
    tumour_fraction: float,
    grade: int = 0,
    source: str = "",
    synthetic: bool = False,
) -> bytes:
    """Serialises one slice without TFDS (used for synthetic shards).

    Args:
      image: uint8 array of shape (size, size) or (size, size, 1).
      modality: index into `kgan.names.MODALITIES`.
      plane: index into `kgan.names.PLANES`.
      slice_index: slice number along the plane's axis in the canonical frame.
      case_id: patient identifier (for synthetic slices, a sample id).
      tumour_fraction: tumour pixels over brain pixels, in [0, 1].
      grade: index into `kgan.names.GRADES`.
      source: where the slice came from, e.g. "brats2021", "phantom", "synthetic:began".
      synthetic: True for generated slices.

    Returns:
      The serialised `tf.train.Example`.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[0] != image.shape[1] or image.shape[2] != 1:
        raise ValueError(f"image must be square (size, size[, 1]), got shape {image.shape}")
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                "image": _bytes(np.ascontiguousarray(image).tobytes()),
                "modality": _int(modality),
                "plane": _int(plane),
                "slice_index": _int(slice_index),
                "case_id": _bytes(case_id.encode("utf-8")),
                "tumour_fraction": _float(tumour_fraction),
                "grade": _int(grade),
                "source": _bytes(source.encode("utf-8")),
                "synthetic": _int(1 if synthetic else 0),
            }
        )
    )
    return example.SerializeToString()


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Maps an image in [-1, 1] (generator output range) to stored uint8 pixels."""
    scaled = (np.asarray(image, np.float32) + 1.0) * 127.5
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
