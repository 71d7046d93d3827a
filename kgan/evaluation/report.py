"""The evaluation report: every metric, its floor, its sample counts and seeds.

`evaluate` compares a generator's slices with held-out real patients (the
test split, never the training patients), per modality where that applies,
and writes `report.json` (machines), `report.md` and `figures/*.png` (people).

The floor: the held-out patients are split into two disjoint halves A and B
(by patient, seeded). Every "synthetic vs real" number compares the synthetic
slices with half A; its floor is the same number for half B against half A,
at the same sample count. A synthetic number near its floor is as good as
another set of real patients.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import time

import numpy as np

from kgan import atomic, pipeline, schema
from kgan.evaluation import (diversity, downstream, encoder as encoder_lib, figures, frechet,
                             intensity, memorisation, swd, two_sample)
from kgan.evaluation.confusion import TuringTable
from kgan.evaluation.sources import SyntheticSource

#: Offsets added to the main seed so that each random choice has its own stream.
SEED_OFFSETS = {"split": 0, "synthetic": 1, "synthetic_c2st_test": 2, "swd": 3, "kid": 4,
                "pairs": 5, "c2st": 6, "downstream": 7, "encoder": 0, "subsample": 8}
STEPS = 8


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


def default_encoder_path(data: str, image_size: int, base: str = "reports/encoder") -> str:
    """reports/encoder/<dataset slug>-<size>.keras: one encoder per dataset and size."""
    name = os.path.basename(os.path.normpath(data)) if os.path.isdir(data) else data
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "dataset"
    return os.path.join(base, f"{slug}-{image_size}.keras")


def split_patients(case_ids: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of two patient-disjoint halves (A, B) of the held-out slices."""
    patients = np.unique(case_ids)
    if len(patients) < 2:
        raise ValueError(f"the floor needs at least 2 held-out patients, the test split has "
                         f"{len(patients)} ({list(patients)})")
    order = np.random.default_rng(seed).permutation(patients)
    half_a = set(order[: (len(order) + 1) // 2])
    in_a = np.array([c in half_a for c in case_ids])
    return in_a, ~in_a


def _halve_by_patient(case_ids: np.ndarray, mask: np.ndarray, seed: int):
    """Splits the slices under `mask` into two patient-disjoint parts (or by slice if 1 patient)."""
    idx = np.flatnonzero(mask)
    patients = np.unique(case_ids[idx])
    rng = np.random.default_rng(seed)
    if len(patients) >= 2:
        order = rng.permutation(patients)
        first = set(order[: (len(order) + 1) // 2])
        part = np.array([case_ids[i] in first for i in idx])
        return idx[part], idx[~part], "patients"
    order = rng.permutation(idx)
    return np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:]), "slices (1 patient)"


def _draw_synthetic(source: SyntheticSource, count: int, seed: int, train_labels: dict,
                    modality_ids: list[int]):
    """Draws `count` slices; conditional ones follow the training mix of modality and tumour."""
    if not source.conditional:
        return source.draw(count, seed), None, None
    rng = np.random.default_rng([seed, 99])
    mods = np.asarray(train_labels["modality"])
    tum = np.asarray(train_labels["tumour"])
    keep = np.isin(mods, modality_ids)
    pick = rng.choice(np.flatnonzero(keep), count, replace=True)
    modality, tumour = mods[pick].astype(np.int32), tum[pick].astype(np.int32)
    return source.draw(count, seed, modality=modality, tumour=tumour), modality, tumour


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()
                if not str(k).startswith("_") and not isinstance(v, TuringTable)}
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


def evaluate(source: SyntheticSource, data: str, out_dir: str, *, seed: int = 0,
             samples: int = 1000, data_dir: str | None = None, encoder_path: str | None = None,
             encoder_epochs: int = 12, classifier_epochs: int = 5, max_train_slices: int = 4000,
             pairs: int = 500, min_steps: int = 200, model_label: str | None = None,
             log=print) -> dict:
    """Evaluates a generator against held-out real patients and writes the report.

    Args:
      source: the generator (see `SyntheticSource`, `sources.from_export`).
      data: the slice dataset (name or directory, as `kgan.pipeline`).
      out_dir: where report.json, report.md and figures/ go.
      seed: the main seed; each random choice uses seed + its offset (in the report).
      samples: synthetic slices drawn for the metrics (a second, disjoint set
        of the same size is drawn for the two-sample test's unseen samples).
      data_dir: dataset home for names.
      encoder_path: the feature encoder's file; trained there on the training
        split if absent. Default `reports/encoder/<dataset>-<size>.keras`.
      encoder_epochs, classifier_epochs: training budgets of the small CNNs.
      max_train_slices: cap on real training slices used to train classifiers.
      pairs: random pairs for MS-SSIM.
      min_steps: fewest updates each small classifier gets however small its data.
      model_label: how the report names the model.
      log: progress printer.

    Returns:
      The report dict (as written to report.json).
    """
    progress = Progress(STEPS, log)
    seeds = {k: seed + v for k, v in SEED_OFFSETS.items()}
    fig_dir = os.path.join(out_dir, "figures")
    os.makedirs(fig_dir, exist_ok=True)

    progress("load", "loading real slices (test split = held-out patients; train split for encoder and neighbours)")
    covered = [m for m in source.modalities if m in schema.MODALITIES]
    test_x, test_y = pipeline.load_arrays(data, "test", modalities=covered, data_dir=data_dir)
    train_x, train_y = pipeline.load_arrays(data, "train", modalities=covered, data_dir=data_dir)
    size = test_x.shape[1]
    modality_ids = sorted({int(m) for m in test_y["modality"]})
    in_a, in_b = split_patients(test_y["case_id"], seeds["split"])
    log(f"  {len(train_x)} training slices ({len(np.unique(train_y['case_id']))} patients), "
        f"{len(test_x)} held-out slices ({len(np.unique(test_y['case_id']))} patients: "
        f"half A {in_a.sum()} slices, half B {in_b.sum()} slices), {size}x{size}")

    progress("generate", f"drawing 2 x {samples} synthetic slices ({source.name})")
    synth, synth_mod, synth_tum = _draw_synthetic(source, samples, seeds["synthetic"], train_y, modality_ids)
    synth2, synth2_mod, _ = _draw_synthetic(source, samples, seeds["synthetic_c2st_test"], train_y, modality_ids)
    if synth.shape[1:] != test_x.shape[1:]:
        raise ValueError(f"generator makes {synth.shape[1:]} slices but dataset {data} holds {test_x.shape[1:]}")

    progress("encoder", "feature encoder")
    enc_path = encoder_path or default_encoder_path(data, size)
    enc = encoder_lib.load_or_train(enc_path, lambda: (train_x, train_y), dataset=data,
                                    seed=seeds["encoder"], epochs=encoder_epochs, log=log)
    if enc.image_size != size:
        raise ValueError(f"encoder {enc_path} was trained on {enc.image_size}x{enc.image_size} "
                         f"slices, the data is {size}x{size}: pass another --encoder path")
    modality_source = "generator condition"
    if synth_mod is None:
        if len(modality_ids) == 1:
            synth_mod = np.full(len(synth), modality_ids[0])
            synth2_mod = np.full(len(synth2), modality_ids[0])
            modality_source = "the generator's only training modality"
        else:
            synth_mod, synth2_mod = enc.modality(synth), enc.modality(synth2)
            modality_source = "assigned by the encoder's modality head (unconditional generator)"
    enc_test_modality_accuracy = float(np.mean(enc.modality(test_x) == test_y["modality"]))
    f_test, f_synth, f_train = enc.features(test_x), enc.features(synth), enc.features(train_x)

    groups = {"all": None, **{schema.MODALITIES[m]: m for m in modality_ids}} if len(modality_ids) > 1 \
        else {schema.MODALITIES[modality_ids[0]]: modality_ids[0]}
    fidelity, div, inten = {}, {}, {}
    progress("fidelity", "fidelity: SWD on Laplacian patches, FID, KID (synthetic vs half A; floor: half B vs half A)")
    for name, m in groups.items():
        ga = in_a & (True if m is None else test_y["modality"] == m)
        gb = in_b & (True if m is None else test_y["modality"] == m)
        gs = np.ones(len(synth), bool) if m is None else synth_mod == m
        ia, ib, isy = np.flatnonzero(ga), np.flatnonzero(gb), np.flatnonzero(gs)
        n = min(len(ib), len(isy))
        if n < 2 or len(ia) < 2:
            fidelity[name] = {"skipped": f"too few slices (half A {len(ia)}, half B {len(ib)}, synthetic {len(isy)})"}
            continue
        rng = np.random.default_rng([seeds["subsample"], len(fidelity)])
        ib, isy = np.sort(rng.permutation(ib)[:n]), np.sort(rng.permutation(isy)[:n])
        entry = {"n_reference_half_a": int(len(ia)), "n_compared": int(n)}
        s_syn = swd.swd(test_x[ia], synth[isy], seed=seeds["swd"])
        s_floor = swd.swd(test_x[ia], test_x[ib], seed=seeds["swd"])
        entry["swd_x1e3"] = {"synthetic": s_syn["mean"], "floor": s_floor["mean"],
                             "levels_synthetic": s_syn["levels"], "levels_floor": s_floor["levels"],
                             "seed": seeds["swd"]}
        entry["fid"] = {"synthetic": frechet.fid(f_test[ia], f_synth[isy]),
                        "floor": frechet.fid(f_test[ia], f_test[ib])}
        k_syn = frechet.kid(f_test[ia], f_synth[isy], seed=seeds["kid"])
        k_floor = frechet.kid(f_test[ia], f_test[ib], seed=seeds["kid"])
        entry["kid"] = {"synthetic": k_syn["mean"], "synthetic_std": k_syn["std"],
                        "floor": k_floor["mean"], "floor_std": k_floor["std"],
                        "subsets": k_syn["subsets"], "subset_size": k_syn["subset_size"],
                        "seed": seeds["kid"]}
        fidelity[name] = entry
        inten[name] = {"synthetic": intensity.compare(test_x[ia], synth[isy]),
                       "floor": intensity.compare(test_x[ia], test_x[ib]),
                       "n_reference_half_a": int(len(ia)), "n_compared": int(n)}
        div[name] = {
            "synthetic": diversity.mean_pairwise_ms_ssim(synth[isy], pairs=pairs, seed=seeds["pairs"]),
            "real_half_a": diversity.mean_pairwise_ms_ssim(test_x[ia], pairs=pairs, seed=seeds["pairs"]),
            "real_half_b": diversity.mean_pairwise_ms_ssim(test_x[ib], pairs=pairs, seed=seeds["pairs"]),
            "seed": seeds["pairs"], "ms_ssim_scales": diversity.scales_for(size),
            "power_factors": diversity.power_factors(size),
        }
        d = div[name]
        d["synthetic_minus_real"] = d["synthetic"]["mean"] - d["real_half_a"]["mean"]
        d["floor"] = d["real_half_b"]["mean"] - d["real_half_a"]["mean"]
    progress("figures", "diversity and intensity figures")
    for name, entry in inten.items():
        syn, flo = entry["synthetic"], entry["floor"]
        edges = np.asarray(syn["bin_edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        figures.save_png(figures.line_plot(
            {"real half A": (centres, syn["histogram_reference"]),
             "synthetic": (centres, syn["histogram_candidate"]),
             "real half B (floor)": (centres, flo["histogram_candidate"])},
            title=f"brain intensity histogram, {name}", xlabel="intensity in [-1, 1]", ylabel="share"),
            os.path.join(fig_dir, f"intensity_{name}.png"))
    grid_n = min(32, len(synth), len(test_x))
    pick_real = np.sort(np.random.default_rng(seeds["subsample"]).permutation(len(test_x))[:grid_n])
    figures.save_png(figures.image_grid(
        synth[:grid_n], captions=[schema.MODALITIES[m] if 0 <= m < 4 else "?" for m in synth_mod[:grid_n]],
        title=f"synthetic (seed {seeds['synthetic']})"), os.path.join(fig_dir, "samples_synthetic.png"))
    figures.save_png(figures.image_grid(
        test_x[pick_real], captions=[schema.MODALITIES[m] for m in test_y["modality"][pick_real]],
        title="real, held-out patients"), os.path.join(fig_dir, "samples_real.png"))

    progress("two_sample_test", "automated Visual Turing Test (classifier two-sample test on unseen patients and samples)")
    a1, a2, how_a = _halve_by_patient(test_y["case_id"], in_a, seeds["c2st"])
    b1, b2, how_b = _halve_by_patient(test_y["case_id"], in_b, seeds["c2st"] + 1)
    c2st = two_sample.classifier_test(test_x[a1], synth, test_x[a2], synth2,
                                      seed=seeds["c2st"], epochs=classifier_epochs, min_steps=min_steps)
    c2st_floor = two_sample.classifier_test(test_x[a1], test_x[b1], test_x[a2], test_x[b2],
                                            seed=seeds["c2st"], epochs=classifier_epochs, min_steps=min_steps)
    vtt = {"synthetic": c2st, "floor": c2st_floor,
           "design": (f"train: real half A part 1 ({len(a1)} slices) vs synthetic set 1 (seed "
                      f"{seeds['synthetic']}); test: real half A part 2 ({len(a2)} slices, other "
                      f"{how_a}) vs synthetic set 2 (seed {seeds['synthetic_c2st_test']}), both "
                      "balanced by subsampling. Floor: the same with real half B parts 1/2 "
                      "labelled 'synthetic'.")}

    progress("memorisation", "memorisation: nearest training slice of each synthetic and held-out real slice")
    mem = memorisation.memorisation(synth, test_x, train_x, synthetic_features=f_synth,
                                    heldout_features=f_test, train_features=f_train)
    arrays = mem["_arrays"]
    closest = np.argsort(arrays["synthetic_rms"])[:12]
    figures.save_png(figures.pairs_figure(
        synth[closest], train_x[arrays["synthetic_nearest"][closest]],
        [f"RMS {arrays['synthetic_rms'][k]:.4f}  {train_y['case_id'][arrays['synthetic_nearest'][k]]}"
         for k in closest],
        title="closest synthetic (left) | nearest training slice (right)"),
        os.path.join(fig_dir, "memorisation_closest_pairs.png"))
    closest_real = np.argsort(arrays["heldout_rms"])[:12]
    figures.save_png(figures.pairs_figure(
        test_x[closest_real], train_x[arrays["heldout_nearest"][closest_real]],
        [f"RMS {arrays['heldout_rms'][k]:.4f}" for k in closest_real],
        title="closest held-out real (left) | nearest training slice (right): the floor"),
        os.path.join(fig_dir, "memorisation_closest_real_pairs.png"))
    figures.save_png(figures.distance_histograms(
        {"synthetic": arrays["synthetic_rms"], "held-out real": arrays["heldout_rms"]},
        title="distance to the nearest training slice (pixels)", xlabel="pixel RMS distance"),
        os.path.join(fig_dir, "memorisation_distances.png"))
    mem["n_train_neighbours"] = int(len(train_x))
    mem["closest_pairs"] = [
        {"synthetic_index": int(k), "train_case_id": str(train_y["case_id"][arrays["synthetic_nearest"][k]]),
         "train_slice_index": int(train_y["slice_index"][arrays["synthetic_nearest"][k]]),
         "rms": float(arrays["synthetic_rms"][k])} for k in closest[:5]]

    progress("downstream", "downstream: tumour classifier on real, real + synthetic, synthetic only")
    rng = np.random.default_rng(seeds["downstream"])
    keep = np.sort(rng.permutation(len(train_x))[:max_train_slices])
    down = downstream.study(train_x[keep], train_y["tumour"][keep], synth, synth_tum,
                            test_x, test_y["tumour"], seed=seeds["downstream"],
                            epochs=classifier_epochs, test_halves=in_a, min_steps=min_steps)
    timings = progress.finish()
    warnings = []
    for half, mask in (("A", in_a), ("B", in_b)):
        count = len(np.unique(test_y["case_id"][mask]))
        if count < 2:
            warnings.append(f"held-out half {half} holds {count} patient: floors compare single patients "
                            "and the two-sample test splits that patient's slices; more test patients "
                            "make every floor firmer")
    if enc.info.get("dataset") not in (None, data):
        warnings.append(f"the encoder was trained on {enc.info.get('dataset')!r}, not on {data!r}")
    if enc.info.get("image_size") not in (None, size):
        warnings.append(f"the encoder's recorded image size {enc.info.get('image_size')} differs from {size}")

    report = {
        "kgan_evaluation": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": model_label or source.name,
        "generator": {"conditional": source.conditional, "modalities": list(source.modalities),
                      "metadata": source.metadata},
        "data": data, "image_size": int(size), "seed": seed, "seeds": seeds,
        "samples": {"synthetic_per_set": samples, "synthetic_sets": 2,
                    "train_slices": int(len(train_x)), "heldout_slices": int(len(test_x)),
                    "heldout_patients": int(len(np.unique(test_y["case_id"]))),
                    "half_a_slices": int(in_a.sum()), "half_b_slices": int(in_b.sum()),
                    "half_a_patients": int(len(np.unique(test_y["case_id"][in_a]))),
                    "half_b_patients": int(len(np.unique(test_y["case_id"][in_b])))},
        "synthetic_modality_source": modality_source,
        "encoder": {**enc.describe(), "heldout_modality_accuracy": enc_test_modality_accuracy},
        "fidelity": fidelity, "diversity": div, "intensity": inten,
        "visual_turing_test_automated": vtt, "memorisation": mem, "downstream": down,
        "warnings": warnings, "timings_s": timings,
    }
    safe = _json_safe(report)
    atomic.write_text(os.path.join(out_dir, "report.json"), json.dumps(safe, indent=2))
    atomic.write_text(os.path.join(out_dir, "report.md"), markdown(report))
    log(f"report written to {out_dir}/report.md and report.json in {timings['total']:.0f} s")
    return safe


def _f(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def markdown(report: dict) -> str:
    """The human-readable report (numbers, floors, counts, seeds, figures)."""
    s = report["samples"]
    seeds = report["seeds"]
    enc = report["encoder"]
    lines = [
        f"# kgan evaluation: {report['model']}",
        "",
        f"- data: `{report['data']}` ({report['image_size']}x{report['image_size']}); created {report['created']}",
        f"- held-out (test split) patients: {s['heldout_patients']} ({s['heldout_slices']} slices); "
        f"half A: {s['half_a_patients']} patients / {s['half_a_slices']} slices, half B: "
        f"{s['half_b_patients']} / {s['half_b_slices']} (split seed {seeds['split']})",
        f"- training slices (encoder and memorisation neighbours only): {s['train_slices']}",
        f"- synthetic: 2 sets of {s['synthetic_per_set']} (seeds {seeds['synthetic']} and "
        f"{seeds['synthetic_c2st_test']}); conditional: {report['generator']['conditional']}; "
        f"modality of synthetic slices: {report['synthetic_modality_source']}",
        f"- feature encoder: `{enc['path']}` sha256 `{enc['sha256'][:16]}…` (seed {enc.get('seed')}, "
        f"{enc.get('train_slices')} training slices, {enc.get('epochs')} epochs; modality accuracy on "
        f"held-out slices {_f(enc['heldout_modality_accuracy'])})",
        "- the floor of each number is the same number for real half B against real half A, at the "
        "same sample count: a synthetic value near its floor is as good as new real patients.",
    ] + [f"- **warning**: {w}" for w in report.get("warnings", [])] + [
        "",
        "## Fidelity (synthetic vs real half A; lower is better)",
        "",
        "| group | n | SWD x1e3 | floor | FID | floor | KID | floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in report["fidelity"].items():
        if "skipped" in e:
            lines.append(f"| {name} | – | {e['skipped']} | | | | | |")
            continue
        lines.append(
            f"| {name} | {e['n_compared']} | {_f(e['swd_x1e3']['synthetic'], 1)} | {_f(e['swd_x1e3']['floor'], 1)} "
            f"| {_f(e['fid']['synthetic'])} | {_f(e['fid']['floor'])} | {_f(e['kid']['synthetic'], 4)} "
            f"| {_f(e['kid']['floor'], 4)} |")
    lines += ["", f"SWD: Laplacian levels {list(next((e['swd_x1e3']['levels_synthetic'] for e in report['fidelity'].values() if 'swd_x1e3' in e), {}).keys())}, "
              f"7x7 patches, seed {seeds['swd']}. KID: 50 subsets, seed {seeds['kid']}. n = slices per side (synthetic and half B); "
              "half A uses all its slices.", "",
              "## Diversity (mean MS-SSIM of random pairs; higher = more alike)", "",
              "| group | synthetic | real half A | real half B | synthetic − A | floor (B − A) |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, d in report["diversity"].items():
        lines.append(f"| {name} | {_f(d['synthetic']['mean'])} | {_f(d['real_half_a']['mean'])} | "
                     f"{_f(d['real_half_b']['mean'])} | {_f(d['synthetic_minus_real'])} | {_f(d['floor'])} |")
    lines += ["", f"{next(iter(report['diversity'].values()), {}).get('synthetic', {}).get('pairs', 0)} pairs per set, "
              f"seed {seeds['pairs']}; mode collapse shows as synthetic ≫ real.", "",
              "## Intensity inside the brain (histograms of brain pixels)", "",
              "| group | W1 synthetic | W1 floor | intersection synthetic | floor | brain share real A / synthetic |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, e in report["intensity"].items():
        syn, flo = e["synthetic"], e["floor"]
        lines.append(f"| {name} | {_f(syn['wasserstein1'], 4)} | {_f(flo['wasserstein1'], 4)} | "
                     f"{_f(syn['intersection'])} | {_f(flo['intersection'])} | "
                     f"{_f(syn['brain_share_reference'])} / {_f(syn['brain_share_candidate'])} |")
    lines += ["", "Figures: " + ", ".join(f"`figures/intensity_{n}.png`" for n in report["intensity"]), ""]
    vtt = report["visual_turing_test_automated"]
    lines += ["## Automated Visual Turing Test (classifier two-sample test)", "", vtt["design"], ""]
    for label, key in (("Synthetic vs real", "synthetic"), ("Floor: real half B vs real half A", "floor")):
        lines += [f"### {label}", "", _table_md(vtt[key]), ""]
    mem = report["memorisation"]
    lines += ["## Memorisation (nearest training slice)", "",
              f"Flagged: **{'YES' if mem['flagged'] else 'no'}**; exact copies (pixel RMS ≤ "
              f"{mem['exact_copy_rms']:.4f}): {mem['exact_copies']} of {mem['pixels']['synthetic']['n']}. "
              f"Neighbours searched: {mem['n_train_neighbours']} training slices.", "",
              "| space | synthetic min | median | held-out real min | median | synthetic below real p1 | below p5 | Mann-Whitney p (synthetic closer) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for space in ("pixels", "features"):
        if space in mem:
            m = mem[space]
            lines.append(f"| {space} | {_f(m['synthetic']['min'], 4)} | {_f(m['synthetic']['median'], 4)} | "
                         f"{_f(m['heldout_real']['min'], 4)} | {_f(m['heldout_real']['median'], 4)} | "
                         f"{_f(m['synthetic_below_heldout_p1'])} | {_f(m['synthetic_below_heldout_p5'])} | "
                         f"{_f(m['mannwhitney_p_synthetic_closer'], 3)} |")
    lines += ["", "Without copying, about 1% and 5% of synthetic slices fall below the held-out "
              "percentiles. Figures: `figures/memorisation_closest_pairs.png` (closest synthetic "
              "slices beside their training neighbours), `figures/memorisation_closest_real_pairs.png` "
              "(the same for held-out real slices), `figures/memorisation_distances.png`.", ""]
    down = report["downstream"]
    lines += ["## Downstream: tumour / no-tumour classifier tested on held-out real patients", "",
              f"Training: {down['train_real']} real slices, {down['train_synthetic']} synthetic "
              f"(labels: {down['label_source']}; tumour share {_f(down['synthetic_tumour_share'])}); "
              f"test: {down['test']} held-out slices; seed {down['seed']}, {down['epochs']} epochs (at least {down.get('min_steps')} steps).", "",
              "| trained on | accuracy | balanced accuracy | sensitivity | specificity | AUC |",
              "|---|---:|---:|---:|---:|---:|"]
    for name in ("real_only", "real_plus_synthetic", "synthetic_only"):
        r = down[name]
        if "skipped" in r:
            lines.append(f"| {name} | {r['skipped']} | | | | |")
        else:
            lines.append(f"| {name} | {_f(r['accuracy'])} | {_f(r['balanced_accuracy'])} | "
                         f"{_f(r['sensitivity'])} | {_f(r['specificity'])} | {_f(r['auc'])} |")
    floor = down.get("floor") or {}
    lines += ["", "Differences to real only: " + (", ".join(
        f"{k} {v:+.3f}" for k, v in down["differences"].items()) or "n/a"),
        f"Floor (|half A − half B| of the real-only classifier): balanced accuracy "
        f"{_f(floor.get('balanced_accuracy'))}, AUC {_f(floor.get('auc'))}.", "",
        "## Samples", "", "![synthetic](figures/samples_synthetic.png) ![real](figures/samples_real.png)", "",
        "## Timings (s)", "", ", ".join(f"{k}: {v}" for k, v in report["timings_s"].items()), ""]
    return "\n".join(lines)


def _table_md(entry: dict) -> str:
    table = entry.get("table")
    if table is None:
        c = entry["counts"]
        table = TuringTable(c["real_selected_as_real"], c["real_selected_as_synthetic"],
                            c["synthetic_selected_as_real"], c["synthetic_selected_as_synthetic"])
    return (table.markdown() + f"\n- AUC: {_f(entry.get('auc'))}; trained on "
            f"{entry['train_per_class']} per class, tested on {entry['test_per_class']} per class; "
            f"seed {entry['seed']}, {entry['epochs']} epochs")
