#!/usr/bin/env python
"""Benchmarks the data stage: parallel build vs one process, and the tf.data pipeline.

1. Build: the same BraTS-layout cohort (by default the phantom volumes that
   `make_records.py phantom` wrote, read as a BraTS dataset so generation time
   is excluded) is built into a fresh TFDS dataset with 1 worker process and
   with all cores; median of --repeats runs each, in volumes/s (4 modalities
   per case).
2. Pipeline: `kgan.pipeline.load_slices` over the train split of a dataset,
   batch 64: images/s of the first (uncached) epoch and of later epochs
   (cached), median over timed windows.

Writes the table between the bench markers of docs/data.md with --write-docs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from kgan import names  # noqa: E402 (after the path is set)

START, END = "<!-- bench_records:start -->", "<!-- bench_records:end -->"


def bench_builds(cohort: str, worker_counts: tuple, repeats: int, size: int) -> list:
    """Times full builds; runs alternate between worker counts so both see the same machine load."""
    from kgan import records, volumes

    n_cases = len(volumes.find_cases(cohort))
    times = {w: [] for w in worker_counts}
    loads = {w: [] for w in worker_counts}
    for _ in range(repeats):
        for workers in worker_counts:
            tmp = tempfile.mkdtemp(prefix="kgan-bench-")
            try:
                start = time.perf_counter()
                records.build_dataset(
                    "brats",
                    size=size,
                    data_dir=tmp,
                    manual_dir=cohort,
                    workers=workers,
                    progress=lambda *a: None,
                )
                times[workers].append(time.perf_counter() - start)
                loads[workers].append(os.getloadavg()[0])
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            print(
                f"{workers} worker(s): {times[workers][-1]:.1f} s (load {loads[workers][-1]:.1f})",
                flush=True,
            )
    out = []
    for w in worker_counts:
        med = statistics.median(times[w])
        out.append(
            {
                "workers": w,
                "cases": n_cases,
                "size": size,
                "seconds": times[w],
                "load": loads[w],
                "median_s": med,
                "volumes_per_s": 4 * n_cases / med,
            }
        )
    return out


def bench_pipeline(dataset: str, batch: int, windows: int, batches_per_window: int) -> dict:
    from kgan import pipeline

    ds = pipeline.load_slices(dataset, "train", batch_size=batch, repeat=False)
    start = time.perf_counter()
    n = sum(int(x.shape[0]) for x, _ in ds)  # first epoch: read, parse, fill the cache
    first = n / (time.perf_counter() - start)
    ds = pipeline.load_slices(dataset, "train", batch_size=batch, repeat=True)
    it = iter(ds)
    for _ in range(batches_per_window):  # warm-up fills the cache
        next(it)
    rates = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(batches_per_window):
            x, _ = next(it)
        _ = x.numpy()
        rates.append(batch * batches_per_window / (time.perf_counter() - start))
    return {
        "dataset": dataset,
        "batch": batch,
        "train_slices": n,
        "first_epoch_images_per_s": first,
        "cached_images_per_s": statistics.median(rates),
        "windows": rates,
    }


def table(build1: dict, buildn: dict, pipe: dict) -> str:
    speedup = buildn["volumes_per_s"] / build1["volumes_per_s"]
    return "\n".join(
        [
            f"Measured by `python scripts/bench_records.py` on {platform.machine()} with "
            f"{os.cpu_count()} cores, shared with other jobs (load average "
            f"{min(build1['load'] + buildn['load']):.1f}"
            f"–{max(build1['load'] + buildn['load']):.1f} during the builds), medians of "
            f"{len(build1['seconds'])} alternating builds of the same {build1['cases']} "
            "BraTS-layout cases "
            f"at {build1['size']}x{build1['size']}:",
            "",
            "| what | value |",
            "|---|---|",
            f"| build, 1 process | {build1['volumes_per_s']:.2f} volumes/s ({build1['cases']} "
            f"cases, {build1['median_s']:.1f} s) |",
            f"| build, {buildn['workers']} processes | {buildn['volumes_per_s']:.2f} volumes/s "
            f"({buildn['median_s']:.1f} s, {speedup:.2f}x) |",
            "| `load_slices`, first epoch (parse + cache) | "
            f"{pipe['first_epoch_images_per_s']:,.0f} images/s |",
            f"| `load_slices`, cached epochs (shuffle, batch {pipe['batch']}) | "
            f"{pipe['cached_images_per_s']:,.0f} images/s |",
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cohort",
        default=None,
        help="BraTS-layout folder to build from (default: the phantom volumes, made if absent)",
    )
    parser.add_argument(
        "--patients", type=int, default=8, help="phantom patients if --cohort is not given"
    )
    parser.add_argument("--data-dir", default=names.DEFAULT_DATA_DIR)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument(
        "--dataset",
        default=None,
        help="dataset for the pipeline benchmark (default: the phantom sagittal_64 dataset)",
    )
    parser.add_argument("--write-docs", action="store_true", help="update docs/data.md")
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    args = parser.parse_args(argv)

    from kgan import phantom, records

    cohort, made = args.cohort, None
    if cohort is None:
        root = phantom.cohort_dir(args.data_dir, 0)
        phantom.write_cohort(root, args.patients, 0)
        cohort = made = tempfile.mkdtemp(prefix="kgan-bench-cohort-")
        for i in range(args.patients):  # only the first N patients, via symlinks
            folder = phantom.write_patient(root, i, 0)
            os.symlink(os.path.abspath(folder), os.path.join(cohort, os.path.basename(folder)))
    dataset = args.dataset or records.ensure_dataset("phantom", data_dir=args.data_dir)

    try:
        build1, buildn = bench_builds(cohort, (1, args.workers), args.repeats, args.size)
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)
    pipe = bench_pipeline(dataset, 64, windows=7, batches_per_window=50)
    print(
        f"pipeline: first epoch {pipe['first_epoch_images_per_s']:.0f} images/s, "
        f"cached {pipe['cached_images_per_s']:.0f} images/s"
    )
    text = table(build1, buildn, pipe)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"build_1": build1, "build_n": buildn, "pipeline": pipe}, f, indent=2)
    if args.write_docs:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "data.md")
        doc = open(path).read()
        if START not in doc or END not in doc:
            print(f"{path} has no {START} ... {END} block", file=sys.stderr)
            return 1
        head, rest = doc.split(START, 1)
        _, tail = rest.split(END, 1)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(head + START + "\n" + text + "\n" + END + tail)
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
