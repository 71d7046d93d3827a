"""kgan's own feature encoder for FID, KID and feature-space memorisation.

FID and KID need a feature space. The usual Inception network is trained on
ImageNet photographs, cannot be downloaded here, and judges grey-scale MRI
poorly. kgan instead trains a small CNN on the *real training slices* to
predict what a radiologist would read off a slice: its modality, whether it
holds tumour, and where along the plane it lies. Its pooled penultimate layer
is the feature space.

Numbers are only comparable in one feature space, so the encoder is trained
once (seeded), saved, and reused: the report names the file and its SHA-256.
Delete the file, or pass another path, to start a new series.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

import keras
import numpy as np

from kgan import atomic, names
from kgan.evaluation import cnn

SIDE_CAR = ".json"


@dataclasses.dataclass
class Encoder:
    """A loaded encoder: the full multi-head model, its feature sub-model, and provenance."""

    model: keras.Model
    path: str
    sha256: str
    info: dict

    def __post_init__(self):
        self._features = keras.Model(
            self.model.inputs, self.model.get_layer(cnn.FEATURE_LAYER).output
        )

    @property
    def image_size(self) -> int:
        return int(self.model.inputs[0].shape[1])

    def features(self, images: np.ndarray) -> np.ndarray:
        """Feature vectors [N, D] of images [N, S, S, 1] in [-1, 1]."""
        images = np.asarray(images, np.float32)
        if images.shape[1] != self.image_size:
            raise ValueError(
                f"encoder {self.path} takes {self.image_size}x{self.image_size} "
                f"slices, got {images.shape[1]}x{images.shape[2]}"
            )
        return cnn.predict(self._features, images).astype(np.float64)

    def modality(self, images: np.ndarray) -> np.ndarray:
        """Predicted modality indices (into `names.MODALITIES`) of images."""
        outputs = self.model.predict(np.asarray(images, np.float32), batch_size=256, verbose=0)
        return np.argmax(outputs[0], axis=-1).astype(np.int64)

    def describe(self) -> dict:
        """Provenance for the report: file, hash, and how it was trained."""
        return {"path": self.path, "sha256": self.sha256, **self.info}


def build(image_size: int, seed: int, width: int = 16) -> keras.Model:
    """The encoder: shared trunk, heads for modality, tumour and slice position."""
    keras.utils.set_random_seed(seed)
    inputs, features = cnn.conv_trunk(image_size, width)
    modality = keras.layers.Dense(len(names.MODALITIES), activation="softmax", name="modality")(
        features
    )
    tumour = keras.layers.Dense(1, activation="sigmoid", name="tumour")(features)
    position = keras.layers.Dense(1, name="position")(features)
    model = keras.Model(inputs, [modality, tumour, position], name="kgan_encoder")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=["sparse_categorical_crossentropy", "binary_crossentropy", "mse"],
    )
    return model


def train(
    images: np.ndarray,
    labels: dict,
    *,
    seed: int = 0,
    epochs: int = 12,
    max_slices: int = 6000,
    batch_size: int = 64,
    width: int = 16,
) -> tuple[keras.Model, dict]:
    """Trains the encoder on real training slices.

    Args:
      images: [N, S, S, 1] in [-1, 1], training split only.
      labels: `load_arrays` labels (modality, tumour, slice_index).
      seed: seeds the subsample, initial weights and shuffles.
      epochs, max_slices, batch_size, width: training budget and size.

    Returns:
      (model, info dict for the side-car file).
    """
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(images))[:max_slices])
    x = np.asarray(images, np.float32)[keep]
    modality = np.asarray(labels["modality"])[keep].astype(np.int64)
    tumour = np.asarray(labels["tumour"])[keep].astype(np.float32)
    index = np.asarray(labels["slice_index"], np.float64)
    lo, hi = float(index.min()), float(index.max())
    position = ((index[keep] - lo) / max(hi - lo, 1.0)).astype(np.float32)
    model = build(x.shape[1], seed, width)
    order = rng.permutation(len(x))
    start = time.perf_counter()
    history = model.fit(
        x[order],
        [modality[order], tumour[order], position[order]],
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
    )
    predicted = np.argmax(model.predict(x, batch_size=256, verbose=0)[0], axis=-1)
    info = {
        "seed": seed,
        "epochs": epochs,
        "train_slices": int(len(x)),
        "width": width,
        "image_size": int(x.shape[1]),
        "train_seconds": round(time.perf_counter() - start, 1),
        "final_loss": float(history.history["loss"][-1]),
        "train_modality_accuracy": float(np.mean(predicted == modality)),
        "slice_index_range": [lo, hi],
    }
    return model, info


def file_sha256(path: str) -> str:
    """SHA-256 of a file, to tie reported numbers to one encoder."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(path: str) -> Encoder:
    """Loads a saved encoder and its side-car description."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no encoder at {path}")
    model = keras.saving.load_model(path, compile=False)
    info = {}
    side = path + SIDE_CAR
    if os.path.isfile(side):
        with open(side) as f:
            info = json.load(f)
    info.pop("sha256", None)
    return Encoder(model, os.path.abspath(path), file_sha256(path), info)


def load_or_train(
    path: str,
    images_fn,
    *,
    dataset: str,
    seed: int = 0,
    epochs: int = 12,
    max_slices: int = 6000,
    log=print,
) -> Encoder:
    """Reuses the encoder at `path`, or trains one on the real training slices and saves it.

    Args:
      path: the `.keras` file (a `.keras.json` side-car describes it).
      images_fn: called with no argument to get (images, labels) of the
        training split, only when training is needed.
      dataset: the dataset's name, recorded in the side-car.
      seed, epochs, max_slices: training settings when training is needed.
      log: progress printer.

    Returns:
      The `Encoder`.
    """
    if os.path.isfile(path):
        log(f"reusing encoder {path}")
        return load(path)
    images, labels = images_fn()
    log(
        f"training encoder on {min(len(images), max_slices)} real training slices "
        f"({epochs} epochs, seed {seed}) -> {path}"
    )
    model, info = train(images, labels, seed=seed, epochs=epochs, max_slices=max_slices)
    info["dataset"] = dataset
    with atomic.atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    info["sha256"] = file_sha256(path)
    atomic.write_json(path + SIDE_CAR, info)
    return load(path)
