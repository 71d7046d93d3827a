"""Shared test settings: quiet TensorFlow, and the real-MRI location."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Two real glioma cases shipped beside the repository (never committed into it).
SHARED_MRI = REPO_ROOT.parent / "shared" / "mri"


@pytest.fixture
def shared_mri() -> Path:
    """The real BraTS-layout cases, or a skip saying why they are missing."""
    if not SHARED_MRI.is_dir() or not any(SHARED_MRI.iterdir()):
        pytest.skip(
            f"real MRI cases not found at {SHARED_MRI} (expected ../shared/mri beside the repo)"
        )
    return SHARED_MRI


def load_script(name: str):
    """Imports `scripts/<name>.py` as a module, so tests call its `main(argv)` in-process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"{name}_script", REPO_ROOT / "scripts" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_disc_slices(
    path: str,
    *,
    size: int = 16,
    count: int = 48,
    seed: int = 0,
    radius: tuple[float, float] = (4, 7),
    brightness: tuple[int, int] = (80, 40),
    noise: float = 5.0,
) -> None:
    """Writes a tiny slice shard for training tests: bright discs of varying size on black.

    Four modalities (brightness `base + step * modality`), eight slices per case, every third
    slice with a 'tumour' label; the same seed writes the same records.
    """
    import numpy as np
    import tensorflow as tf

    from kgan import schema

    rng = np.random.default_rng(seed)
    centre = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size]
    base, step = brightness
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(count):
            r = rng.uniform(*radius)
            disc = ((yy - centre) ** 2 + (xx - centre) ** 2 < r * r) * (base + step * (i % 4))
            image = np.clip(disc + rng.normal(0, noise, disc.shape), 0, 255).astype(np.uint8)
            writer.write(
                schema.encode_example(
                    image,
                    modality=i % 4,
                    plane=0,
                    slice_index=i,
                    case_id=f"case{i // 8}",
                    tumour_fraction=0.05 if i % 3 == 0 else 0.0,
                    source="test",
                )
            )
