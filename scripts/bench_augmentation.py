#!/usr/bin/env python
"""The augmentation scenario for stored exports, over several draws of the few real patients.

  python scripts/bench_augmentation.py                              # every stored row still here
  python scripts/bench_augmentation.py --rows dcgan:cond9k,began --draws 3
  python scripts/bench_augmentation.py --compare-classifiers --out docs/quality/classifiers.json

The paper's aim is data augmentation: does a tumour classifier trained on 4 real patients do better
with synthetic slices? Which 4 patients it gets moves its score as much as the synthetic slices
do, so this repeats the report's test (`kgan.evaluation.downstream.augmentation`) for --draws draws
of the few patients (draw 0 is the report's own) and averages the paired gain over the draws, with
a bootstrap over the 24 test patients of the evaluation cohort. It loads the real slices once and
trains each real-only classifier and the ceiling (every training patient) once for all exports,
reading the exports from bench_quality's --results. Writes --out (JSON) and a Markdown table
beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def load(first_export: str, args):
    """The real slices (as the report loads them), the seeds and the draws of few patients."""
    from kgan import names
    from kgan.evaluation import cohort, downstream, report, sources

    seeds = {k: args.seed + v for k, v in names.SEED_OFFSETS.items()}
    real = report.load_real(
        sources.from_export(first_export),
        None,
        None,
        args.data_dir,
        cohort.EVAL_PATIENTS,
        seeds,
        lambda line: print(line),
    )
    draws = [
        {
            "patients": downstream.few_patients(
                real.train_y["case_id"], args.patients, seeds["augment_patients"], d
            ),
            "fitted": {},
        }
        for d in range(args.draws)
    ]
    return real, seeds, draws


def compare_classifiers(real, seeds, draws, args) -> dict:
    """Real only (each draw) and the ceiling, for the average-pooled CNN and the lesion CNN.

    The evaluation's augmentation test needs a classifier whose ceiling sits
    clearly above its few-patient score; both architectures get the same
    data, seed and least number of updates.
    """
    import numpy as np

    from kgan.evaluation import cnn, downstream

    x, y, test_x = real.train_x, real.train_y, real.ref_x
    truth, clusters = real.ref_y["tumour"], real.ref_y["case_id"]
    out = {}
    for build in (cnn.binary_classifier, cnn.lesion_classifier):
        started = time.perf_counter()

        def fit_predict(mask, build=build):
            return downstream.fit_predict(
                x[mask],
                y["tumour"][mask],
                test_x,
                seed=seeds["downstream"],
                min_steps=args.min_steps,
                build=build,
            )[1]

        ceiling = fit_predict(np.ones(len(x), bool))
        few = [fit_predict(np.isin(y["case_id"], d["patients"])) for d in draws]
        out[build.__name__] = {
            "ceiling": downstream.scores(ceiling, truth),
            "real_only": [downstream.scores(p, truth) for p in few],
            "ceiling_minus_real_only": downstream.mean_difference(
                [(ceiling, p) for p in few], truth, clusters, resamples=args.resamples
            ),
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(build.__name__, json.dumps(out[build.__name__]["ceiling_minus_real_only"]))
    return out


def render_classifiers(result: dict) -> str:
    """The Markdown table of `compare_classifiers`."""
    lines = [
        f"Tumour classifiers compared on the same data ({result['cpu']}, load {result['load']}):",
        "",
        "| classifier | balanced accuracy, all training patients (ceiling) | AUC | balanced "
        "accuracy, 4 patients, per draw | ceiling minus 4 patients: bal. acc. | AUC | seconds |",
        "|---|---:|---:|---|---|---|---:|",
    ]
    for name, r in result["classifiers"].items():
        head = r["ceiling_minus_real_only"]
        few = ", ".join(f"{s['balanced_accuracy']:.3f}" for s in r["real_only"])
        lines.append(
            f"| {name} | {r['ceiling']['balanced_accuracy']:.3f} | {r['ceiling']['auc']:.3f} | "
            f"{few} | {_ci(head['balanced_accuracy'])} | {_ci(head['auc'])} | {r['seconds']} |"
        )
    return "\n".join(lines) + "\n"


def measure(rows: dict, real, seeds, draws, args) -> dict:
    """Runs the augmentation test for each export over the draws; returns the results."""
    import numpy as np

    from kgan.evaluation import downstream, report, sources

    train_x, train_y, test_x, test_y = real.train_x, real.train_y, real.ref_x, real.ref_y
    patients = np.unique(train_y["case_id"])
    shared: dict = {}
    out = {"draws": [d["patients"] for d in draws], "rows": {}}
    for label, export in rows.items():
        started = time.perf_counter()
        source = sources.from_export(export)
        s1, _, s1_tum = report.draw_synthetic(
            source, args.samples, seeds["synthetic"], train_y, real.modality_ids
        )
        synthetic_only: dict = {}
        per_draw, gains, alone = [], [], []
        for draw in draws:
            few = np.isin(train_y["case_id"], draw["patients"])
            fitted = {**shared, **draw["fitted"], **synthetic_only}
            result = downstream.augmentation(
                train_x[few],
                train_y["tumour"][few],
                s1,
                s1_tum,
                test_x,
                test_y["tumour"],
                test_y["case_id"],
                all_real_x=train_x,
                all_real_y=train_y["tumour"],
                seed=seeds["downstream"],
                min_steps=args.min_steps,
                resamples=args.resamples,
                label_source="the generator's tumour condition" if s1_tum is not None else "",
                fitted=fitted,
            )
            shared = {k: fitted[k] for k in ("real_all_patients", "labeller")}
            draw["fitted"] = {"real_only": fitted["real_only"]}
            synthetic_only = {"synthetic_only": fitted["synthetic_only"]}
            gains.append((fitted["real_plus_synthetic"], fitted["real_only"]))
            alone.append((fitted["synthetic_only"], fitted["real_only"]))
            per_draw.append(
                {
                    k: result[k]["balanced_accuracy"]["value"]
                    for k in ("real_only", "real_plus_synthetic", "synthetic_only")
                }
            )
        pooled = {
            "real_plus_synthetic_minus_real_only": downstream.mean_difference(
                gains, test_y["tumour"], test_y["case_id"], resamples=args.resamples
            ),
            "synthetic_only_minus_real_only": downstream.mean_difference(
                alone, test_y["tumour"], test_y["case_id"], resamples=args.resamples
            ),
        }
        out["rows"][label] = {
            "export": export,
            "label_source": result["label_source"],
            "synthetic_tumour_share": result["synthetic_tumour_share"],
            "per_draw_balanced_accuracy": per_draw,
            "mean_over_draws": pooled,
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(label, json.dumps(pooled["real_plus_synthetic_minus_real_only"]), flush=True)
    out["ceiling_minus_real_only"] = downstream.mean_difference(
        [(shared["real_all_patients"], d["fitted"]["real_only"]) for d in draws],
        test_y["tumour"],
        test_y["case_id"],
        resamples=args.resamples,
    )
    out["ceiling"] = downstream.scores(shared["real_all_patients"], test_y["tumour"])
    out["train_patients"] = len(patients)
    out["test_patients"] = len(np.unique(test_y["case_id"]))
    out["classifier"] = "kgan.evaluation.cnn.lesion_classifier"
    out["samples"], out["seed"], out["min_steps"] = args.samples, args.seed, args.min_steps
    return out


def _ci(e: dict) -> str:
    lo, hi = e["ci95"]
    return f"{e['value']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def render(result: dict) -> str:
    """The Markdown table: one row per export, gains averaged over the draws."""
    head = result["ceiling_minus_real_only"]
    lines = [
        f"Augmentation over {len(result['draws'])} draws of {len(result['draws'][0])} real "
        f"patients (of {result['train_patients']}), tested on {result['test_patients']} new "
        f"patients; classifier {result['classifier']} ({result['min_steps']}+ updates), "
        f"{result['samples']} synthetic slices; {result['cpu']}, load {result['load']}.",
        "",
        f"Ceiling (same classifier on all {result['train_patients']} training patients) minus real "
        f"only, mean over draws: balanced accuracy {_ci(head['balanced_accuracy'])}, AUC "
        f"{_ci(head['auc'])}: the room there is to gain.",
        "",
        "| export | synthetic labels | real + synthetic minus real only: bal. acc. | AUC | "
        "synthetic only minus real only: bal. acc. | AUC | bal. acc. real only / real + synth. "
        "per draw | beyond the interval |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, row in result["rows"].items():
        gain = row["mean_over_draws"]["real_plus_synthetic_minus_real_only"]
        alone = row["mean_over_draws"]["synthetic_only_minus_real_only"]
        draws = ", ".join(
            f"{d['real_only']:.3f} / {d['real_plus_synthetic']:.3f}"
            for d in row["per_draw_balanced_accuracy"]
        )
        beyond = [k for k in ("balanced_accuracy", "auc") if gain[k]["ci95"][0] > 0]
        source = "condition" if "condition" in row["label_source"] else "ceiling's calls"
        lines.append(
            f"| {label} | {source} | {_ci(gain['balanced_accuracy'])} | {_ci(gain['auc'])} | "
            f"{_ci(alone['balanced_accuracy'])} | {_ci(alone['auc'])} | {draws} | "
            f"{', '.join(beyond) or 'no'} |"
        )
    return "\n".join(lines) + "\n"


def _merged(result: dict, path: str) -> dict:
    """Adds the rows of an earlier run to `result` when that run used the same settings.

    One export per call works too, as with bench_quality: the real-only and
    ceiling classifiers are seeded, so a call with the same draws, samples
    and seed retrains them to the same predictions.
    """
    if not os.path.isfile(path):
        return result
    with open(path) as f:
        earlier = json.load(f)
    same = ("draws", "samples", "seed", "min_steps", "classifier")
    if "rows" not in earlier or any(earlier.get(k) != result.get(k) for k in same):
        return result
    result["rows"] = {**earlier["rows"], **result["rows"]}
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="docs/quality/results.json", help="bench_quality results")
    p.add_argument("--rows", default="", help="comma-separated result keys (default: all here)")
    p.add_argument(
        "--data-dir",
        default="bench-quality/records",
        help="records home: <bench_quality --home>/records, where the cohort was built",
    )
    p.add_argument("--draws", type=int, default=3, help="draws of the few real patients")
    p.add_argument("--patients", type=int, default=4, help="real patients per draw")
    p.add_argument("--samples", type=int, default=1000, help="synthetic slices per export")
    p.add_argument("--min-steps", type=int, default=600, help="least classifier updates")
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/quality/augmentation.json")
    p.add_argument(
        "--compare-classifiers",
        action="store_true",
        help="instead: the average-pooled CNN against the lesion CNN, real only and ceiling",
    )
    args = p.parse_args(argv)
    from kgan import atomic, device
    from kgan.evaluation import sources

    keys = [r for r in args.rows.split(",") if r]
    rows = sources.stored_exports(args.results, keys, log=lambda line: print(line, file=sys.stderr))
    if not rows:
        return 1
    real, seeds, draws = load(next(iter(rows.values())), args)
    if args.compare_classifiers:
        result = {
            "classifiers": compare_classifiers(real, seeds, draws, args),
            "draws": [d["patients"] for d in draws],
        }
        render_table = render_classifiers
    else:
        result, render_table = _merged(measure(rows, real, seeds, draws, args), args.out), render
    result["cpu"], result["load"] = device.cpu_description(), f"{os.getloadavg()[0]:.1f}"
    atomic.write_text(args.out, json.dumps(result, indent=1, default=str) + "\n")
    table = render_table(result)
    atomic.write_text(os.path.splitext(args.out)[0] + ".md", table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
