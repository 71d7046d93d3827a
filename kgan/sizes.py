"""The image sizes kgan can train on: one rule for datasets, recipes and networks.

The networks grow and shrink images by factors of two from a 4x4 (DCGAN) or 8x8 (BEGAN) start,
so a side must be a power of two; 16 is the smallest both can make and 256 the largest whose
widths are capped sensibly. This module imports nothing heavy, so the dataset builder
(`kgan.records`, `scripts/make_records.py`) refuses a size at the first command instead of
building a dataset that training then rejects.
"""

from __future__ import annotations

#: Slice sides every stage accepts (datasets, recipes, networks).
IMAGE_SIZES = (16, 32, 64, 128, 256)


def check_image_size(size, what: str = "size") -> int:
    """Returns `size` as an int if kgan can train on it; otherwise a one-line ValueError.

    Args:
      size: the image side in pixels.
      what: the name of the setting in the message (e.g. "--size", "model.image_size").
    """
    try:
        value = int(size)
        whole = float(size) == value  # 64.5 or "64.5" is not a size
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise ValueError(f"{what} must be one of {', '.join(map(str, IMAGE_SIZES))}, got {size!r}")
    if value not in IMAGE_SIZES:
        raise ValueError(
            f"{what} {value} is not a size kgan can train on; use one of "
            f"{', '.join(map(str, IMAGE_SIZES))} (powers of two: the networks "
            "double or halve the side per block)"
        )
    return value
