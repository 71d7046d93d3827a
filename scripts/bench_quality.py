#!/usr/bin/env python
"""The paper's comparison at 64x64: train each GAN on the phantom, evaluate it, tabulate.

  python scripts/bench_quality.py                          # all four GANs, one after another
  python scripts/bench_quality.py --gans began             # one GAN per call; results merge
  python scripts/bench_quality.py --render                 # table and figure from stored results

For each GAN: trains its CPU-sized 64x64 recipe (configs/<gan>-64-cpu.toml) under --home (a
finished run trains nothing more, so a call can be repeated), evaluates the export against the
evaluation cohort (24 new phantom patients, `kgan.evaluation`) with one shared feature encoder,
and stores the report's summary in --results (merged with earlier calls). Then it renders a
Markdown table of every metric beside its real-vs-real floor, with 95 % intervals, checks the
issue's bars, and draws the paper's figure: rows real / DCGAN / WGAN / WGAN-GP / BEGAN,
columns T1 / T1ce / T2 / FLAIR (synthetic slices placed by the encoder's modality head).
Tagged runs (levers) go into a before -> after table, and every run into a table of the bars
(docs/quality/bars.md). The augmentation bar reads `scripts/bench_augmentation.py`'s mean over
several draws of the few real patients where it measured the same export, else the report's
one draw.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from kgan.names import DEFAULT_DATA_DIR, GANS
from kgan.names import GAN_DISPLAY_NAMES as LABELS


def train_and_evaluate(gan: str, args) -> dict:
    """Trains (or finds) one GAN's run, evaluates its export, returns the stored entry."""
    from kgan import config, device, training
    from kgan.evaluation import report, sources

    home = os.path.abspath(args.home)
    recipe = config.resolve(
        None,
        f"{gan}{args.recipe_suffix}",
        set_items=[
            f"output.logdir={home}/runs",
            f"output.export_dir={home}/exports",
            f"data.data_dir={home}/records",
            *args.set_items,
        ],
    )
    started = time.perf_counter()
    result = training.train(recipe)
    trained_s = time.perf_counter() - started
    out_dir = os.path.join(home, "reports", recipe.name)
    source, filter_info = sources.from_export(result.export_dir), None
    if args.realism_filter:
        from kgan import selection
        from kgan.sampling import GeneratorSampler

        sampler = GeneratorSampler(result.export_dir)
        draw, filter_info = selection.for_export(
            sampler,
            args.realism_filter,
            data_dir=os.path.join(home, DEFAULT_DATA_DIR),
            seed=args.seed,
        )
        source.generate = draw
        source.name = f"{source.name}, realism filter keep {args.realism_filter:g}"
    if args.tag:
        out_dir += f"-{args.tag}"
    started = time.perf_counter()
    full = report.evaluate(
        source,
        None,
        out_dir,
        seed=args.seed,
        samples=args.samples,
        data_dir=os.path.join(home, DEFAULT_DATA_DIR),
        encoder_path=os.path.join(home, "reports", f"encoder-{recipe.model.image_size}.keras"),
        model_label=result.export_dir,
        log=lambda line: print(line, flush=True),
    )
    return {
        "gan": gan,
        "tag": args.tag,
        "lever": args.lever or args.tag,
        "realism_filter": filter_info,
        "recipe": recipe.name,
        "export": result.export_dir,
        "steps": result.steps,
        "trained_now": result.steps != result.resumed_from_step,
        "train_seconds_this_call": round(trained_s, 1),
        "evaluate_seconds": round(time.perf_counter() - started, 1),
        "cpu": device.cpu_model(),
        "load_after": os.getloadavg()[0],
        "report": os.path.join(out_dir, "report.json"),
        "evaluation_version": full["kgan_evaluation"],
        "summary": full["summary"],
    }


# --- rendering ----------------------------------------------------------------------------------


def _ci(entry, pct: bool = False, digits: int = 3) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    scale = 100.0 if pct else 1.0
    value = entry["value"] * scale
    lo_hi = entry.get("ci95")
    fmt = f"{{:.{1 if pct else digits}f}}"
    text = fmt.format(value)
    if lo_hi and None not in lo_hi:
        text += f" [{fmt.format(lo_hi[0] * scale)}, {fmt.format(lo_hi[1] * scale)}]"
    return text


def bars(summary: dict, gains: dict | None = None) -> dict:
    """The issue's quality bars for one GAN: {bar: (met, detail)}.

    `gains`: the augmentation gains to judge (`augmentation_view`); default the summary's own.
    """
    out = {}
    acc = summary["two_sample_accuracy"]
    floor = acc["floor"]["value"]
    # The point value must lie in the band; an interval that merely covers 50 % is said beside it.
    covers = " (interval covers 50 %)" if _covers(acc["floor"], 0.5) else ""
    out["real-vs-real floor within 50-65 %"] = (0.50 <= floor <= 0.65, f"{floor:.1%}{covers}")
    out["two-sample accuracy <= 75 %"] = (
        acc["synthetic"]["value"] <= 0.75,
        f"{acc['synthetic']['value']:.1%}",
    )
    for key, limit in (("swd_x1e3", 1.5), ("fid", 2.0)):
        if key in summary:
            s, f = summary[key]["synthetic"]["value"], summary[key]["floor"]["value"]
            out[f"{key} <= {limit}x floor"] = (
                s <= limit * max(f, 1e-12),
                f"{s / max(f, 1e-12):.2f}x",  # two decimals: 1.52x must not read as 1.5x
            )
    if "ms_ssim" in summary:
        s = summary["ms_ssim"]["synthetic_pairs"]["value"]
        r = summary["ms_ssim"]["real_pairs"]["value"]
        out["MS-SSIM within 10 % of real pairs"] = (abs(s - r) <= 0.1 * r, f"{s:.3f} vs {r:.3f}")
    worst = max(abs(e["difference_points"]) for e in summary["modality_shares"].values())
    out["every modality share within 5 points"] = (worst <= 5, f"worst {worst:.2f} points")
    out["memorisation not flagged"] = (not summary["memorisation_flagged"], "")
    if gains is None:
        gains = _own_gains(summary)
    out["augmentation beats real only beyond the interval"] = _augmentation_bar(gains)
    return out


def _own_gains(summary: dict) -> dict:
    return summary.get("augmentation", {}).get("real_plus_synthetic_minus_real_only", {})


def _augmentation_bar(gains: dict) -> tuple[bool, str]:
    """Met when real + synthetic beats real only beyond the interval in balanced accuracy or AUC.

    Read from the stored intervals rather than the report's flag, so that summaries stored
    before the flag also counted AUC are judged by the same rule.
    """
    from kgan.evaluation.report import gains_beyond_interval

    labels = {"balanced_accuracy": "bal. acc.", "auc": "AUC"}
    beyond = [f"{labels[k]} {_ci(gains[k])}" for k in gains_beyond_interval(gains)]
    return bool(beyond), "; ".join(beyond)


def _covers(entry, value) -> bool:
    ci = entry.get("ci95")
    return bool(ci and ci[0] is not None and ci[0] <= value <= ci[1])


def markdown(results: dict, augmentation: dict | None = None) -> str:
    view = augmentation_view(results, augmentation)
    rows = [results[g] for g in GANS if g in results]
    if not rows:
        return "(no results yet)"
    first = rows[0]["summary"]
    lines = [
        f"Real side: {first['reference_kind']} ({first['reference_patients']} patients); 95 % "
        f"intervals from a bootstrap over patients (real) and slices (synthetic). "
        f"CPU: {rows[0]['cpu']}.",
        "",
        "| GAN | steps | two-sample acc. (floor) | SWD x1e3 (floor) | FID (floor) | MS-SSIM synth. "
        "(real) | T1 / T1ce / T2 / FLAIR share, synth. (real) % | memorised | augmentation: bal. "
        "acc. gain |",
        "|---|---:|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["summary"]
        shares = " / ".join(
            f"{e['synthetic']['value'] * 100:.0f} ({e['real']['value'] * 100:.0f})"
            for e in s["modality_shares"].values()
        )
        lines.append(
            f"| {LABELS[r['gan']]} | {r['steps']:,} | "
            f"{_ci(s['two_sample_accuracy']['synthetic'], True)} "
            f"({_ci(s['two_sample_accuracy']['floor'], True)}) | "
            f"{_ci(s.get('swd_x1e3', {}).get('synthetic'), digits=1)} "
            f"({_ci(s.get('swd_x1e3', {}).get('floor'), digits=1)}) | "
            f"{_ci(s.get('fid', {}).get('synthetic'), digits=2)} "
            f"({_ci(s.get('fid', {}).get('floor'), digits=2)}) | "
            f"{_ci(s.get('ms_ssim', {}).get('synthetic_pairs'))} "
            f"({_ci(s.get('ms_ssim', {}).get('real_pairs'))}) | {shares} | "
            f"{'yes' if s['memorisation_flagged'] else 'no'} | "
            f"{_gain_cell(view[r['gan']])} |"
        )
    lines += [
        "",
        "Bars (issue #10), per GAN:",
        "",
        "| bar | " + " | ".join(LABELS[r["gan"]] for r in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    checks = {r["gan"]: _checks(r["summary"], view[r["gan"]]) for r in rows}
    for bar in checks[rows[0]["gan"]]:
        cells = []
        for r in rows:
            met, detail = checks[r["gan"]].get(bar, (None, ""))
            cells.append(("met" if met else "missed") + (f" ({detail})" if detail else ""))
        lines.append(f"| {bar} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _gap(summary: dict) -> float:
    return max(abs(e["difference_points"]) for e in summary["modality_shares"].values())


def _moved(before: dict | None, after: dict | None, lower_is_better: bool = True) -> str:
    """'better' / 'worse' when the intervals do not overlap, else 'within intervals'."""
    b, a = (before or {}).get("ci95"), (after or {}).get("ci95")
    if not b or not a or None in b or None in a:
        return "?"
    if a[1] < b[0]:
        return "better" if lower_is_better else "worse"
    if a[0] > b[1]:
        return "worse" if lower_is_better else "better"
    return "within intervals"


def _older_evaluation(entry: dict, results: dict) -> str:
    """'evaluation vN' when `entry` was evaluated by an older design than the newest stored.

    The augmentation test changed between versions (v4's lesion classifier can see a gain,
    v3's could not), so a gain from an older report must not pass for a current one.
    """
    versions = [r.get("evaluation_version") or 0 for r in results.values()]
    own = entry.get("evaluation_version") or 0
    if own >= max(versions, default=0):
        return ""
    return f"evaluation v{own}" if own else "an older evaluation"


def augmentation_view(results: dict, augmentation: dict | None) -> dict:
    """{run: (gains, where they come from)}: the augmentation gains each run is judged by.

    `scripts/bench_augmentation.py`'s mean over several draws of 4 patients when it measured
    the same export (one draw of 4 patients is noisy: in docs/quality/augmentation.md's per-draw
    column a GAN's gain can change sign between draws), else the report's own draw, marked when an
    older evaluation made it.
    """
    rows = (augmentation or {}).get("rows", {})
    view = {}
    for key, entry in results.items():
        row = rows.get(key)
        if row and row.get("export") == entry.get("export"):
            mean = row["mean_over_draws"]["real_plus_synthetic_minus_real_only"]
            gains = {k: mean[k] for k in ("balanced_accuracy", "auc") if k in mean}
            view[key] = (gains, f"mean of {mean['draws']} draws")
        else:
            older = _older_evaluation(entry, results)
            view[key] = (_own_gains(entry["summary"]), "one draw" + (f", {older}" if older else ""))
    return view


def _gain_cell(judged: tuple) -> str:
    gains, source = judged
    return f"{_ci(gains.get('balanced_accuracy'))} ({source})"


def _checks(summary: dict, judged: tuple) -> dict:
    """`bars`, with the augmentation bar's detail saying where its gains come from."""
    gains, source = judged
    out = bars(summary, gains)
    bar = "augmentation beats real only beyond the interval"
    met, detail = out[bar]
    out[bar] = (met, "; ".join(d for d in (detail, source) if d))
    return out


def _before_after(before, after, digits: int = 3, pct: bool = False) -> str:
    return f"{_ci(before, pct, digits)} -> {_ci(after, pct, digits)}: {_moved(before, after)}"


def levers_markdown(results: dict, augmentation: dict | None = None) -> str:
    """One table: each lever's variant against its plain GAN, metric before -> after."""
    view = augmentation_view(results, augmentation)
    variants = [(k, r) for k, r in results.items() if ":" in k and k.split(":")[0] in results]
    if not variants:
        return ""
    lines = [
        "| lever | GAN | two-sample acc. % (floor) | FID | SWD x1e3 | MS-SSIM synth. (real) | "
        "worst modality-share gap, points | augmentation: bal. acc. gain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, r in variants:
        base, s = results[key.split(":")[0]]["summary"], r["summary"]
        acc_b, acc_s = base["two_sample_accuracy"], s["two_sample_accuracy"]
        cells = [
            f"{_ci(acc_b['synthetic'], True)} ({_ci(acc_b['floor'], True)}) -> "
            f"{_ci(acc_s['synthetic'], True)} ({_ci(acc_s['floor'], True)}): "
            f"{_moved(acc_b['synthetic'], acc_s['synthetic'])}",
            _before_after(base["fid"]["synthetic"], s["fid"]["synthetic"], digits=2),
            _before_after(base["swd_x1e3"]["synthetic"], s["swd_x1e3"]["synthetic"], digits=1),
            f"{_ci(base['ms_ssim']['synthetic_pairs'])} -> {_ci(s['ms_ssim']['synthetic_pairs'])} "
            f"({_ci(s['ms_ssim']['real_pairs'])})",
            f"{_gap(base):.1f} -> {_gap(s):.1f}",
            f"{_gain_cell(view[key.split(':')[0]])} -> {_gain_cell(view[key])}",
        ]
        lines.append(
            f"| {r.get('lever') or key} | {LABELS[r['gan']]} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def bars_markdown(results: dict, augmentation: dict | None = None) -> str:
    """Every stored run (plain GANs, then each lever's variant) against every bar, one row a run,
    so that how near each recipe comes to each bar reads down a column."""
    view = augmentation_view(results, augmentation)
    keys = [g for g in GANS if g in results] + [k for k in results if ":" in k]
    if not keys:
        return ""
    checks = {k: _checks(results[k]["summary"], view[k]) for k in keys}
    names_of_bars = list(checks[keys[0]])
    lines = [
        "| run | steps | " + " | ".join(names_of_bars) + " |",
        "|---|---:|" + "---|" * len(names_of_bars),
    ]
    for k in keys:
        r = results[k]
        label = LABELS[r["gan"]] + (f": {r.get('lever') or r['tag']}" if ":" in k else "")
        cells = []
        for bar in names_of_bars:
            met, detail = checks[k][bar]
            cells.append(("met" if met else "missed") + (f" ({detail})" if detail else ""))
        lines.append(f"| {label} | {r['steps']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(results: dict, path: str, home: str, per_gan: int = 256, seed: int = 0) -> str:
    """Rows real / each GAN, columns T1..FLAIR; synthetic slices placed by the encoder's head."""
    import numpy as np

    from kgan import imaging, names
    from kgan.evaluation import cohort, figures, sources
    from kgan.evaluation import encoder as encoder_lib

    gans = [g for g in GANS if g in results]
    if not gans:
        return ""
    drawn = {g: sources.from_export(results[g]["export"]).draw(per_gan, seed=seed) for g in gans}
    size = drawn[gans[0]].shape[1]  # the encoder of the exports' size (64 for the paper's table)
    enc = encoder_lib.load(os.path.join(home, "reports", f"encoder-{size}.keras"))
    real_dir = cohort.evaluation_cohort(
        "sagittal", enc.image_size, os.path.join(home, DEFAULT_DATA_DIR)
    )
    x, y = cohort.load_splits(real_dir, cohort.splits_of(real_dir), None)
    rng = np.random.default_rng(seed)
    tiles, captions = [], []

    def row(images, modality, label):
        for m, name in enumerate(names.MODALITIES):
            pick = np.flatnonzero(modality == m)
            tiles.append(images[rng.choice(pick)] if len(pick) else np.full_like(images[0], -1.0))
            captions.append(f"{label} {name}" if len(pick) else f"{label} {name}: none")

    row(x, y["modality"], "real")
    for g in gans:
        row(drawn[g], enc.modality(drawn[g]), LABELS[g])
    grid = imaging.captioned_grid(
        np.stack(tiles), cols=len(names.MODALITIES), scale=3, captions=captions
    )
    return figures.save_png(grid, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--gans", nargs="+", choices=GANS, default=list(GANS))
    p.add_argument("--recipe-suffix", default="-64-cpu", help="recipes are <gan><suffix>")
    p.add_argument(
        "--home",
        default="bench-quality",
        help="where records/, runs/, exports/ and reports/ go (not in git)",
    )
    p.add_argument("--samples", type=int, default=1000, help="synthetic slices per set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--set",
        dest="set_items",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="recipe override for every GAN (e.g. a shorter run for a check)",
    )
    p.add_argument("--results", default="docs/quality/results.json")
    p.add_argument("--markdown", default="docs/quality/table.md")
    p.add_argument("--figure", default="docs/quality/paper_figure.png")
    p.add_argument("--render", action="store_true", help="only render stored results")
    p.add_argument(
        "--tag",
        default="",
        help="a lever's variant of the GAN: stored as GAN:TAG and shown in the levers table "
        "against the plain GAN",
    )
    p.add_argument(
        "--lever", default="", help="how the levers table names the variant (default: the tag)"
    )
    p.add_argument(
        "--realism-filter",
        type=float,
        metavar="KEEP",
        help="evaluate the export through the realism filter (kgan.selection) keeping KEEP",
    )
    p.add_argument("--levers-markdown", default="docs/quality/levers.md")
    p.add_argument("--bars-markdown", default="docs/quality/bars.md")
    p.add_argument(
        "--augmentation",
        default="docs/quality/augmentation.json",
        help="scripts/bench_augmentation.py's results: the augmentation bar reads their mean "
        "over draws for the exports they measured",
    )
    args = p.parse_args(argv)

    from kgan import atomic

    def stored() -> dict:
        return json.load(open(args.results)) if os.path.exists(args.results) else {}

    if not args.render:
        for gan in args.gans:
            entry = train_and_evaluate(gan, args)
            results = stored()  # read again: a parallel call may have added another GAN
            results[gan + (f":{args.tag}" if args.tag else "")] = entry
            atomic.write_json(args.results, results, indent=2)  # kept after every GAN
    results = stored()
    augmentation = json.load(open(args.augmentation)) if os.path.exists(args.augmentation) else None
    table = markdown(results, augmentation)
    atomic.write_text(args.markdown, table + "\n")
    print(table)
    lever_table = levers_markdown(results, augmentation)
    if lever_table:
        atomic.write_text(args.levers_markdown, lever_table + "\n")
        print(lever_table)
    bar_table = bars_markdown(results, augmentation)
    if bar_table:
        atomic.write_text(args.bars_markdown, bar_table + "\n")
        print(bar_table)
    drawn = figure(results, args.figure, os.path.abspath(args.home), seed=args.seed)
    if drawn:
        print(f"figure: {drawn}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
