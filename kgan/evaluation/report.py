"""The evaluation report: every metric, its real-vs-real floor, 95 % intervals and counts.

`evaluate` compares a generator's slices with real patients it never saw and
writes `report.json` (machines; its `summary` block holds the headline
numbers), `report.md` and `figures/*.png` (people).

Which patients: against the phantom, the evaluation cohort (new phantom
patients, `cohort.evaluation_cohort`); against a real dataset, its held-out
splits. The patients are split (seeded, by patient) into halves A and B, and
each half again into two quarters. Synthetic numbers compare the synthetic
slices with half A; the floor is the same number for half B against half A,
at the same sample count: a synthetic number near its floor is as good as
another group of real patients. The two-sample test trains and tests on
disjoint patients and samples (see `two_sample_test`). Every number carries a
95 % cluster-bootstrap interval (patients on the real side, slices on the
synthetic side; `kgan.evaluation.bootstrap`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import re
import time

import numpy as np

from kgan import atomic, imaging, names, pipeline
from kgan.evaluation import (
    bootstrap,
    cohort,
    coverage,
    diversity,
    downstream,
    figures,
    frechet,
    intensity,
    memorisation,
    swd,
    two_sample,
)
from kgan.evaluation import encoder as encoder_lib
from kgan.evaluation.cohort import EvaluationInputError
from kgan.evaluation.confusion import TuringTable
from kgan.evaluation.sources import SyntheticSource

STEPS = 8
#: Fewest slices per side for a per-modality comparison to be reported.
MIN_GROUP = 20
REPORT_VERSION = 4
#: Random patient splits the two-sample tests pool (one split alone swings far around chance).
TWO_SAMPLE_REPEATS = 3
#: Split r uses seeds["split"] + r * this (halves) and + 1, + 2 (quarters).
SPLIT_SEED_STRIDE = 100


class Progress:
    """Prints numbered steps with elapsed seconds, so a long evaluation shows where it is."""

    def __init__(self, total: int, log=print):
        self.total, self.log, self.step = total, log, 0
        self.start = time.perf_counter()
        self.timings = {}
        self._current = None
        self._t = self.start

    def __call__(self, key: str, description: str):
        now = time.perf_counter()
        if self._current:
            self.timings[self._current] = round(now - self._t, 1)
        self.step += 1
        self._current, self._t = key, now
        self.log(f"[{self.step}/{self.total}] {description} (t = {now - self.start:.0f} s)")

    def finish(self):
        now = time.perf_counter()
        if self._current:
            self.timings[self._current] = round(now - self._t, 1)
        self.timings["total"] = round(now - self.start, 1)
        return self.timings


def _json_safe(value):
    if isinstance(value, dict):
        return {
            str(k): _json_safe(v)
            for k, v in value.items()
            if not str(k).startswith("_") and not isinstance(v, TuringTable)
        }
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def default_encoder_path(
    data: str, image_size: int, base: str = "reports/encoder", data_dir: str | None = None
) -> str:
    """reports/encoder/<dataset slug>-<size>.keras: one encoder per training dataset and size."""
    info = cohort.dataset_info(data, data_dir) if os.path.isdir(data) else {}
    if info.get("name") and info.get("config"):
        name = f"{info['name']}_{info['config']}"
    else:
        name = os.path.basename(os.path.normpath(data)) if os.path.isdir(data) else data
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "dataset"
    return os.path.join(base, f"{slug}-{image_size}.keras")


def draw_synthetic(
    source: SyntheticSource, count: int, seed: int, train_labels: dict, modality_ids: list[int]
):
    """Draws `count` slices; conditional ones follow the training mix of modality and tumour."""
    if not source.conditional:
        return source.draw(count, seed), None, None
    rng = np.random.default_rng([seed, 99])
    mods = np.asarray(train_labels["modality"])
    tum = np.asarray(train_labels["tumour"])
    pick = rng.choice(np.flatnonzero(np.isin(mods, modality_ids)), count, replace=True)
    modality, tumour = mods[pick].astype(np.int32), tum[pick].astype(np.int32)
    return source.draw(count, seed, modality=modality, tumour=tumour), modality, tumour


def generator_image_size(source: SyntheticSource, seed: int = 0) -> int:
    """The generator's slice size (from its metadata, else from one drawn slice)."""
    size = (source.metadata or {}).get("image_size")
    if size:
        return int(size)
    if source.conditional:
        return int(
            source.draw(
                1, seed, modality=np.zeros(1, np.int32), tumour=np.zeros(1, np.int32)
            ).shape[1]
        )
    return int(source.draw(1, seed).shape[1])


def resolve_inputs(
    source: SyntheticSource,
    data: str | None,
    reference: str | None,
    data_dir: str | None = None,
    *,
    eval_patients: int = cohort.EVAL_PATIENTS,
    log=print,
) -> dict:
    """Finds and checks the training dataset and the evaluation patients before any heavy work.

    Args:
      source: the generator (its metadata names its training dataset).
      data: the generator's training dataset, or None for the one its metadata names.
      reference: None or "auto" (the evaluation cohort for phantom data, the
        held-out splits otherwise), "heldout" (the data's held-out splits), or
        a dataset whose patients (all splits) are all new to the generator.
      data_dir: dataset home.
      eval_patients: evaluation cohort size.

    Returns:
      {"data", "reference", "reference_splits", "reference_kind", "size", "train_split"}.

    Raises:
      EvaluationInputError: missing dataset or size mismatch (one line, says what to run).
    """
    where = f"{(source.metadata or {}).get('export', source.name)}/assets.extra/kgan_metadata.json"
    if data is None:
        data = cohort.dataset_from_metadata(source.metadata or {}, data_dir, where)
    try:
        files = pipeline.shard_files(data, "train", data_dir)
    except pipeline.DatasetNotFoundError as e:
        raise EvaluationInputError(f"training dataset {data}: {e}") from None
    size = pipeline.image_size_of(files)
    g_size = generator_image_size(source)
    if g_size != size:
        raise EvaluationInputError(
            f"the generator makes {g_size}x{g_size} slices but dataset {data} holds {size}x{size}: "
            f"pass the {g_size}x{g_size} dataset it was trained on (--data), e.g. build it with "
            f"`python scripts/make_records.py phantom --size {g_size}`"
        )
    first = pipeline.slice_records(data, "train", data_dir=data_dir, with_ids=True).take(1)
    record = next(iter(first.as_numpy_iterator()))[1]
    is_phantom = record["source"] == b"phantom"
    plane = names.PLANES[int(record["plane"])]
    mode = reference or "auto"
    if mode == "auto":
        mode = "cohort" if is_phantom else "heldout"
    if mode == "cohort":
        if not is_phantom:
            raise EvaluationInputError(
                f"the evaluation cohort is phantom data but {data} is not: "
                "use the held-out split (--reference heldout)"
            )
        home = data_dir
        if (
            home is None
        ):  # build beside the training dataset: <home>/phantom_slices/<config>/<version>
            info = cohort.dataset_info(data)
            home = (
                os.path.dirname(os.path.dirname(os.path.dirname(info["directory"])))
                if info.get("name") == "phantom_slices"
                else None
            )
        ref = cohort.evaluation_cohort(plane, size, home, patients=eval_patients, log=log)
        splits = cohort.splits_of(ref)
        kind = (
            f"evaluation cohort: {eval_patients} new phantom patients (seed {cohort.EVAL_SEED}), "
            "never trained on"
        )
    elif mode == "heldout":
        ref = data
        splits = [s for s in cohort.splits_of(data, data_dir) if s != "train"]
        if not splits:
            raise EvaluationInputError(
                f"dataset {data} has no held-out split (validation/test): "
                "pass --reference with a dataset of new patients"
            )
        kind = f"held-out splits ({', '.join(splits)}) of the training dataset"
    else:
        ref = reference
        try:
            splits = cohort.splits_of(ref, data_dir)
        except pipeline.DatasetNotFoundError as e:
            raise EvaluationInputError(f"reference dataset {ref}: {e}") from None
        kind = f"all splits of {ref} (patients taken as new to the generator)"
    r_size = pipeline.image_size_of(pipeline.shard_files(ref, splits[0], data_dir))
    if r_size != size:
        raise EvaluationInputError(
            f"reference dataset {ref} holds {r_size}x{r_size} slices, the generator "
            f"makes {size}x{size}: pass a {size}x{size} dataset"
        )
    return {
        "data": data,
        "reference": ref,
        "reference_splits": splits,
        "reference_kind": kind,
        "size": size,
        "plane": plane,
        "phantom": bool(is_phantom),
    }


def _subsample(idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.permutation(idx)[:n]) if len(idx) > n else np.sort(idx)


def _pair_estimates(images, clusters, pairs, seed, resamples, rng_seed):
    """Mean MS-SSIM of random pairs, with a bootstrap over the first image's cluster."""
    idx = diversity.random_pairs(len(images), pairs, seed)
    values = diversity.ms_ssim(images[idx[:, 0]], images[idx[:, 1]])
    w = bootstrap.cluster_weights(
        np.asarray(clusters)[idx[:, 0]], resamples, np.random.default_rng(rng_seed)
    )
    return bootstrap.estimate(
        values.mean(),
        bootstrap.weighted_mean(values, w),
        pairs=len(values),
        clusters=len(np.unique(np.asarray(clusters)[idx[:, 0]])),
    )


@dataclasses.dataclass(frozen=True)
class _Slices:
    """One side of a comparison: images, the cluster each one is resampled by (its patient; a
    synthetic slice is its own cluster), and the encoder's features of each."""

    images: np.ndarray
    clusters: np.ndarray
    features: np.ndarray


@dataclasses.dataclass(frozen=True)
class _Budget:
    """How much each metric draws: slices per group, pairs and bootstrap resamples."""

    samples: int
    per_modality: int | None
    resamples: int
    swd_resamples: int
    pairs: int


def _compare(name, reference: _Slices, floor: _Slices, synthetic: _Slices, seeds, budget: _Budget):
    """Fidelity, intensity and diversity of one group: synthetic vs half A and floor (B vs A)."""
    ref, ref_c, f_ref = reference.images, reference.clusters, reference.features
    floor_x, floor_c, f_floor = floor.images, floor.clusters, floor.features
    syn, syn_c, f_syn = synthetic.images, synthetic.clusters, synthetic.features
    resamples, swd_resamples, pairs = budget.resamples, budget.swd_resamples, budget.pairs
    rng = np.random.default_rng([seeds["bootstrap"], len(name)])
    n_syn = len(syn)
    w_ref = bootstrap.cluster_weights(ref_c, resamples, rng)
    w_floor = bootstrap.cluster_weights(floor_c, resamples, rng)
    w_syn = bootstrap.cluster_weights(syn_c, resamples, rng)
    counts = {"n_reference": len(ref), "reference_patients": len(np.unique(ref_c))}
    syn_counts = {**counts, "n_compared": n_syn}
    floor_counts = {
        **counts,
        "n_compared": len(floor_x),
        "compared_patients": len(np.unique(floor_c)),
    }
    out = {
        "n_reference_half_a": len(ref),
        "reference_patients": int(len(np.unique(ref_c))),
        "n_compared": n_syn,
        "floor_patients": int(len(np.unique(floor_c))),
    }
    entry = {}
    for label, cand, w_cand, c in (
        ("synthetic", syn, w_syn, syn_counts),
        ("floor", floor_x, w_floor, floor_counts),
    ):
        obj = swd.WeightedSWD(ref, cand, seed=seeds["swd"])
        point = obj.point()
        est = bootstrap.estimate(
            point["mean"],
            obj.resampled(w_ref[:swd_resamples], w_cand[:swd_resamples]),
            bias_corrected=True,
            floor_zero=True,
            **c,
        )
        est["levels"] = point["levels"]
        entry[label] = est
    out["swd_x1e3"] = entry
    out["fid"] = {
        label: bootstrap.estimate(
            frechet.fid(f_ref, fc),
            frechet.fid_resampled(f_ref, fc, w_ref, wc),
            bias_corrected=True,
            floor_zero=True,
            **c,
        )
        for label, fc, wc, c in (
            ("synthetic", f_syn, w_syn, syn_counts),
            ("floor", f_floor, w_floor, floor_counts),
        )
    }
    out["kid"] = {}
    for label, fc, wc, c in (
        ("synthetic", f_syn, w_syn, syn_counts),
        ("floor", f_floor, w_floor, floor_counts),
    ):
        point, values = frechet.kid_full(f_ref, fc, w_ref, wc)
        out["kid"][label] = bootstrap.estimate(point, values, **c)
    h_ref, share_ref = intensity.per_slice_histograms(ref)
    inten = {"n_reference_half_a": len(ref), "n_compared": n_syn}
    for label, cand, wc, c in (
        ("synthetic", syn, w_syn, syn_counts),
        ("floor", floor_x, w_floor, floor_counts),
    ):
        h_c, share_c = intensity.per_slice_histograms(cand)
        ones_r, ones_c = np.ones((1, len(ref))), np.ones((1, len(cand)))
        inten[label] = {
            "wasserstein1": bootstrap.estimate(
                float(intensity.wasserstein1_resampled(h_ref, h_c, ones_r, ones_c)[0]),
                intensity.wasserstein1_resampled(h_ref, h_c, w_ref, wc),
                bias_corrected=True,
                floor_zero=True,
                **c,
            ),
            "brain_share": bootstrap.estimate(
                share_c.mean(), bootstrap.weighted_mean(share_c, wc), **c
            ),
            "histogram": (h_c.sum(0) / max(h_c.sum(), 1)).tolist(),
        }
    inten["brain_share_reference"] = bootstrap.estimate(
        share_ref.mean(), bootstrap.weighted_mean(share_ref, w_ref), **counts
    )
    inten["histogram_reference"] = (h_ref.sum(0) / max(h_ref.sum(), 1)).tolist()
    inten["bin_edges"] = np.linspace(intensity.BRAIN_THRESHOLD, 1.0, intensity.BINS + 1).tolist()
    div = {
        "synthetic": _pair_estimates(
            syn, syn_c, pairs, seeds["pairs"], resamples, [seeds["bootstrap"], 11]
        ),
        "real_half_a": _pair_estimates(
            ref, ref_c, pairs, seeds["pairs"], resamples, [seeds["bootstrap"], 12]
        ),
        "real_half_b": _pair_estimates(
            floor_x, floor_c, pairs, seeds["pairs"], resamples, [seeds["bootstrap"], 13]
        ),
        "seed": seeds["pairs"],
        "ms_ssim_scales": diversity.scales_for(ref.shape[1]),
        "power_factors": diversity.power_factors(ref.shape[1]),
    }
    return out, inten, div


def _memorisation_intervals(mem: dict, heldout_clusters, seeds, resamples) -> dict:
    """Bootstrap intervals for the shares of synthetic slices closer than held-out percentiles."""
    arrays = mem["_arrays"]
    s, h = arrays["synthetic_rms"], arrays["heldout_rms"]
    rng = np.random.default_rng([seeds["bootstrap"], 21])
    wh = bootstrap.cluster_weights(heldout_clusters, resamples, rng).astype(int)
    ws = bootstrap.cluster_weights(np.arange(len(s)), resamples, rng).astype(int)
    out = {}
    for q in (1, 5):
        values = np.empty(resamples)
        for b in range(resamples):
            cut = np.percentile(np.repeat(h, wh[b]), q)
            values[b] = np.sum(ws[b] * (s < cut)) / ws[b].sum()
        out[f"synthetic_below_heldout_p{q}"] = bootstrap.estimate(
            mem["pixels"][f"synthetic_below_heldout_p{q}"],
            values,
            n_synthetic=len(s),
            n_heldout=len(h),
            heldout_patients=len(np.unique(heldout_clusters)),
        )
    return out


@dataclasses.dataclass
class RealSlices:
    """The real slices of one evaluation: the generator's training split, and the reference
    patients in two halves (A, B) of two quarters each, with the warnings their size calls for."""

    inputs: dict
    train_x: np.ndarray
    train_y: dict
    ref_x: np.ndarray
    ref_y: dict
    in_a: np.ndarray
    in_b: np.ndarray
    quarters: tuple
    modality_ids: list
    warnings: list
    #: The encoder's modality head on ref_x (set once the encoder is loaded).
    ref_head: np.ndarray | None = None

    @property
    def data(self) -> str:
        return self.inputs["data"]

    @property
    def size(self) -> int:
        return self.inputs["size"]

    @property
    def ref_c(self) -> np.ndarray:
        return self.ref_y["case_id"]

    @property
    def n_patients(self) -> int:
        return len(np.unique(self.ref_c))

    @property
    def half_patients(self) -> tuple[int, int]:
        return len(np.unique(self.ref_c[self.in_a])), len(np.unique(self.ref_c[self.in_b]))


def load_real(
    source: SyntheticSource, data, reference, data_dir, eval_patients, seeds, log
) -> RealSlices:
    """Loads the training split and the reference patients, and splits the patients in halves."""
    inputs = resolve_inputs(source, data, reference, data_dir, eval_patients=eval_patients, log=log)
    data, ref_name = inputs["data"], inputs["reference"]
    covered = [m for m in source.modalities if m in names.MODALITIES]
    train_x, train_y = pipeline.load_arrays(data, "train", modalities=covered, data_dir=data_dir)
    ref_x, ref_y = cohort.load_splits(ref_name, inputs["reference_splits"], covered, data_dir)
    size = inputs["size"]
    overlap = sorted(set(np.unique(ref_y["case_id"])) & set(np.unique(train_y["case_id"])))
    if overlap:
        raise EvaluationInputError(
            f"{len(overlap)} reference patients are training patients of {data} "
            f"(e.g. {overlap[0]}): a floor needs patients the generator never saw"
        )
    ref_c = ref_y["case_id"]
    n_patients = len(np.unique(ref_c))
    if n_patients < 4:
        raise EvaluationInputError(
            f"reference {ref_name} holds {n_patients} patient(s); the floors need at "
            f"least 4 (2 per half), better {2 * cohort.MIN_PATIENTS_PER_SIDE}"
        )
    in_a, in_b, a1, a2, b1, b2 = _split(ref_c, seeds["split"])
    modality_ids = sorted({int(m) for m in ref_y["modality"]})
    pa, pb = len(np.unique(ref_c[in_a])), len(np.unique(ref_c[in_b]))
    warnings = []
    if min(pa, pb) < cohort.MIN_PATIENTS_PER_SIDE:
        warnings.append(
            f"small real cohort: halves of {pa} and {pb} patients (fewer than "
            f"{cohort.MIN_PATIENTS_PER_SIDE} per side). The floors compare small groups of "
            "patients: the two-sample floor can sit well above 50 % because a classifier learns "
            "individual patients, and every interval is wide. Read only differences larger than "
            "the intervals; use more held-out patients (or the phantom evaluation cohort) for firm "
            "floors."
        )
    for w in warnings:
        log(f"  WARNING: {w}")
    log(
        f"  training dataset {data}: {len(train_x)} slices, {len(np.unique(train_y['case_id']))} "
        f"patients; reference: {inputs['reference_kind']} ({ref_name}): {len(ref_x)} slices, "
        f"{n_patients} patients (half A {pa}, half B {pb}); {size}x{size}"
    )
    return RealSlices(
        inputs, train_x, train_y, ref_x, ref_y, in_a, in_b, (a1, a2, b1, b2), modality_ids, warnings
    )


def _load_encoder(real: RealSlices, encoder_path, data_dir, seeds, encoder_epochs, log):
    """The feature encoder: the cached file, else trained once on the training split."""
    enc_path = encoder_path or default_encoder_path(real.data, real.size, data_dir=data_dir)
    enc = encoder_lib.load_or_train(
        enc_path,
        lambda: (real.train_x, real.train_y),
        dataset=real.data,
        seed=seeds["encoder"],
        epochs=encoder_epochs,
        log=log,
    )
    if enc.image_size != real.size:
        raise EvaluationInputError(
            f"encoder {enc_path} was trained on {enc.image_size}x{enc.image_size} "
            f"slices, the data is {real.size}x{real.size}: pass another --encoder path"
        )
    return enc


def _synthetic_modalities(source, real: RealSlices, s1, s1_mod, s1_head):
    """The modality of each slice of set 1, and where it comes from."""
    if source.conditional:
        return s1_mod, "generator condition"
    if len(real.modality_ids) == 1:
        return np.full(len(s1), real.modality_ids[0]), "the generator's only training modality"
    return s1_head, "the encoder's modality head (unconditional generator)"


def _coverage(real: RealSlices, s1_head, s2_head, conditional: bool, seeds, resamples) -> dict:
    """Modality coverage: the share of each modality among synthetic slices against real."""
    cover = coverage.shares(
        np.concatenate([s1_head, s2_head]),
        real.ref_head,
        real.ref_y["modality"],
        real.ref_c,
        modalities=real.modality_ids,
        seed=seeds["bootstrap"],
        resamples=resamples,
    )
    cover["classified_by"] = (
        "encoder modality head (synthetic and real alike); real_labels: true labels"
    )
    if conditional:
        cover["note"] = (
            "conditional generator: shares follow the requested conditions; the head shows whether "
            "slices match them"
        )
    return cover


def _per_modality_pool(source, enc, real: RealSlices, s1, s1_mod, seeds, budget: _Budget):
    """Synthetic slices with their modality, enough of each for the per-modality metrics.

    A conditional generator is asked for each modality directly; an unconditional one draws
    more slices until the encoder's head has found `budget.per_modality` of each (at most
    8 x `budget.samples`).

    Returns:
      (images, modality, slices drawn by an unconditional generator or None).
    """
    modality_ids = real.modality_ids
    per_modality = budget.per_modality
    if len(modality_ids) == 1:
        return s1, s1_mod, None
    if source.conditional:
        rng_c = np.random.default_rng([seeds["extra_draws"], 1])
        parts, mods = [], []
        for k, m in enumerate(modality_ids):
            tum = np.asarray(real.train_y["tumour"])[np.asarray(real.train_y["modality"]) == m]
            tumour = rng_c.choice(tum, per_modality).astype(np.int32)
            parts.append(
                source.draw(
                    per_modality,
                    seeds["extra_draws"] * 1000 + k,
                    modality=np.full(per_modality, m, np.int32),
                    tumour=tumour,
                )
            )
            mods.append(np.full(per_modality, m))
        return np.concatenate(parts), np.concatenate(mods), None
    pool_x, pool_mod = s1, s1_mod
    drawn, k = len(s1), 0
    while (
        min(np.sum(pool_mod == m) for m in modality_ids) < per_modality
        and drawn < 8 * budget.samples
    ):
        extra = source.draw(budget.samples, seeds["extra_draws"] * 1000 + k)
        pool_x = np.concatenate([pool_x, extra])
        pool_mod = np.concatenate([pool_mod, enc.modality(extra)])
        drawn, k = drawn + budget.samples, k + 1
    return pool_x, pool_mod, int(drawn)


def _fidelity(real: RealSlices, enc, f_ref, s1, pool, seeds, budget: _Budget, log):
    """Fidelity, intensity and diversity for all slices and for each modality.

    `s1` is the synthetic set for all slices; `pool` = (images, modality) the per-modality
    pool of `_coverage`, from which each modality's group takes its first slices.
    """
    pool_x, pool_mod = pool
    samples, per_modality = budget.samples, budget.per_modality
    ref_x, ref_y, ref_c = real.ref_x, real.ref_y, real.ref_c
    rng = np.random.default_rng(seeds["subsample"])
    groups = {"all": None}
    if len(real.modality_ids) > 1:
        groups.update({names.MODALITIES[m]: m for m in real.modality_ids})
    else:
        groups = {names.MODALITIES[real.modality_ids[0]]: real.modality_ids[0]}
    fidelity, inten, div = {}, {}, {}
    for name, m in groups.items():
        sel = np.ones(len(ref_x), bool) if m is None else ref_y["modality"] == m
        ia = _subsample(np.flatnonzero(real.in_a & sel), samples, rng)
        ib_all = np.flatnonzero(real.in_b & sel)
        if m is None:
            syn = s1
        else:
            syn = pool_x[pool_mod == m][:per_modality]
        n = min(len(ib_all), len(syn), samples)
        if n < MIN_GROUP or len(ia) < MIN_GROUP:
            reason = (
                f"too few slices to mean something (half A {len(ia)}, half B {len(ib_all)}, "
                f"synthetic {len(syn)}; at least {MIN_GROUP} each)"
            )
            fidelity[name] = {"skipped": reason}
            continue
        ib = _subsample(ib_all, n, rng)
        syn = syn[np.sort(rng.permutation(len(syn))[:n])]
        f_syn = enc.features(syn)
        fidelity[name], inten[name], div[name] = _compare(
            name,
            _Slices(ref_x[ia], ref_c[ia], f_ref[ia]),
            _Slices(ref_x[ib], ref_c[ib], f_ref[ib]),
            _Slices(syn, np.arange(len(syn)), f_syn),
            seeds,
            budget,
        )
        log(
            f"  {name}: n = {n}; SWD {fidelity[name]['swd_x1e3']['synthetic']['value']:.1f} "
            f"(floor {fidelity[name]['swd_x1e3']['floor']['value']:.1f}); FID "
            f"{fidelity[name]['fid']['synthetic']['value']:.3f} (floor "
            f"{fidelity[name]['fid']['floor']['value']:.3f})"
        )
    return fidelity, inten, div


def _memorisation(real: RealSlices, enc, f_ref, s1, seeds, samples, resamples) -> dict:
    """Nearest training slice of each synthetic and held-out real slice, with intervals."""
    train_x, train_y = real.train_x, real.train_y
    ia_all = _subsample(
        np.flatnonzero(real.in_a), samples, np.random.default_rng(seeds["subsample"] + 1)
    )
    f_s1, f_train = enc.features(s1), enc.features(train_x)
    mem = memorisation.memorisation(
        s1,
        real.ref_x[ia_all],
        train_x,
        synthetic_features=f_s1,
        heldout_features=f_ref[ia_all],
        train_features=f_train,
    )
    mem["intervals"] = _memorisation_intervals(mem, real.ref_c[ia_all], seeds, resamples)
    mem["n_train_neighbours"] = int(len(train_x))
    mem["n_heldout"] = int(len(ia_all))
    arrays = mem["_arrays"]
    closest = np.argsort(arrays["synthetic_rms"])[:12]
    mem["closest_pairs"] = [
        {
            "synthetic_index": int(k),
            "train_case_id": str(train_y["case_id"][arrays["synthetic_nearest"][k]]),
            "train_slice_index": int(train_y["slice_index"][arrays["synthetic_nearest"][k]]),
            "rms": float(arrays["synthetic_rms"][k]),
        }
        for k in closest[:5]
    ]
    return mem


def evaluate(
    source: SyntheticSource,
    data: str | None,
    out_dir: str,
    *,
    reference: str | None = None,
    seed: int = 0,
    samples: int = 1000,
    data_dir: str | None = None,
    encoder_path: str | None = None,
    encoder_epochs: int = 12,
    classifier_epochs: int = 5,
    pairs: int = 500,
    min_steps: int = 200,
    eval_patients: int = cohort.EVAL_PATIENTS,
    augment_patients: int = 4,
    augment_min_steps: int = downstream.MIN_STEPS,
    per_modality: int | None = None,
    two_sample_repeats: int = TWO_SAMPLE_REPEATS,
    resamples: int = bootstrap.RESAMPLES,
    swd_resamples: int = bootstrap.SWD_RESAMPLES,
    model_label: str | None = None,
    log=print,
    **_ignored,
) -> dict:
    """Evaluates a generator against real patients it never saw and writes the report.

    Load (`load_real`), draw, the encoder, the metrics (`_coverage`, `_fidelity`,
    `two_sample_test`, `_memorisation`, `_augmentation`), the figures (`_figures`) and the report
    (`_report`, `_write_report`), in that order.

    Args:
      source: the generator (see `SyntheticSource`, `sources.from_export`).
      data: the generator's training dataset (name or directory); None: the
        one its export metadata names. Its train split trains the feature
        encoder, is searched for memorisation and gives the few real patients
        of the augmentation test.
      out_dir: where report.json, report.md and figures/ go.
      reference: the real patients to compare with (see `resolve_inputs`):
        None for the evaluation cohort (phantom) or the held-out splits.
      seed: the main seed; each random choice uses seed + its offset (in the report).
      samples: synthetic slices per set (two disjoint sets are drawn); also
        the cap on real slices per half and per classifier class.
      data_dir: dataset home for names (and where the evaluation cohort is built).
      encoder_path: the feature encoder's file; trained there on the training
        split if absent. Default `reports/encoder/<dataset>-<size>.keras`.
      encoder_epochs, classifier_epochs, min_steps: training budgets of the small CNNs.
      augment_min_steps: the tumour classifiers' least number of updates.
      pairs: random pairs for MS-SSIM.
      eval_patients: evaluation cohort size (phantom).
      augment_patients: real patients the augmentation test's classifier gets.
      two_sample_repeats: random patient splits the two-sample tests pool.
      per_modality: synthetic slices wanted per modality for per-modality
        metrics (unconditional generators draw more until each modality has
        them, up to 8 x samples); default samples // 4.
      resamples, swd_resamples: bootstrap resamples.
      model_label: how the report names the model.
      log: progress printer.

    Returns:
      The report dict (as written to report.json).

    Raises:
      EvaluationInputError: a missing dataset or a size mismatch (before any heavy work).
    """
    progress = Progress(STEPS, log)
    seeds = {k: seed + v for k, v in names.SEED_OFFSETS.items()}
    per_modality = per_modality or max(MIN_GROUP, samples // 4)

    progress("load", "finding and loading the real slices")
    real = load_real(source, data, reference, data_dir, eval_patients, seeds, log)

    progress("generate", f"drawing 2 x {samples} synthetic slices ({source.name})")
    s1, s1_mod, s1_tum = draw_synthetic(
        source, samples, seeds["synthetic"], real.train_y, real.modality_ids
    )
    s2, _, _ = draw_synthetic(
        source, samples, seeds["synthetic_set2"], real.train_y, real.modality_ids
    )

    progress(
        "encoder", "feature encoder (trained once on the generator's training slices, then reused)"
    )
    enc = _load_encoder(real, encoder_path, data_dir, seeds, encoder_epochs, log)
    real.ref_head = enc.modality(real.ref_x)
    enc_ref_accuracy = float(np.mean(real.ref_head == real.ref_y["modality"]))
    s1_head, s2_head = enc.modality(s1), enc.modality(s2)
    s1_mod, modality_source = _synthetic_modalities(source, real, s1, s1_mod, s1_head)

    progress("coverage", "modality coverage: share of each modality, synthetic vs real")
    budget = _Budget(samples, per_modality, resamples, swd_resamples, pairs)
    cover = _coverage(real, s1_head, s2_head, source.conditional, seeds, resamples)
    pool_x, pool_mod, drawn = _per_modality_pool(source, enc, real, s1, s1_mod, seeds, budget)
    if drawn is not None:
        cover["drawn_for_per_modality_metrics"] = drawn
    f_ref = enc.features(real.ref_x)

    progress(
        "fidelity",
        "fidelity, intensity and diversity per group, with 95 % intervals "
        "(synthetic vs half A; floor: half B vs half A)",
    )
    fidelity, inten, div = _fidelity(real, enc, f_ref, s1, (pool_x, pool_mod), seeds, budget, log)

    progress(
        "two_sample_test",
        "automated Visual Turing Test: classifier two-sample test, trained and "
        "tested on disjoint patients and samples",
    )
    vtt = two_sample_test(
        real.ref_x,
        real.ref_c,
        s1,
        s2,
        seeds,
        samples,
        classifier_epochs,
        min_steps,
        resamples,
        two_sample_repeats,
    )
    log(
        f"  synthetic vs real: {_pct_ci(vtt['synthetic']['accuracy'])}; floor (real vs real): "
        f"{_pct_ci(vtt['floor']['accuracy'])}"
    )

    progress(
        "memorisation",
        "memorisation: nearest training slice of each synthetic and held-out real slice",
    )
    mem = _memorisation(real, enc, f_ref, s1, seeds, samples, resamples)

    progress(
        "augmentation",
        f"augmentation: tumour classifier on {augment_patients} real patients, "
        "with and without synthetic slices, tested on the reference patients",
    )
    aug = _augmentation(
        real.train_x,
        real.train_y,
        s1,
        s1_tum,
        real.ref_x,
        real.ref_y,
        real.in_a,
        seeds,
        augment_patients,
        classifier_epochs,
        augment_min_steps,
        resamples,
    )

    fig_dir = os.path.join(out_dir, "figures")
    os.makedirs(fig_dir, exist_ok=True)
    _figures(
        fig_dir,
        s1,
        s1_mod,
        real.ref_x,
        real.ref_y,
        real.train_x,
        real.train_y,
        inten,
        mem,
        cover,
        vtt,
        aug,
        seeds,
    )
    timings = progress.finish()
    if enc.info.get("dataset") not in (None, real.data):
        real.warnings.append(
            f"the encoder was trained on {enc.info.get('dataset')!r}, not on {real.data!r}"
        )

    report = _report(
        source,
        real,
        data_dir,
        seed,
        seeds,
        samples,
        per_modality,
        resamples,
        swd_resamples,
        model_label,
        modality_source,
        encoder={**enc.describe(), "reference_modality_accuracy": enc_ref_accuracy},
        sections={
            "modality_coverage": cover,
            "fidelity": fidelity,
            "diversity": div,
            "intensity": inten,
            "visual_turing_test_automated": vtt,
            "memorisation": mem,
            "augmentation": aug,
        },
        timings=timings,
    )
    return _write_report(report, out_dir, log)


def _report(
    source,
    real: RealSlices,
    data_dir,
    seed,
    seeds,
    samples,
    per_modality,
    resamples,
    swd_resamples,
    model_label,
    modality_source,
    *,
    encoder,
    sections,
    timings,
) -> dict:
    """The report dict: what was compared with what, how, and every section's numbers."""
    inputs, ref_c = real.inputs, real.ref_c
    pa, pb = real.half_patients
    report = {
        "kgan_evaluation": REPORT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": model_label or source.name,
        "generator": {
            "conditional": source.conditional,
            "modalities": list(source.modalities),
            "metadata": source.metadata,
        },
        "data": real.data,
        "image_size": int(real.size),
        "plane": inputs["plane"],
        "reference": {
            "dataset": inputs["reference"],
            "kind": inputs["reference_kind"],
            "splits": inputs["reference_splits"],
            **cohort.dataset_info(inputs["reference"], data_dir),
            "patients": int(real.n_patients),
            "slices": int(len(real.ref_x)),
            "half_a_patients": int(pa),
            "half_b_patients": int(pb),
            "quarter_patients": [int(len(np.unique(ref_c[q]))) for q in real.quarters],
            "min_patients_per_side": cohort.MIN_PATIENTS_PER_SIDE,
        },
        "seed": seed,
        "seeds": seeds,
        "bootstrap": {
            "resamples": resamples,
            "swd_resamples": swd_resamples,
            "level": bootstrap.LEVEL,
            "method": "percentile interval of a cluster bootstrap: real slices resampled by "
            "patient, synthetic slices one by one; FID, SWD and intensity W1 intervals "
            "shifted by the bootstrap bias",
            "seed": seeds["bootstrap"],
        },
        "samples": {
            "synthetic_per_set": samples,
            "synthetic_sets": 2,
            "train_slices": int(len(real.train_x)),
            "train_patients": int(len(np.unique(real.train_y["case_id"]))),
            "reference_slices": int(len(real.ref_x)),
            "reference_patients": int(real.n_patients),
            "per_modality_target": int(per_modality),
        },
        "synthetic_modality_source": modality_source,
        "encoder": encoder,
        **sections,
        "warnings": real.warnings,
        "timings_s": timings,
    }
    report["summary"] = summary(report)
    return report


def _write_report(report: dict, out_dir: str, log) -> dict:
    """Writes report.json and report.md atomically; returns the JSON-safe report."""
    safe = _json_safe(report)
    atomic.write_text(os.path.join(out_dir, "report.json"), json.dumps(safe, indent=2))
    atomic.write_text(os.path.join(out_dir, "report.md"), markdown(report))
    log(
        f"report written to {out_dir}/report.md and report.json in "
        f"{report['timings_s']['total']:.0f} s"
    )
    return safe


def _quarters(case_ids, mask, seed):
    """Two patient-disjoint parts of the patients under `mask`."""
    sub = np.asarray(case_ids)[mask]
    parts = cohort.patient_groups(sub, 2, seed)
    out = []
    for part in parts:
        full = np.zeros(len(case_ids), bool)
        full[np.flatnonzero(mask)[part]] = True
        out.append(full)
    return out


def _split(case_ids, seed: int):
    """Halves A, B and quarters A1, A2, B1, B2 of the patients (even in patients and slices)."""
    in_a, in_b = cohort.patient_groups(case_ids, 2, seed)
    return (in_a, in_b, *_quarters(case_ids, in_a, seed + 1), *_quarters(case_ids, in_b, seed + 2))


def two_sample_test(
    ref_x,
    ref_c,
    s1,
    s2,
    seeds,
    samples,
    epochs,
    min_steps,
    resamples,
    repeats: int = TWO_SAMPLE_REPEATS,
) -> dict:
    """Two cross-fitted classifier two-sample tests: synthetic vs real, and real vs real (floor).

    For each of `repeats` random splits of the patients into halves and
    quarters (split 0 is the halves every other number uses): synthetic vs
    real trains on synthetic set 1 vs real half A and tests on set 2 vs half
    B, then the reverse; the floor trains on quarter A1 vs B1 and tests on A2
    vs B2, then the reverse. No classifier ever answers for a patient or a
    sample it was trained on, and the answers of all splits are pooled, so
    the floor sits near 50 % when the two groups of patients come from one
    population rather than wherever one split happened to fall.
    """

    def syn_ids(k, x):
        return np.array([f"set{k}:{i}" for i in range(len(x))])

    syn_folds, floor_folds = [], []
    for r in range(repeats):
        in_a, in_b, a1, a2, b1, b2 = _split(ref_c, seeds["split"] + SPLIT_SEED_STRIDE * r)
        syn_folds += [
            {
                "pos_train": ref_x[in_a],
                "neg_train": s1,
                "pos_test": ref_x[in_b],
                "neg_test": s2,
                "pos_test_clusters": ref_c[in_b],
                "neg_test_clusters": syn_ids(2, s2),
                "repeat": r,
            },
            {
                "pos_train": ref_x[in_b],
                "neg_train": s2,
                "pos_test": ref_x[in_a],
                "neg_test": s1,
                "pos_test_clusters": ref_c[in_a],
                "neg_test_clusters": syn_ids(1, s1),
                "repeat": r,
            },
        ]
        floor_folds += [
            {
                "pos_train": ref_x[a1],
                "neg_train": ref_x[b1],
                "pos_test": ref_x[a2],
                "neg_test": ref_x[b2],
                "pos_test_clusters": ref_c[a2],
                "neg_test_clusters": ref_c[b2],
                "repeat": r,
            },
            {
                "pos_train": ref_x[a2],
                "neg_train": ref_x[b2],
                "pos_test": ref_x[a1],
                "neg_test": ref_x[b1],
                "pos_test_clusters": ref_c[a1],
                "neg_test_clusters": ref_c[b1],
                "repeat": r,
            },
        ]
    common = dict(
        seed=seeds["c2st"],
        epochs=epochs,
        min_steps=min_steps,
        max_per_class=samples,
        resamples=resamples,
    )
    synthetic = two_sample.cross_fitted(
        syn_folds, labels=("real", "synthetic"), strata=("real", "synthetic"), **common
    )
    floor = two_sample.cross_fitted(
        floor_folds, labels=("real half A", "real half B"), strata=("real", "real"), **common
    )
    return {
        "synthetic": synthetic,
        "floor": floor,
        "repeats": repeats,
        "design": (
            "Classifier two-sample test, cross-fitted so that no classifier answers for a patient "
            f"or sample it was trained on, and repeated over {repeats} random splits of the "
            "patients (halves and quarters even in patients and in slices), whose answers are "
            "pooled: one split alone swings far around chance with a few dozen patients. Synthetic "
            "vs real: per split, a small CNN trains on synthetic set 1 vs real half A and answers "
            "for set 2 vs real half B, a second one the reverse; every real patient and every "
            "synthetic slice gets one unseen answer per split. Floor: the same with real patients "
            "on both sides: train on quarter A1 vs B1, answer for A2 vs B2, and the reverse "
            "('sensitivity' = half A called A). Classes are balanced by subsampling; accuracy near "
            "50 % means indistinguishable. Intervals: bootstrap of the pooled answers, real slices "
            "by patient (a drawn patient brings its answers from every split), synthetic ones by "
            "slice."
        ),
    }


def _augmentation(
    train_x,
    train_y,
    s1,
    s1_tum,
    ref_x,
    ref_y,
    in_a,
    seeds,
    patients,
    epochs,
    min_steps,
    resamples,
) -> dict:
    chosen = downstream.few_patients(train_y["case_id"], patients, seeds["augment_patients"])
    few = np.isin(train_y["case_id"], chosen)
    label_source = "the generator's tumour condition" if s1_tum is not None else ""
    out = downstream.augmentation(
        train_x[few],
        train_y["tumour"][few],
        s1,
        None if s1_tum is None else np.asarray(s1_tum),
        ref_x,
        ref_y["tumour"],
        ref_y["case_id"],
        all_real_x=train_x,
        all_real_y=train_y["tumour"],
        test_half_a=in_a,
        seed=seeds["downstream"],
        epochs=epochs,
        min_steps=min_steps,
        resamples=resamples,
        label_source=label_source,
    )
    out["real_patients"] = chosen
    return out


def _figures(
    fig_dir, s1, s1_mod, ref_x, ref_y, train_x, train_y, inten, mem, cover, vtt, aug, seeds
):
    grid_n = min(32, len(s1), len(ref_x))
    pick_real = np.sort(np.random.default_rng(seeds["subsample"]).permutation(len(ref_x))[:grid_n])
    figures.save_png(
        imaging.captioned_grid(
            s1[:grid_n],
            captions=[
                names.MODALITIES[m] if 0 <= m < len(names.MODALITIES) else "?"
                for m in s1_mod[:grid_n]
            ],
            title=f"synthetic (seed {seeds['synthetic']})",
        ),
        os.path.join(fig_dir, "samples_synthetic.png"),
    )
    figures.save_png(
        imaging.captioned_grid(
            ref_x[pick_real],
            captions=[names.MODALITIES[m] for m in ref_y["modality"][pick_real]],
            title="real, reference patients",
        ),
        os.path.join(fig_dir, "samples_real.png"),
    )
    for name, entry in inten.items():
        edges = np.asarray(entry["bin_edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        figures.save_png(
            figures.line_plot(
                {
                    "real half A": (centres, entry["histogram_reference"]),
                    "synthetic": (centres, entry["synthetic"]["histogram"]),
                    "real half B (floor)": (centres, entry["floor"]["histogram"]),
                },
                title=f"Brain intensity histogram, {name}",
                xlabel="intensity in [-1, 1]",
                ylabel="share of brain pixels",
                steps=True,
            ),
            os.path.join(fig_dir, f"intensity_{name}.png"),
        )
    arrays = mem["_arrays"]
    closest = np.argsort(arrays["synthetic_rms"])[:12]
    figures.save_png(
        imaging.pairs_grid(
            s1[closest],
            train_x[arrays["synthetic_nearest"][closest]],
            [
                f"RMS {arrays['synthetic_rms'][k]:.4f}  "
                f"{train_y['case_id'][arrays['synthetic_nearest'][k]]}"
                for k in closest
            ],
            title="closest synthetic (left) | nearest training slice (right)",
        ),
        os.path.join(fig_dir, "memorisation_closest_pairs.png"),
    )
    figures.save_png(
        figures.distance_histograms(
            {"synthetic": arrays["synthetic_rms"], "held-out real": arrays["heldout_rms"]},
            title="Distance to the nearest training slice",
            xlabel="pixel RMS distance (intensity in [-1, 1])",
        ),
        os.path.join(fig_dir, "memorisation_distances.png"),
    )
    shares = {
        name: {
            "synthetic": (100 * e["synthetic"]["value"], [100 * v for v in e["synthetic"]["ci95"]]),
            "real (same head)": (100 * e["real"]["value"], [100 * v for v in e["real"]["ci95"]]),
        }
        for name, e in cover["per_modality"].items()
    }
    figures.save_png(
        figures.interval_bars(
            shares, title="Modality shares with 95 % intervals", ylabel="share of slices (%)"
        ),
        os.path.join(fig_dir, "modality_shares.png"),
    )
    bars = {
        "two-sample accuracy": {
            "synthetic vs real": _bar(vtt["synthetic"]["accuracy"]),
            "real vs real (floor)": _bar(vtt["floor"]["accuracy"]),
        }
    }
    for key, label in (
        ("real_only", "real only"),
        ("real_plus_synthetic", "real + synthetic"),
        ("synthetic_only", "synthetic only"),
        ("real_all_patients", "real, all patients"),
    ):
        if "balanced_accuracy" in aug.get(key, {}):
            bars.setdefault("tumour classifier\nbalanced accuracy", {})[label] = _bar(
                aug[key]["balanced_accuracy"]
            )
            bars.setdefault("tumour classifier\nAUC", {})[label] = _bar(aug[key]["auc"])
    figures.save_png(
        figures.interval_bars(
            bars,
            title="Two-sample test and augmentation, 95 % intervals",
            ylabel="score",
            reference=0.5,
            reference_label="chance (0.5)",
        ),
        os.path.join(fig_dir, "summary_intervals.png"),
    )


def _bar(est: dict):
    return est.get("value"), est.get("ci95")


def _headline_group(section: dict) -> str | None:
    """The group a summary quotes: "all" when present, else the only modality."""
    if "all" in section:
        return "all"
    return next(iter(section), None)


def _brief(est: dict | None) -> dict | None:
    if not isinstance(est, dict) or "value" not in est:
        return None
    return {k: est[k] for k in ("value", "ci95") if k in est}


def gains_beyond_interval(difference: dict) -> list[str]:
    """The metrics ("balanced_accuracy", "auc") whose paired gain lies wholly above zero.

    Issue #10's augmentation bar: real + synthetic beats real only by more than the interval
    in balanced accuracy or in AUC.
    """
    out = []
    for key in ("balanced_accuracy", "auc"):
        ci = (difference.get(key) or {}).get("ci95")
        if ci and ci[0] is not None and ci[0] > 0:
            out.append(key)
    return out


def summary(report: dict) -> dict:
    """The headline numbers a benchmark reads: each with its 95 % interval and floor."""
    vtt = report["visual_turing_test_automated"]
    out = {
        "reference_patients": report["reference"]["patients"],
        "reference_kind": report["reference"]["kind"],
        "two_sample_accuracy": {
            "synthetic": _brief(vtt["synthetic"]["accuracy"]),
            "floor": _brief(vtt["floor"]["accuracy"]),
        },
        "two_sample_sensitivity": _brief(vtt["synthetic"]["sensitivity"]),
        "two_sample_specificity": _brief(vtt["synthetic"]["specificity"]),
    }
    group = _headline_group(report["fidelity"])
    entry = report["fidelity"].get(group, {}) if group else {}
    out["fidelity_group"] = group
    for key in ("swd_x1e3", "fid", "kid"):
        if key in entry:
            out[key] = {
                "synthetic": _brief(entry[key]["synthetic"]),
                "floor": _brief(entry[key]["floor"]),
                "n": entry["n_compared"],
            }
    d = report["diversity"].get(group) if group else None
    if d:
        out["ms_ssim"] = {
            "synthetic_pairs": _brief(d["synthetic"]),
            "real_pairs": _brief(d["real_half_a"]),
        }
    cover = report["modality_coverage"]
    out["modality_shares"] = {
        name: {
            "synthetic": _brief(e["synthetic"]),
            "real": _brief(e["real"]),
            "difference_points": e["difference_points"],
            "flagged": e["flagged"],
        }
        for name, e in cover["per_modality"].items()
    }
    out["modality_flagged"] = list(cover["flagged"])
    out["memorisation_flagged"] = bool(report["memorisation"]["flagged"])
    out["memorisation_exact_copies"] = int(report["memorisation"]["exact_copies"])
    aug = report["augmentation"]
    out["augmentation"] = {
        name: {k: _brief(aug[name].get(k)) for k in ("balanced_accuracy", "auc")}
        for name in ("real_only", "real_plus_synthetic", "synthetic_only", "real_all_patients")
        if "auc" in aug.get(name, {})
    }
    diff = aug["differences"].get("real_plus_synthetic_minus_real_only")
    if diff:
        out["augmentation"]["real_plus_synthetic_minus_real_only"] = {
            k: _brief(v) for k, v in diff.items()
        }
        helps_by = gains_beyond_interval(diff)
        out["augmentation"]["synthetic_helps"] = bool(helps_by)
        out["augmentation"]["synthetic_helps_by"] = helps_by
    headroom = aug["differences"].get("real_all_patients_minus_real_only")
    if headroom:
        out["augmentation"]["real_all_patients_minus_real_only"] = {
            k: _brief(v) for k, v in headroom.items()
        }
    out["augmentation"]["real_patients"] = len(aug.get("real_patients", []))
    out["warnings"] = len(report["warnings"])
    return out


def _f(value, digits: int = 3) -> str:
    if isinstance(value, dict):
        return _ci(value, digits)
    if isinstance(value, (float, np.floating)):
        return figures.format_number(float(value), digits)
    return "n/a" if value is None else str(value)


def _ci(est: dict | None, digits: int = 3, scale: float = 1.0) -> str:
    """ "value [lo, hi]" of an estimate."""
    if not est or est.get("value") is None:
        return "n/a"
    text = figures.format_number(scale * est["value"], digits)
    if est.get("ci95"):
        lo, hi = est["ci95"]
        low, high = (
            figures.format_number(scale * lo, digits),
            figures.format_number(scale * hi, digits),
        )
        text += f" [{low}, {high}]"
    return text


def _pct_ci(est: dict) -> str:
    if not est or est.get("value") is None:
        return "n/a"
    lo, hi = est.get("ci95") or (est["value"], est["value"])
    return f"{100 * est['value']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"


def markdown(report: dict) -> str:
    """The human-readable report: every number with its floor, 95 % interval and counts."""
    s, seeds, enc, ref = report["samples"], report["seeds"], report["encoder"], report["reference"]
    boot = report["bootstrap"]
    lines = [
        f"# kgan evaluation: {report['model']}",
        "",
        f"- training dataset: `{report['data']}` ({report['image_size']}x{report['image_size']}, "
        f"{report['plane']}): {s['train_slices']} slices of {s['train_patients']} patients "
        "(encoder, memorisation neighbours, the augmentation test's few real patients); created "
        f"{report['created']}",
        f"- reference patients: **{ref['kind']}** (`{ref['dataset']}`): {ref['patients']} "
        f"patients, {ref['slices']} slices; half A {ref['half_a_patients']} patients, half B "
        f"{ref['half_b_patients']} (quarters {ref['quarter_patients']}; split seed "
        f"{seeds['split']})",
        f"- synthetic: 2 sets of {s['synthetic_per_set']} (seeds {seeds['synthetic']} and "
        f"{seeds['synthetic_set2']}); conditional: {report['generator']['conditional']}; modality "
        f"of synthetic slices: {report['synthetic_modality_source']}",
        f"- feature encoder: `{enc['path']}` sha256 `{enc['sha256'][:16]}…` (seed "
        f"{enc.get('seed')}, {enc.get('train_slices')} training slices, {enc.get('epochs')} "
        "epochs; modality accuracy on the reference slices "
        f"{_f(enc['reference_modality_accuracy'])})",
        f"- intervals: 95 % {boot['method']}; {boot['resamples']} resamples "
        f"({boot['swd_resamples']} for SWD), "
        f"seed {boot['seed']}. Numbers read `value [low, high]`.",
        "- the floor of each number is the same number for real half B against real half A at the "
        "same sample count: a synthetic value near its floor is as good as another group of real "
        "patients.",
    ] + [f"- **warning**: {w}" for w in report.get("warnings", [])]
    vtt = report["visual_turing_test_automated"]
    lines += [
        "",
        "## Automated Visual Turing Test (classifier two-sample test)",
        "",
        vtt["design"],
        "",
        "| | accuracy | sensitivity | specificity | AUC | test slices (pos / neg) | clusters (pos "
        "/ neg) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key in (("synthetic vs real", "synthetic"), ("floor: real vs real", "floor")):
        e = vtt[key]
        a = e["accuracy"]
        lines.append(
            f"| {label} | {_pct_ci(a)} | {_pct_ci(e['sensitivity'])} | {_pct_ci(e['specificity'])} "
            f"| {_ci(e['auc'])} | {a.get('n_pos')} / {a.get('n_neg')} | {a.get('clusters_pos')} / "
            f"{a.get('clusters_neg')} |"
        )
    for label, key in (
        ("Synthetic vs real", "synthetic"),
        ("Floor: real half A vs real half B", "floor"),
    ):
        lines += ["", f"### {label}", "", _table_md(vtt[key])]
    cover = report["modality_coverage"]
    lines += [
        "",
        "## Modality coverage",
        "",
        f"Share of each modality among {cover['synthetic_slices']} synthetic slices and the "
        f"reference slices, {cover['classified_by']}. Flagged: difference above "
        f"{cover['flag_points']:g} points.",
        "",
        "| modality | synthetic % | real % (same head) | real % (labels) | difference (points) | "
        "synthetic count | flagged |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, e in cover["per_modality"].items():
        lines.append(
            f"| {name} | {_ci(e['synthetic'], 3, 100)} | {_ci(e['real'], 3, 100)} | "
            f"{_ci(e['real_labels'], 3, 100)} | {e['difference_points']:+.1f} | "
            f"{e['synthetic_count']} | {'**YES**' if e['flagged'] else 'no'} |"
        )
    if cover.get("note"):
        lines += ["", cover["note"]]
    lines += [
        "",
        "## Fidelity (synthetic vs real half A; lower is better)",
        "",
        "| group | n | patients A / B | SWD x1e3 | floor | FID | floor | KID | floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in report["fidelity"].items():
        if "skipped" in e:
            lines.append(f"| {name} | – | | {e['skipped']} | | | | | |")
            continue
        lines.append(
            f"| {name} | {e['n_compared']} | {e['reference_patients']} / {e['floor_patients']} | "
            f"{_ci(e['swd_x1e3']['synthetic'])} | {_ci(e['swd_x1e3']['floor'])} | "
            f"{_ci(e['fid']['synthetic'])} | {_ci(e['fid']['floor'])} | "
            f"{_ci(e['kid']['synthetic'])} | {_ci(e['kid']['floor'])} |"
        )
    lines += [
        "",
        "n = slices compared per side (synthetic, and half B for the floor); half A gives up to "
        f"{s['synthetic_per_set']} slices. Per-modality rows use up to {s['per_modality_target']} "
        "synthetic slices of that modality. SWD: Laplacian levels, 7x7 patches, seed "
        f"{seeds['swd']}. KID: unbiased MMD² over the whole sets (no subsets).",
        "",
        "## Diversity (mean MS-SSIM of random pairs; higher = more alike)",
        "",
        "| group | synthetic pairs | real pairs (half A) | real pairs (half B) |",
        "|---|---:|---:|---:|",
    ]
    for name, d in report["diversity"].items():
        lines.append(
            f"| {name} | {_ci(d['synthetic'])} | {_ci(d['real_half_a'])} | {_ci(d['real_half_b'])} "
            "|"
        )
    lines += [
        "",
        "Mode collapse shows as synthetic pairs far above real pairs.",
        "",
        "## Intensity inside the brain",
        "",
        "| group | W1 synthetic | W1 floor | brain share real A | synthetic | half B |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, e in report["intensity"].items():
        lines.append(
            f"| {name} | {_ci(e['synthetic']['wasserstein1'])} | {_ci(e['floor']['wasserstein1'])} "
            f"| {_ci(e['brain_share_reference'])} | {_ci(e['synthetic']['brain_share'])} | "
            f"{_ci(e['floor']['brain_share'])} |"
        )
    lines += [
        "",
        "Figures: " + ", ".join(f"`figures/intensity_{n}.png`" for n in report["intensity"]),
        "",
    ]
    mem = report["memorisation"]
    iv = mem["intervals"]
    lines += [
        "## Memorisation (nearest training slice)",
        "",
        f"Flagged: **{'YES' if mem['flagged'] else 'no'}**; exact copies (pixel RMS ≤ "
        f"{mem['exact_copy_rms']:.4f}): {mem['exact_copies']} of "
        f"{mem['pixels']['synthetic']['n']}. Neighbours searched: {mem['n_train_neighbours']} "
        f"training slices; held-out comparison: {mem['n_heldout']} reference slices.",
        "",
        f"- synthetic slices closer than the held-out 1st percentile: "
        f"{_ci(iv['synthetic_below_heldout_p1'])} (about 0.01 without copying); 5th: "
        f"{_ci(iv['synthetic_below_heldout_p5'])} (about 0.05)",
        "",
        "| space | synthetic min | median | held-out real min | median | Mann-Whitney p (synthetic "
        "closer) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for space in ("pixels", "features"):
        if space in mem:
            m = mem[space]
            lines.append(
                f"| {space} | {_f(m['synthetic']['min'], 4)} | {_f(m['synthetic']['median'], 4)} | "
                f"{_f(m['heldout_real']['min'], 4)} | {_f(m['heldout_real']['median'], 4)} | "
                f"{_f(m['mannwhitney_p_synthetic_closer'], 3)} |"
            )
    aug = report["augmentation"]
    lines += [
        "",
        "## Augmentation: few real patients, with and without synthetic slices",
        "",
        f"A tumour / no-tumour classifier trained on {len(aug['real_patients'])} real training "
        f"patients ({aug['train_real_slices']} slices), alone and with "
        f"{aug['train_synthetic_slices']} synthetic slices (labels: {aug['label_source']}; tumour "
        f"share {_f(aug['synthetic_tumour_share'])} against {_f(aug['real_tumour_share'])} real), "
        f"tested on {aug['test_slices']} slices of {aug['test_patients']} reference patients; seed "
        f"{aug['seed']}; the classifier is {aug.get('classifier', 'the small CNN')}, and "
        "real_all_patients is the same classifier on every real training patient (the ceiling). "
        "Intervals: bootstrap over test patients, the same resamples for every classifier "
        "(paired differences).",
        "",
        "| trained on | balanced accuracy | AUC | sensitivity | specificity |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("real_only", "real_plus_synthetic", "synthetic_only", "real_all_patients"):
        r = aug.get(name, {})
        if "skipped" in r:
            lines.append(f"| {name} | {r['skipped']} | | | |")
        elif r:
            lines.append(
                f"| {name} | {_ci(r['balanced_accuracy'])} | {_ci(r['auc'])} | "
                f"{_ci(r['sensitivity'])} | {_ci(r['specificity'])} |"
            )
    for name, d in aug["differences"].items():
        lines.append(
            f"| {name.replace('_', ' ')} | {_ci(d['balanced_accuracy'])} | {_ci(d['auc'])} | | |"
        )
    if aug.get("floor"):
        fl = aug["floor"]
        lines += [
            "",
            f"Floor ({fl['meaning']}): balanced accuracy {_ci(fl['balanced_accuracy'])}, AUC "
            f"{_ci(fl['auc'])}. Synthetic slices help when the real + synthetic minus real only "
            "interval lies above 0; real all patients minus real only is how much more real "
            "patients buy (the room there is to gain).",
        ]
    lines += [
        "",
        "## Figures",
        "",
        "![two-sample and augmentation](figures/summary_intervals.png)",
        "",
        "![modality shares](figures/modality_shares.png)",
        "",
        "![synthetic](figures/samples_synthetic.png) ![real](figures/samples_real.png)",
        "",
        "## Timings (s)",
        "",
        ", ".join(f"{k}: {v}" for k, v in report["timings_s"].items()),
        "",
    ]
    return "\n".join(lines)


def _table_md(entry: dict) -> str:
    table = entry.get("table")
    if table is None:
        c = entry["counts"]
        table = TuringTable(
            c["real_selected_as_real"],
            c["real_selected_as_synthetic"],
            c["synthetic_selected_as_real"],
            c["synthetic_selected_as_synthetic"],
        )
    text = table.markdown()
    if entry.get("positive") and entry["positive"] != "real":
        pos, neg = entry["positive"], entry["negative"]
        for old, new in (
            ("ground truth real", f"ground truth {pos}"),
            ("ground truth synthetic", f"ground truth {neg}"),
            ("selected as real", f"selected as {pos}"),
            ("selected as synthetic", f"selected as {neg}"),
            ("real called real", f"{pos} called {pos}"),
            ("synthetic called synthetic", f"{neg} called {neg}"),
            ("prevalence of real slices", f"prevalence of {pos}"),
        ):
            text = text.replace(old, new)
    return (
        text + f"\n- 95 % intervals: accuracy {_pct_ci(entry['accuracy'])}, sensitivity "
        f"{_pct_ci(entry['sensitivity'])}, specificity {_pct_ci(entry['specificity'])}, AUC "
        f"{_ci(entry['auc'])}\n- {entry['folds']} folds (accuracy per fold "
        f"{', '.join(f'{100 * a:.1f} %' for a in entry['fold_accuracy'])}; per patient split "
        f"{', '.join(f'{100 * a:.1f} %' for a in entry.get('repeat_accuracy', []))}), trained on "
        f"{entry['train_per_class']} per class, tested on {entry['test_per_class']} per class per "
        f"fold; seed {entry['seed']}"
    )
