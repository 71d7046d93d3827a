"""PNG figures drawn with Pillow alone (no plotting library is needed at run time)."""

from __future__ import annotations


import numpy as np
from PIL import Image, ImageDraw, ImageFont

from kgan import atomic, schema

_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


def _font():
    return ImageFont.load_default()


def save_png(image: Image.Image, path: str) -> str:
    """Writes a PNG atomically (temp file, then rename)."""
    with atomic.atomic_path(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG")
    return path


def to_pil(image: np.ndarray, scale: int = 1) -> Image.Image:
    """One [-1, 1] slice ([S, S] or [S, S, 1]) as a greyscale image, enlarged `scale` times."""
    pixels = schema.to_uint8(np.asarray(image).reshape(image.shape[0], image.shape[1]))
    out = Image.fromarray(pixels, mode="L")
    if scale != 1:
        out = out.resize((out.width * scale, out.height * scale), Image.NEAREST)
    return out


def image_grid(images: np.ndarray, *, cols: int = 8, scale: int = 2, captions=None,
               title: str | None = None) -> Image.Image:
    """Slices in a grid with optional captions under each and a title on top."""
    n = len(images)
    cols = max(1, min(cols, n))
    rows = max(1, (n + cols - 1) // cols)
    size = images.shape[1] * scale
    caption_h = 12 if captions is not None else 0
    title_h = 16 if title else 0
    pad = 2
    canvas = Image.new("L", (cols * (size + pad) + pad, title_h + rows * (size + caption_h + pad) + pad), 255)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, 2), title, fill=0, font=_font())
    for k in range(n):
        r, c = divmod(k, cols)
        x, y = pad + c * (size + pad), title_h + pad + r * (size + caption_h + pad)
        canvas.paste(to_pil(images[k], scale), (x, y))
        if captions is not None:
            draw.text((x, y + size), str(captions[k])[: max(4, size // 6)], fill=0, font=_font())
    return canvas


def pairs_figure(left: np.ndarray, right: np.ndarray, captions, *, scale: int = 3,
                 title: str = "", cols: int = 3) -> Image.Image:
    """Pairs (left | right) in a grid with a caption under each, e.g. synthetic | nearest training."""
    size = left.shape[1] * scale
    cell_w, cell_h = 2 * size + 4 + 16, size + 16
    cols = max(1, min(cols, len(left)))
    rows = max(1, -(-len(left) // cols))
    canvas = Image.new("L", (cols * cell_w + 8, 18 + rows * cell_h), 255)
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), title, fill=0, font=_font())
    for k in range(len(left)):
        r, c = divmod(k, cols)
        x, y = 4 + c * cell_w, 18 + r * cell_h
        canvas.paste(to_pil(left[k], scale), (x, y))
        canvas.paste(to_pil(right[k], scale), (x + size + 4, y))
        draw.text((x, y + size + 2), str(captions[k]), fill=0, font=_font())
    return canvas


def line_plot(series: dict, *, title: str, xlabel: str, ylabel: str = "",
              width: int = 640, height: int = 360) -> Image.Image:
    """A simple line chart: {name: (x, y)} drawn on shared axes with a legend."""
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    left, right, top, bottom = 60, width - 20, 30, height - 40
    xs = np.concatenate([np.asarray(x, float) for x, _ in series.values()])
    ys = np.concatenate([np.asarray(y, float) for _, y in series.values()])
    x0, x1 = float(np.nanmin(xs)), float(np.nanmax(xs))
    y0, y1 = min(0.0, float(np.nanmin(ys))), float(np.nanmax(ys))
    x1 = x1 if x1 > x0 else x0 + 1.0
    y1 = y1 if y1 > y0 else y0 + 1.0

    def px(x, y):
        return (left + (x - x0) / (x1 - x0) * (right - left),
                bottom - (y - y0) / (y1 - y0) * (bottom - top))

    draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    font = _font()
    draw.text((left, 8), title, fill=(0, 0, 0), font=font)
    draw.text(((left + right) // 2 - 3 * len(xlabel), bottom + 22), xlabel, fill=(0, 0, 0), font=font)
    if ylabel:
        draw.text((4, 8), ylabel, fill=(0, 0, 0), font=font)
    for k in range(5):
        xv = x0 + k * (x1 - x0) / 4
        yv = y0 + k * (y1 - y0) / 4
        x, _ = px(xv, y0)
        _, y = px(x0, yv)
        draw.line([x, bottom, x, bottom + 4], fill=(0, 0, 0))
        draw.text((x - 12, bottom + 6), f"{xv:.3g}", fill=(0, 0, 0), font=font)
        draw.line([left - 4, y, left, y], fill=(0, 0, 0))
        draw.text((4, y - 6), f"{yv:.3g}", fill=(0, 0, 0), font=font)
    for k, (name, (x, y)) in enumerate(series.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        points = [px(a, b) for a, b in zip(np.asarray(x, float), np.asarray(y, float))]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        draw.line([right - 170, top + 10 + 14 * k, right - 150, top + 10 + 14 * k], fill=colour, width=3)
        draw.text((right - 145, top + 4 + 14 * k), str(name), fill=(0, 0, 0), font=font)
    return canvas


def distance_histograms(named: dict, *, title: str, xlabel: str, bins: int = 40) -> Image.Image:
    """Normalised histograms of several value sets on shared bins, as a line chart."""
    values = np.concatenate([np.asarray(v, float) for v in named.values()])
    lo, hi = float(values.min()), float(values.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    series = {}
    for name, v in named.items():
        counts, _ = np.histogram(np.asarray(v, float), edges)
        series[f"{name} (n={len(v)})"] = (centres, counts / max(1, counts.sum()))
    return line_plot(series, title=title, xlabel=xlabel, ylabel="share")
