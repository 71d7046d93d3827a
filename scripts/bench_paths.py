#!/usr/bin/env python
"""Which path is fastest for a recipe's train step on this machine: XLA or not, oneDNN or not.

  python scripts/bench_paths.py                               # the four CPU recipes
  python scripts/bench_paths.py --recipes began-cpu dcgan --rounds 5 --json docs/paths.json

Each (oneDNN, XLA) pair runs in its own child process (TensorFlow reads TF_ENABLE_ONEDNN_OPTS
when it is imported), in interleaved rounds so that a busy machine slows every path alike.
Reports the median step time of each path, the path `jit_compile = "auto"` picks here
(kgan/device.py) and how far it is from the fastest. This is the measurement behind that rule.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PATHS = [(onednn, jit) for onednn in (True, False) for jit in (False, True)]


def child(recipe_name: str, jit: bool, steps: int) -> dict:
    """Times `steps` train steps of a recipe's model after two warm-up steps (in this process)."""
    import tensorflow as tf

    from kgan import config as cfg
    from kgan import device, training

    recipe = cfg.resolve(None, recipe_name)
    gan = training.build_model(recipe, jit_compile=jit)
    size, batch = recipe.model.image_size, recipe.train.batch_size
    n = batch * int(getattr(gan, "real_batches_per_step", 1))
    x = tf.random.stateless_uniform([n, size, size, 1], seed=[1, 2], minval=-1, maxval=1)
    labels = {"modality": tf.zeros([n], tf.int32), "tumour": tf.zeros([n], tf.int32)}
    iterator = iter(tf.data.Dataset.from_tensors((x, labels)).repeat())
    gan.make_train_function()
    for _ in range(2):
        logs = gan.train_function(iterator)
    float(list(logs.values())[0])
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        logs = gan.train_function(iterator)
        float(list(logs.values())[0])  # wait for the step
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "onednn": device.onednn_enabled()}


def run_child(recipe: str, onednn: bool, jit: bool, steps: int) -> dict:
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1" if onednn else "0", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, __file__, "--child", recipe, str(int(jit)), str(steps)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--recipes", nargs="+", default=["began-cpu", "dcgan-cpu", "wgan-cpu", "wgan-gp-cpu"]
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20, help="timed steps per child")
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        recipe, jit, steps = args.child
        print(json.dumps(child(recipe, bool(int(jit)), int(steps))))
        return 0

    from kgan import device

    load_before = os.getloadavg()
    samples = {(r, o, j): [] for r in args.recipes for o, j in PATHS}
    for round_ in range(args.rounds):
        for recipe in args.recipes:
            for onednn, jit in PATHS:
                res = run_child(recipe, onednn, jit, args.steps)
                samples[(recipe, onednn, jit)].append(res["median_s"])
                print(
                    f"round {round_ + 1} {recipe:12s} oneDNN {'on ' if onednn else 'off'} "
                    f"XLA {'on ' if jit else 'off'}: {res['median_s'] * 1000:.1f} ms",
                    flush=True,
                )
    rows = []
    for recipe in args.recipes:
        med = {(o, j): statistics.median(samples[(recipe, o, j)]) for o, j in PATHS}
        best = min(med, key=med.get)
        auto_jit, _ = device.resolve_jit_compile("auto", gpus=0, onednn=True)
        chosen = (True, auto_jit)  # kgan turns oneDNN on for x86-64 CPUs
        rows.append(
            {
                "recipe": recipe,
                **{
                    f"onednn_{'on' if o else 'off'}_xla_{'on' if j else 'off'}_ms": round(
                        med[(o, j)] * 1000, 2
                    )
                    for o, j in PATHS
                },
                "fastest": f"oneDNN {'on' if best[0] else 'off'}, XLA {'on' if best[1] else 'off'}",
                "kgan_choice": f"oneDNN on, XLA {'on' if chosen[1] else 'off'}",
                "choice_vs_fastest": round(med[chosen] / med[best], 3),
            }
        )
    result = {
        "cpu": device.cpu_model(),
        "cores": os.cpu_count(),
        "rounds": args.rounds,
        "steps_per_child": args.steps,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "rows": rows,
    }
    lines = [
        f"Step time (median ms) on {result['cpu']}, {result['cores']} cores; "
        f"{args.rounds} interleaved rounds of {args.steps} steps; load "
        f"{load_before[0]:.1f} -> {result['load_after'][0]:.1f}",
        "",
        "| recipe | oneDNN on, plain | oneDNN on, XLA | oneDNN off, plain | oneDNN off, XLA | "
        "kgan's choice | choice / fastest |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['recipe']} | {r['onednn_on_xla_off_ms']} | {r['onednn_on_xla_on_ms']} | "
            f"{r['onednn_off_xla_off_ms']} | {r['onednn_off_xla_on_ms']} | "
            f"{r['kgan_choice']} | {r['choice_vs_fastest']:.2f}x |"
        )
    table = "\n".join(lines)
    print(table)
    if args.json:
        from kgan import atomic

        atomic.write_json(args.json, result, indent=2)
    if args.markdown:
        from kgan import atomic

        atomic.write_text(args.markdown, table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
