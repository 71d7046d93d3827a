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
