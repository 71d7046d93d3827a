"""Where synthetic slices come from: any `generate(count, seed, modality, tumour)` callable.

The evaluation does not care whether slices come from an exported SavedModel
(`kgan.sampling.GeneratorSampler`), a Keras generator in memory, or a test's
function; it needs only that callable and two facts: is the generator
conditional, and on which modalities was it trained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from kgan import names


@dataclasses.dataclass
class SyntheticSource:
    """A generator to evaluate.

    Attributes:
      generate: `generate(count, seed, modality=None, tumour=None)` returning
        float32 [N, S, S, 1] in [-1, 1], deterministic per seed; for
        conditional generators modality and tumour are int arrays [N]
        (modality indexes `names.MODALITIES`).
      conditional: whether the generator takes (modality, tumour).
      modalities: names of the modalities it was trained on.
      name: shown in the report.
      metadata: anything worth recording (e.g. the export's metadata).
    """

    generate: Callable[..., np.ndarray]
    conditional: bool = False
    modalities: Sequence[str] = names.MODALITIES
    name: str = "generator"
    metadata: dict = dataclasses.field(default_factory=dict)

    def draw(self, count: int, seed: int, modality=None, tumour=None) -> np.ndarray:
        """Calls `generate` and checks what comes back."""
        if self.conditional:
            images = self.generate(count, seed=seed, modality=modality, tumour=tumour)
        else:
            images = self.generate(count, seed=seed)
        images = np.asarray(images, np.float32)
        if images.ndim == 3:
            images = images[..., None]
        if images.shape[0] != count or images.ndim != 4 or images.shape[-1] != 1:
            raise ValueError(
                f"{self.name}: generate({count}) returned shape {images.shape}, "
                f"expected [{count}, S, S, 1]"
            )
        if not np.isfinite(images).all():
            raise ValueError(f"{self.name}: generated slices contain NaN or infinity")
        return np.clip(images, -1.0, 1.0)


def from_export(path: str) -> SyntheticSource:
    """Wraps an exported SavedModel (`exports/NAME/VERSION`) via `kgan.sampling`."""
    from kgan.sampling import GeneratorSampler  # imported late: only this path needs it

    sampler = GeneratorSampler(path)
    return SyntheticSource(
        generate=sampler.generate,
        conditional=sampler.conditional,
        modalities=tuple(sampler.modalities),
        name=f"{sampler.gan} ({sampler.path})",
        metadata={"export": sampler.path, **sampler.metadata},
    )


def stored_exports(results_path: str, keys: Sequence[str] = (), log=print) -> dict[str, str]:
    """{run: export directory} of the runs `scripts/bench_quality.py` recorded, found here.

    The benchmark scripts that re-measure stored runs start from this: results.json travels
    with the repository, the exports do not, so a run whose export is not on this machine is
    skipped with a line saying so.

    Args:
      results_path: bench_quality's results.json.
      keys: the runs wanted (default: every stored run).
      log: where skipped runs, and wanted runs results.json does not hold, are named.

    Returns:
      The runs found; empty when none is here or a wanted run is unknown (said in `log`).
    """
    import json
    import os

    with open(results_path) as f:
        stored = json.load(f)
    unknown = [k for k in keys if k not in stored]
    if unknown:
        log(
            f"error: {results_path} holds no run {', '.join(unknown)}; it holds {', '.join(stored)}"
        )
        return {}
    wanted = list(keys) or list(stored)
    found = {k: stored[k]["export"] for k in wanted if os.path.isdir(stored[k]["export"])}
    missing = [k for k in wanted if k not in found]
    if missing:
        log(f"skipped (export not on this machine): {', '.join(missing)}")
    if not found:
        log(f"no export of {results_path} is on this machine")
    return found
