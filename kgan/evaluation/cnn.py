"""The small convolutional networks that evaluation trains on the spot.

No pretrained network is downloaded (none can be, and ImageNet features judge
grey-scale MRI poorly): the encoder for FID/KID, the real-vs-synthetic
classifier of the automated Visual Turing Test and the tumour classifier of
the downstream test are all this one small, seeded architecture, trained on
kgan's own slices in seconds on a CPU.
"""

from __future__ import annotations

import keras
import numpy as np

FEATURE_LAYER = "features"


def conv_trunk(image_size: int, width: int = 16, name: str = "cnn") -> tuple:
    """Input and a pooled feature vector: stride-2 convs down to about 4x4, then GAP.

    Returns:
      (input tensor, feature tensor named "features" of 4*width dims).
    """
    inputs = keras.Input((image_size, image_size, 1), name="image")
    x = inputs
    size, filters = image_size, width
    while size > 4:
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same")(x)
        x = keras.layers.LeakyReLU(0.2)(x)
        size = (size + 1) // 2
        filters = min(filters * 2, 4 * width)
    x = keras.layers.Conv2D(4 * width, 3, padding="same")(x)
    x = keras.layers.LeakyReLU(0.2)(x)
    features = keras.layers.GlobalAveragePooling2D(name=FEATURE_LAYER)(x)
    return inputs, features


def binary_classifier(image_size: int, seed: int, width: int = 16) -> keras.Model:
    """A seeded small CNN with one sigmoid output, compiled with Adam and BCE."""
    keras.utils.set_random_seed(seed)
    inputs, features = conv_trunk(image_size, width)
    x = keras.layers.Dropout(0.2, seed=seed)(features)
    out = keras.layers.Dense(1, activation="sigmoid", name="p")(x)
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    return model


def lesion_classifier(image_size: int, seed: int, width: int = 16) -> keras.Model:
    """A seeded CNN for a small local finding such as a tumour, compiled like `binary_classifier`.

    One 3x3 convolution and a 2x2 max pooling per level, then global max
    pooling. A tumour covers 1-15 % of a slice's brain: the strided convs and
    global average of `conv_trunk` dilute it, max pooling keeps the strongest
    local response. On the phantom's 64x64 slices, trained on 16 patients
    for 600 updates, it reads a balanced accuracy of 0.66 where
    `binary_classifier` reads 0.56 (docs/quality/classifiers.md).
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((image_size, image_size, 1), name="image")
    x, size, filters = inputs, image_size, width
    while size > 4:
        x = keras.layers.Conv2D(filters, 3, padding="same")(x)
        x = keras.layers.LeakyReLU(0.2)(x)
        x = keras.layers.MaxPooling2D()(x)
        size //= 2
        filters = min(filters * 2, 4 * width)
    features = keras.layers.GlobalMaxPooling2D(name=FEATURE_LAYER)(x)
    x = keras.layers.Dropout(0.2, seed=seed)(features)
    out = keras.layers.Dense(1, activation="sigmoid", name="p")(x)
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    return model


#: Small sets get more epochs so that every classifier takes at least this many steps.
MIN_STEPS = 200


def epochs_for(n: int, epochs: int, batch_size: int, min_steps: int = MIN_STEPS) -> int:
    """`epochs`, raised so that a small training set still gets `min_steps` updates."""
    steps_per_epoch = max(1, -(-n // batch_size))
    return max(epochs, -(-min_steps // steps_per_epoch))


def fit_binary(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int,
    epochs: int = 5,
    batch_size: int = 64,
    width: int = 16,
    sample_weight=None,
    min_steps: int = MIN_STEPS,
    build=binary_classifier,
) -> keras.Model:
    """Trains `binary_classifier` on images [N, S, S, 1] and 0/1 labels, seeded and shuffled.

    Small sets (a few hundred slices) are trained for at least `min_steps`
    updates: a classifier that stopped early would make a generator look
    better than it is. `build(image_size, seed, width)` makes the network
    (`binary_classifier` or `lesion_classifier`).
    """
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels, np.float32)
    model = build(images.shape[1], seed, width)
    order = np.random.default_rng(seed).permutation(len(images))
    weights = None if sample_weight is None else np.asarray(sample_weight, np.float32)[order]
    model.fit(
        images[order],
        labels[order],
        sample_weight=weights,
        epochs=epochs_for(len(images), epochs, batch_size, min_steps),
        batch_size=batch_size,
        shuffle=True,
        verbose=0,
    )
    return model


def predict(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Model outputs for a numpy batch, without Keras' progress bar."""
    return np.asarray(
        model.predict(np.asarray(images, np.float32), batch_size=batch_size, verbose=0)
    )


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights that give each class the same total weight."""
    labels = np.asarray(labels).astype(int)
    counts = np.bincount(labels, minlength=2).astype(np.float64)
    counts[counts == 0] = 1.0
    return (len(labels) / (2.0 * counts))[labels]
