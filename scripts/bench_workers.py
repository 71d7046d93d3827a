#!/usr/bin/env python
"""Training speed of one process against two local workers (MultiWorkerMirroredStrategy).

  python scripts/bench_workers.py                 # DCGAN 32x32, width 32, batch 32
  python scripts/bench_workers.py --gan began --size 16 --width 8 --batch 16
  python scripts/bench_workers.py --gan began --xla --rounds 2   # each run plain and with XLA

Three runs of `kgan train` on the same small synthetic slice set, each a fresh process tree:

- one process, global batch B (no TF_CONFIG);
- two workers via `python -m kgan.launch --workers 2`, global batch B (B/2 per worker: the
  same training, split);
- two workers, global batch 2B (B per worker: the work per worker of the one-process run).

With `--xla` every run is made twice, `train.jit_compile` false and true (under the strategy
each replica's computation compiles on its own: BEGAN's at once, the batch-norm GANs' in segments
between their batch norms; the JSON keeps each run's "XLA : on (why)" line). `--rounds` repeats
the whole list, interleaved, and takes the median per run, as the machine's load drifts.

Steps/s come from Keras's per-epoch "ms/step" lines (verbose 2): the median over the epochs after
the first, so that tracing and start-up are left out. On one machine the two workers share its
cores and talk over loopback gRPC, so this measures the cost of the strategy and its all-reduce,
not a speed-up: across machines each worker would have its own cores. JSON and a Markdown table
out, with the CPU model and the load average beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gan", default="dcgan", choices=("dcgan", "wgan", "wgan-gp", "began"))
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--batch", type=int, default=32, help="global batch B of the one-process run")
    p.add_argument("--steps", type=int, default=10, help="steps per epoch")
    p.add_argument("--epochs", type=int, default=4, help="epochs (the first is not measured)")
    p.add_argument("--xla", action="store_true", help="also run each case with XLA on")
    p.add_argument("--rounds", type=int, default=1, help="times the list of runs is repeated")
    p.add_argument("--json", default="docs/bench_workers_amd-epyc-2c.json")
    p.add_argument("--markdown", default="docs/bench_workers_amd-epyc-2c.md")
    return p.parse_args(argv)


def write_slices(directory: str, size: int, count: int = 512, seed: int = 0) -> str:
    """Discs of varying size and brightness as kgan slice records (no phantom build needed)."""
    import numpy as np
    import tensorflow as tf

    from kgan import schema

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    centre = (size - 1) / 2
    with tf.io.TFRecordWriter(os.path.join(directory, "bench-train.tfrecord-00000-of-00001")) as w:
        for i in range(count):
            r = rng.uniform(0.2, 0.45) * size
            disc = ((yy - centre) ** 2 + (xx - centre) ** 2 < r * r) * (70 + 45 * (i % 4))
            image = np.clip(disc + rng.normal(0, 8, disc.shape), 0, 255).astype(np.uint8)
            w.write(
                schema.encode_example(
                    image,
                    modality=i % 4,
                    plane=0,
                    slice_index=i,
                    case_id=f"case{i // 64}",
                    tumour_fraction=0.0,
                    source="bench",
                )
            )
    return directory


def train_args(a, data: str, logdir: str, name: str, batch: int, jit: bool) -> list[str]:
    sets = {
        "train.jit_compile": str(jit).lower(),
        "model.width": a.width,
        "train.batch_size": batch,
        "train.epochs": a.epochs,
        "train.steps_per_epoch": a.steps,
        "train.checkpoint_every": 10_000,
        "train.num_samples": 4,
        "train.verbose": 2,
        "output.export": "false",
    }
    args = [
        "--paper",
        "--gan",
        a.gan,
        "--data",
        data,
        "--size",
        str(a.size),
        "--logdir",
        logdir,
        "--name",
        name,
        "--fresh",
    ]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    return args


def ms_per_step(output: str, prefix: str = "") -> list[float]:
    """Keras's per-epoch ms/step of one process's output (lines '10/10 - 3s - 312ms/step')."""
    found = []
    for line in output.splitlines():
        if not line.startswith(prefix):
            continue
        m = re.search(r"\d+/\d+ - \S+ - ([\d.]+)(ms|s)/step", line)
        if m:
            found.append(float(m.group(1)) * (1000.0 if m.group(2) == "s" else 1.0))
    return found


def run(command: list[str], env: dict) -> tuple[str, float]:
    started = time.perf_counter()
    out = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if out.returncode:
        raise SystemExit(
            f"{' '.join(command[:6])} ... failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
        )
    return out.stdout + out.stderr, time.perf_counter() - started


def main(argv=None) -> int:
    a = parse(argv)
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [env.get("PYTHONPATH")])])
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    from kgan import device

    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kgan-bench-workers-") as tmp:
        os.makedirs(os.path.join(tmp, "data"))
        data = write_slices(os.path.join(tmp, "data"), a.size)
        cases = [
            (label, workers, batch, jit)
            for label, workers, batch in (
                ("1 process", 1, a.batch),
                ("2 workers", 2, a.batch),
                ("2 workers", 2, 2 * a.batch),
            )
            for jit in ((False, True) if a.xla else (False,))
        ]
        measured: dict = {case: [] for case in cases}
        xla_plan = {}  # the "XLA : on (why)" line each run printed
        for _ in range(a.rounds):
            for case in cases:
                label, workers, batch, jit = case
                name = f"w{workers}b{batch}{'x' if jit else ''}"
                args = train_args(a, data, os.path.join(tmp, "runs"), name, batch, jit)
                if workers == 1:
                    command = [sys.executable, "-m", "kgan.cli", "train", *args]
                else:
                    command = [sys.executable, "-m", "kgan.launch", "--workers", str(workers)]
                    command += ["--", *args]
                output, seconds = run(command, env)
                prefix = "" if workers == 1 else "[worker 0] "
                per_step = ms_per_step(output, prefix.strip())
                xla = re.search(re.escape(prefix) + r"kgan: XLA +: (.*)", output)
                xla_plan[case] = xla.group(1) if xla else "?"
                measured[case].append((statistics.median(per_step[1:] or per_step), seconds))
                print(
                    f"{label}, global batch {batch}, XLA {xla_plan[case]}: "
                    f"{measured[case][-1][0]:.0f} ms/step ({seconds:.0f} s with start-up)",
                    flush=True,
                )
        for case in cases:
            label, workers, batch, jit = case
            median_ms = statistics.median(ms for ms, _ in measured[case])
            rows.append(
                {
                    "run": label,
                    "workers": workers,
                    "global_batch": batch,
                    "per_worker_batch": batch // workers,
                    "jit_compile": jit,
                    "xla": xla_plan[case],
                    "ms_per_step_by_round": [ms for ms, _ in measured[case]],
                    "median_ms_per_step": median_ms,
                    "steps_per_s": 1000.0 / median_ms,
                    "images_per_s": 1000.0 / median_ms * batch,
                    "wall_s_incl_startup": [s for _, s in measured[case]],
                }
            )
    base = rows[0]
    for r in rows:
        r["steps_per_s_vs_1_process"] = r["steps_per_s"] / base["steps_per_s"]
        r["images_per_s_vs_1_process"] = r["images_per_s"] / base["images_per_s"]
    result = {
        "what": f"{a.gan} {a.size}x{a.size}, width {a.width}, {a.steps} steps x {a.epochs} "
        f"epochs, median ms/step of epochs 2..{a.epochs}, median of {a.rounds} round(s)",
        "cpu": device.cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "gpu": "none (no GPU machine was lent to this session)",
        "note": "both workers run on this machine and share its cores; gRPC over 127.0.0.1",
        "rows": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(result, f, indent=2)
    lines = [
        f"Training speed, 1 process vs 2 local workers (MultiWorkerMirroredStrategy, ring "
        f"all-reduce over gRPC on 127.0.0.1): {result['what']}. {result['cpu']}, "
        f"{result['cores']} cores shared by both workers; load average "
        f"{load_before[0]:.1f} before, {result['load_average_after'][0]:.1f} after. No GPU.",
        "",
        "| run | XLA | global batch | per worker | ms/step (median) | steps/s | images/s | "
        "steps/s vs 1 process | images/s vs 1 process |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['xla'].split(' ', 1)[0]} | {r['global_batch']} | "
            f"{r['per_worker_batch']} | "
            f"{r['median_ms_per_step']:.0f} | {r['steps_per_s']:.2f} | "
            f"{r['images_per_s']:.0f} | {r['steps_per_s_vs_1_process']:.2f}x | "
            f"{r['images_per_s_vs_1_process']:.2f}x |"
        )
    lines += [
        "",
        f"Written by `python scripts/bench_workers.py` ({' '.join(sys.argv[1:]) or 'defaults'}).",
    ]
    with open(a.markdown, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
