"""Slice selection: draw more slices than asked, keep the most real-looking (paper's future work).

Measured, and not offered in `sample.py`: on DCGAN 64x64 (docs/quality/levers.md), keeping the
best half moved no metric beyond its interval (two-sample accuracy 99.8 -> 99.7 %; FID 8.3 ->
12.7 and SWD 47 -> 85, worse though within the intervals): the filter favours what its own
classifier likes, not what real slices look like. It stays here, used by
`scripts/bench_quality.py --realism-filter`, so that the measurement can be repeated on other
generators.

A generator's slices are not all equally good. A realism filter draws
`1 / keep` candidates per slice wanted and keeps the ones a classifier finds
most real:

* **realism**: a small CNN (`kgan.evaluation.cnn`) trained to tell the
  generator's real *training* slices from slices the generator drew with a
  seed stream of its own; its P(real) ranks the candidates;
* **modality shares** (unconditional generators trained on several
  modalities): a small softmax CNN trained on the same real slices places
  each candidate in a modality, and each modality keeps its share of the
  real training slices, so a generator that under-draws T1ce is not made
  worse by the ranking and is corrected where it has enough candidates;
* conditional generators draw `1 / keep` candidates for each requested
  condition and keep the best of each group, so the conditions asked for
  are the conditions served.

Both classifiers see only the training dataset, never the evaluation
patients, so an evaluation of filtered slices still compares with patients
neither the generator nor its filter has seen. They share the evaluation's
two-sample classifier's architecture: a filtered generator's two-sample
accuracy should be read beside its encoder-based numbers (FID, SWD), which
the filter does not optimise.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import keras
import numpy as np

from kgan.evaluation import cnn

#: Seed stream of the draws the realism classifier trains on (apart from sampling seeds).
FIT_DRAW_SEED = 7_000_003


def modality_classifier(image_size: int, classes: int, seed: int, width: int = 16) -> keras.Model:
    """A seeded small softmax CNN over `classes` modalities (the evaluation CNN's trunk)."""
    keras.utils.set_random_seed(seed)
    inputs, features = cnn.conv_trunk(image_size, width, name="modality")
    out = keras.layers.Dense(classes, activation="softmax", name="modality")(features)
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return model


@dataclasses.dataclass
class RealismFilter:
    """Fitted classifiers and the real modality shares that `select` keeps.

    Attributes:
      realism: binary CNN, output P(real).
      modality: softmax CNN over `modality_ids`, or None (one modality, or conditional).
      modality_ids: the modality index of each softmax output.
      shares: the real training slices' share of each of `modality_ids`.
      info: how it was fitted (for manifests and reports).
    """

    realism: keras.Model
    modality: keras.Model | None
    modality_ids: list[int]
    shares: np.ndarray
    info: dict

    @classmethod
    def fit(
        cls,
        draw: Callable[[int, int], np.ndarray],
        real_images: np.ndarray,
        real_modality: np.ndarray,
        *,
        seed: int = 0,
        per_class: int = 2000,
        epochs: int = 5,
        min_steps: int = cnn.MIN_STEPS,
        conditional: bool = False,
    ) -> RealismFilter:
        """Trains the classifiers on real training slices and `draw(count, seed)` generator slices.

        Args:
          draw: the generator, `draw(count, seed)` -> float32 [N, S, S, 1] in [-1, 1].
          real_images, real_modality: the generator's training slices and their modality indices.
          seed: seeds the subsampling, the draws and the classifiers.
          per_class: real and generated slices the realism classifier trains on.
          conditional: the generator takes conditions (no modality quotas then).
        """
        real_images = np.asarray(real_images, np.float32)
        real_modality = np.asarray(real_modality).astype(int)
        if len(real_images) < 2:
            raise ValueError(
                f"the realism filter needs real training slices, got {len(real_images)}"
            )
        rng = np.random.default_rng(seed)
        n = min(per_class, len(real_images))
        real = real_images[rng.permutation(len(real_images))[:n]]
        fake = np.asarray(draw(n, FIT_DRAW_SEED + seed), np.float32)
        x = np.concatenate([real, fake])
        y = np.concatenate([np.ones(n), np.zeros(n)])
        realism = cnn.fit_binary(x, y, seed=seed, epochs=epochs, min_steps=min_steps)
        ids = sorted({int(m) for m in real_modality})
        shares = np.array([np.mean(real_modality == m) for m in ids])
        modality = None
        if not conditional and len(ids) > 1:
            modality = modality_classifier(real_images.shape[1], len(ids), seed + 1)
            target = np.searchsorted(ids, real_modality)
            order = np.random.default_rng(seed + 1).permutation(len(real_images))
            modality.fit(
                real_images[order],
                target[order],
                batch_size=64,
                verbose=0,
                epochs=cnn.epochs_for(len(real_images), epochs, 64, min_steps),
            )
        info = {
            "real_slices": int(n),
            "generated_slices": int(n),
            "seed": int(seed),
            "fit_draw_seed": int(FIT_DRAW_SEED + seed),
            "modalities": ids,
            "real_shares": [float(s) for s in shares],
            "modality_quotas": modality is not None,
        }
        return cls(realism, modality, ids, shares, info)

    def realness(self, images: np.ndarray) -> np.ndarray:
        """P(real) of each slice [N]."""
        return cnn.predict(self.realism, images)[:, 0]

    def modality_of(self, images: np.ndarray) -> np.ndarray:
        """Modality index of each slice [N] by the modality classifier."""
        probs = cnn.predict(self.modality, images)
        return np.asarray(self.modality_ids)[np.argmax(probs, axis=1)]

    def select(self, images: np.ndarray, count: int) -> np.ndarray:
        """Indices (ascending) of the `count` candidates to keep, in the real modality shares.

        Each modality gets its share of `count` (largest remainders) filled with
        its most real-looking candidates; a modality short of candidates gives
        its place to the most real-looking of the rest. Shares come first: a
        modality the generator rarely draws well may keep weaker candidates
        than the others (a larger 1 / keep leaves it more to choose from).
        """
        if count > len(images):
            raise ValueError(f"cannot keep {count} of {len(images)} candidates")
        score = self.realness(images)
        if self.modality is None:
            return np.sort(np.argsort(-score, kind="stable")[:count])
        placed = self.modality_of(images)
        exact = self.shares * count
        quota = np.floor(exact).astype(int)
        quota[np.argsort(-(exact - quota), kind="stable")[: count - quota.sum()]] += 1
        keep = []
        for m, q in zip(self.modality_ids, quota):
            members = np.flatnonzero(placed == m)
            keep.extend(members[np.argsort(-score[members], kind="stable")[:q]])
        rest = np.setdiff1d(np.arange(len(images)), keep)
        keep.extend(rest[np.argsort(-score[rest], kind="stable")[: count - len(keep)]])
        return np.sort(np.asarray(keep, int))

    def best_of_groups(self, images: np.ndarray, groups: int) -> np.ndarray:
        """For candidates laid out as [groups x k] (k per request), the best index of each group."""
        score = self.realness(images).reshape(groups, -1)
        k = score.shape[1]
        return np.arange(groups) * k + np.argmax(score, axis=1)


def candidates_per_slice(keep: float) -> int:
    """Candidates drawn per slice kept: 1 / keep, rounded up (keep in (0, 1])."""
    if not 0 < keep <= 1:
        raise ValueError(
            f"the realism filter keeps a fraction in (0, 1] of the candidates, got {keep}"
        )
    return int(math.ceil(1.0 / keep - 1e-9))


def filtered_generate(
    generate: Callable,
    flt: RealismFilter,
    keep: float,
    conditional: bool,
    conditions: Callable | None = None,
) -> Callable:
    """`generate(count, seed, modality=None, tumour=None)` keeping the best of 1 / keep candidates.

    Unconditional: draws count * k candidates with the same seed and keeps
    `flt.select`. Conditional: each requested condition (or, when none is
    given, `conditions(count)`'s default mix) is repeated k times and the
    best candidate of each group is kept, so slice i has the condition asked
    for at i.
    """
    k = candidates_per_slice(keep)

    def draw(count, seed=0, modality=None, tumour=None):
        if not conditional:
            candidates = np.asarray(generate(count * k, seed=seed), np.float32)
            return candidates[flt.select(candidates, count)]
        if (modality is None or tumour is None) and conditions is not None:
            default_mod, default_tum = conditions(count)
            modality = default_mod if modality is None else modality
            tumour = default_tum if tumour is None else tumour
        mods = None if modality is None else np.repeat(np.broadcast_to(modality, [count]), k)
        tums = None if tumour is None else np.repeat(np.broadcast_to(tumour, [count]), k)
        candidates = np.asarray(
            generate(count * k, seed=seed, modality=mods, tumour=tums), np.float32
        )
        return candidates[flt.best_of_groups(candidates, count)]

    return draw


def for_export(
    sampler,
    keep: float,
    data: str | None = None,
    data_dir: str | None = None,
    seed: int = 0,
    log=print,
):
    """A realism-filtered `generate` for an export (`kgan.sampling.GeneratorSampler`), and its info.

    Args:
      sampler: the export.
      keep: fraction of candidates kept (0.5: best of two).
      data: the training dataset (name or directory) the classifiers learn real slices
        from; None: the one the export's metadata names.
      data_dir: dataset home for names.
      seed: seeds the classifiers and their generator draws.
    """
    from kgan import pipeline, schema
    from kgan.evaluation import cohort

    data = data or cohort.dataset_from_metadata(sampler.metadata, data_dir)
    covered = [m for m in sampler.modalities if m in schema.MODALITIES]
    x, y = pipeline.load_arrays(data, "train", modalities=covered, data_dir=data_dir)
    log(
        f"realism filter: training its classifiers on real slices of {data} ({len(x)}; the realism "
        f"classifier on up to 2,000 of them and as many generated ones), keeping {keep:g} of the "
        "candidates"
    )
    flt = RealismFilter.fit(
        lambda n, s: sampler.generate(n, seed=s),
        x,
        y["modality"],
        seed=seed,
        conditional=sampler.conditional,
    )
    info = {
        **flt.info,
        "keep": float(keep),
        "candidates_per_slice": candidates_per_slice(keep),
        "data": data,
    }
    return filtered_generate(
        sampler.generate, flt, keep, sampler.conditional, conditions=lambda n: sampler.conditions(n)
    ), info
