"""Slices as people see them: grids of slices and PNG files.

Training's sample grids (`kgan.callbacks`, `kgan.training`), the sampler's grid and per-slice
PNGs (`kgan.sampling`), the evaluation figures (`kgan.evaluation.figures`) and the Visual Turing
Test page all draw and encode here, with one pixel mapping (`kgan.schema.to_uint8`: [-1, 1] to
0..255) and one PNG encoder (Pillow), so an image looks the same wherever it is shown.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from kgan import atomic, schema

_RESAMPLING = {"nearest": Image.Resampling.NEAREST, "bicubic": Image.Resampling.BICUBIC}


# --- PNG ------------------------------------------------------------------------------------------


def png_bytes(image, *, optimize: bool = False) -> bytes:
    """PNG bytes of a Pillow image or of uint8 pixels ([H, W] grey or [H, W, 1])."""
    if not isinstance(image, Image.Image):
        pixels = np.asarray(image)
        if pixels.dtype != np.uint8:
            raise ValueError(f"PNG pixels must be uint8, got {pixels.dtype}")
        if pixels.ndim == 3 and pixels.shape[2] == 1:
            pixels = pixels[..., 0]
        image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=optimize)
    return buffer.getvalue()


def write_png(image, path: str) -> str:
    """Writes a Pillow image or uint8 pixels as a PNG, atomically; returns the path."""
    atomic.write_bytes(path, png_bytes(image))
    return path


# --- one slice ------------------------------------------------------------------------------------


def to_pil(image: np.ndarray, scale: int = 1) -> Image.Image:
    """One [-1, 1] slice ([S, S] or [S, S, 1]) as a greyscale image, enlarged `scale` times."""
    pixels = schema.to_uint8(np.asarray(image).reshape(image.shape[0], image.shape[1]))
    out = Image.fromarray(pixels, mode="L")
    if scale != 1:
        out = out.resize((out.width * scale, out.height * scale), Image.NEAREST)
    return out


def upsample(pixels: np.ndarray, size: int | None, resample: str = "nearest") -> np.ndarray:
    """uint8 [S, S] pixels resized to [size, size] ("nearest" or "bicubic"); None keeps S."""
    if size is None or size == pixels.shape[0]:
        return pixels
    if size < 1:
        raise ValueError(f"display size must be positive, got {size}")
    if resample not in _RESAMPLING:
        raise ValueError(f"resample must be one of {sorted(_RESAMPLING)}, got {resample!r}")
    return np.asarray(Image.fromarray(pixels).resize((size, size), _RESAMPLING[resample]))


# --- grids ----------------------------------------------------------------------------------------


def image_grid(images: np.ndarray, columns: int | None = None, pad: int = 1) -> np.ndarray:
    """Tiles [N, S, S, 1] images in [-1, 1] into one uint8 [H, W] grid (row-major, padded black).

    The plain grid of training's samples (TensorBoard and `samples.png`): no captions, native size.
    """
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[..., 0]
    if images.ndim != 3:
        raise ValueError(f"expected images [N, S, S(, 1)], got shape {images.shape}")
    n, h, w = images.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    grid = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad), np.uint8)
    pixels = schema.to_uint8(images)
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top : top + h, left : left + w] = pixels[i]
    return grid


def captioned_grid(
    images: np.ndarray, *, cols: int = 8, scale: int = 2, captions=None, title: str | None = None
) -> Image.Image:
    """Slices in a grid on white, with optional captions under each and a title on top.

    The report's figures: small bitmap text, slices enlarged `scale` times.
    """
    n = len(images)
    cols = max(1, min(cols, n))
    rows = max(1, (n + cols - 1) // cols)
    size = images.shape[1] * scale
    caption_h = 12 if captions is not None else 0
    title_h = 16 if title else 0
    pad = 2
    canvas = Image.new(
        "L", (cols * (size + pad) + pad, title_h + rows * (size + caption_h + pad) + pad), 255
    )
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    if title:
        draw.text((pad, 2), title, fill=0, font=font)
    for k in range(n):
        r, c = divmod(k, cols)
        x, y = pad + c * (size + pad), title_h + pad + r * (size + caption_h + pad)
        canvas.paste(to_pil(images[k], scale), (x, y))
        if captions is not None:
            draw.text((x, y + size), str(captions[k])[: max(4, size // 6)], fill=0, font=font)
    return canvas


def pairs_grid(
    left: np.ndarray, right: np.ndarray, captions, *, scale: int = 3, title: str = "", cols: int = 3
) -> Image.Image:
    """Pairs (left | right) in a grid, a caption under each: e.g. synthetic | nearest training."""
    size = left.shape[1] * scale
    cell_w, cell_h = 2 * size + 4 + 16, size + 16
    cols = max(1, min(cols, len(left)))
    rows = max(1, -(-len(left) // cols))
    canvas = Image.new("L", (cols * cell_w + 8, 18 + rows * cell_h), 255)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((4, 2), title, fill=0, font=font)
    for k in range(len(left)):
        r, c = divmod(k, cols)
        x, y = 4 + c * cell_w, 18 + r * cell_h
        canvas.paste(to_pil(left[k], scale), (x, y))
        canvas.paste(to_pil(right[k], scale), (x + size + 4, y))
        draw.text((x, y + size + 2), str(captions[k]), fill=0, font=font)
    return canvas


def wrap_text(text: str, width_of, max_width: float) -> list[str]:
    """Greedy word wrap so a long title stays inside a narrow grid."""
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and width_of(candidate) > max_width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return lines + [line] if line else lines or [""]


def display_grid(
    pixels: np.ndarray,
    captions,
    *,
    title: str,
    display_size: int,
    columns: int | None = None,
    resample: str = "nearest",
) -> Image.Image:
    """Slices upsampled to `display_size`, captioned, under a wrapped title, on black.

    The sampler's grid for people: uint8 [N, S, S] pixels, one caption each.
    """
    n = len(pixels)
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / columns)
    font_px = max(12, display_size // 12)
    try:
        font = ImageFont.load_default(size=font_px)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: fixed bitmap font
        font = ImageFont.load_default()
    gap, cap_h = 4, font_px + 8
    width = columns * display_size + (columns + 1) * gap
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    lines = wrap_text(title, lambda text: measure.textlength(text, font=font), width - 2 * gap)
    title_h = len(lines) * (font_px + 4) + 10
    height = title_h + rows * (display_size + cap_h + gap) + gap
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(lines):
        draw.text((gap, 4 + k * (font_px + 4)), line, fill=255, font=font)
    for i in range(n):
        r, c = divmod(i, columns)
        x = gap + c * (display_size + gap)
        y = title_h + r * (display_size + cap_h + gap)
        canvas.paste(Image.fromarray(upsample(pixels[i], display_size, resample)), (x, y))
        # Drawn on its own strip so a long caption is clipped at the tile's edge.
        strip = Image.new("L", (display_size, cap_h), 0)
        ImageDraw.Draw(strip).text((2, 3), captions[i], fill=255, font=font)
        canvas.paste(strip, (x, y + display_size))
    return canvas


__all__ = [
    "captioned_grid",
    "display_grid",
    "image_grid",
    "pairs_grid",
    "png_bytes",
    "to_pil",
    "upsample",
    "wrap_text",
    "write_png",
]
