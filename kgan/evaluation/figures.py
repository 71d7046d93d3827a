"""PNG figures: plots drawn with matplotlib (Agg backend), saved beside `kgan.imaging`'s mosaics.

Mosaics (sample grids, nearest-neighbour pairs) are pixels and are drawn by `kgan.imaging`.
Line plots, histograms and interval charts use matplotlib for readable ticks,
a grid, labels and error bars; tick labels go through `format_number`, so a
value that is zero up to rounding prints as 0, not 1.11e-16.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from kgan import atomic, imaging

_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


def save_png(image, path: str) -> str:
    """Writes a Pillow image (a `kgan.imaging` mosaic) or a matplotlib figure as PNG, atomically."""
    if isinstance(image, Image.Image):
        return imaging.write_png(image, path)
    with atomic.atomic_path(path, suffix=".png") as tmp:
        image.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(image)
    return path


def format_number(value, digits: int = 3) -> str:
    """A short, readable number: 0 for values that are zero up to rounding, no 1.11e-16.

    Values are rounded to `digits` significant digits; magnitudes from 1e-3
    to 1e5 print in plain notation, others in scientific notation.
    """
    if value is None:
        return "n/a"
    value = float(value)
    if not math.isfinite(value):
        return "n/a" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if abs(value) < 1e-9:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e5 or magnitude < 1e-3:
        return f"{value:.{max(digits - 1, 0)}e}"
    text = f"{value:.{digits}g}"
    if "e" in text:  # e.g. 1.23e+03 from %g: write it out plainly
        text = f"{value:.{max(digits - 1 - int(math.floor(math.log10(magnitude))), 0)}f}"
    return text


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    return plt, FuncFormatter(lambda v, _pos: format_number(v))


def _axes(title: str, xlabel: str, ylabel: str, size=(7.0, 4.0)):
    plt, formatter = _pyplot()
    fig, ax = plt.subplots(figsize=size)
    ax.set_title(title, fontsize=12)
    ax.set_xlabel(xlabel, fontsize=11)
    ax.set_ylabel(ylabel, fontsize=11)
    ax.grid(True, alpha=0.35)
    ax.xaxis.set_major_formatter(formatter)
    ax.yaxis.set_major_formatter(formatter)
    ax.tick_params(labelsize=10)
    return fig, ax


def line_plot(series: dict, *, title: str, xlabel: str, ylabel: str = "", steps: bool = False):
    """A matplotlib figure of {name: (x, y)} lines on shared axes, with a legend."""
    fig, ax = _axes(title, xlabel, ylabel)
    for name, (x, y) in series.items():
        if steps:
            ax.step(
                np.asarray(x, float),
                np.asarray(y, float),
                where="mid",
                label=str(name),
                linewidth=1.6,
            )
        else:
            ax.plot(np.asarray(x, float), np.asarray(y, float), label=str(name), linewidth=1.6)
    ax.set_ylim(
        bottom=0 if all(np.nanmin(np.asarray(y, float)) >= 0 for _, y in series.values()) else None
    )
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def distance_histograms(named: dict, *, title: str, xlabel: str, bins: int = 40):
    """Normalised histograms (share of each set per bin) of several value sets on shared bins."""
    values = np.concatenate([np.asarray(v, float) for v in named.values()])
    lo, hi = float(values.min()), float(values.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    fig, ax = _axes(title, xlabel, "share of slices")
    for name, v in named.items():
        v = np.asarray(v, float)
        ax.hist(
            v,
            bins=edges,
            weights=np.full(len(v), 1.0 / max(len(v), 1)),
            histtype="step",
            linewidth=1.8,
            label=f"{name} (n={len(v)})",
        )
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def interval_bars(
    groups: dict,
    *,
    title: str,
    ylabel: str,
    reference: float | None = None,
    reference_label: str = "",
):
    """Grouped bars with 95 % intervals as error bars.

    Args:
      groups: {group label: {series label: (value, [lo, hi] or None)}}.
      title, ylabel: texts.
      reference: optional horizontal line (e.g. chance, 0.5).
      reference_label: its legend text.
    """
    fig, ax = _axes(title, "", ylabel, size=(max(6.0, 1.4 * len(groups) + 3), 4.0))
    names = list(groups)
    series = list(dict.fromkeys(s for g in groups.values() for s in g))
    width = 0.8 / max(len(series), 1)
    for k, label in enumerate(series):
        xs, ys, err = [], [], [[], []]
        for i, g in enumerate(names):
            if label not in groups[g] or groups[g][label][0] is None:
                continue
            value, ci = groups[g][label]
            xs.append(i + (k - (len(series) - 1) / 2) * width)
            ys.append(value)
            lo, hi = ci if ci else (value, value)
            err[0].append(max(value - lo, 0.0))
            err[1].append(max(hi - value, 0.0))
        ax.bar(xs, ys, width=width * 0.95, yerr=err, capsize=4, label=label, alpha=0.85)
        for x, y in zip(xs, ys):  # inside the bar, upright: labels of neighbours never overlap
            ax.annotate(
                format_number(y),
                (x, 0),
                textcoords="offset points",
                xytext=(0, 4),
                ha="center",
                va="bottom",
                rotation=90,
                fontsize=8,
                color="white",
            )
    if reference is not None:
        ax.axhline(
            reference, color="black", linestyle="--", linewidth=1, label=reference_label or None
        )
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=10)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
