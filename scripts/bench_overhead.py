#!/usr/bin/env python
"""Keras fit's per-step host overhead on a tiny GAN, with and without `steps_per_execution`.

  python scripts/bench_overhead.py                 # writes docs/bench_overhead_<cpu>.{json,md}

A tiny DCGAN (16x16, width 4, batch 4) does almost no arithmetic, so its step time inside `fit`
is nearly all host work: the Python loop, one call into the compiled step, the callbacks. Each
`steps_per_execution` value gets its own compiled model on kgan's chosen CPU path (oneDNN on, no
XLA), fitted twice per round - bare, and with kgan's per-step callbacks (divergence guard, step
counter, checkpoint cadence, TensorBoard scalars) as `kgan.training.train` installs them - in
rounds that rotate the order so the machine's load falls on all of them alike. A step's time is
the span between the first and the last batch-end of a fit call over the steps between them
(the fit call's own start and end are left out). The overhead of k steps per call is its step
time minus that of the largest k measured (whose host cost per step is smallest).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--executions",
        type=int,
        nargs="+",
        default=[1, 4, 16, 64],
        help="steps_per_execution values to compare",
    )
    p.add_argument("--steps", type=int, default=256, help="steps per fit call")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default="", help="path stem (default docs/bench_overhead_<cpu>)")
    return p.parse_args(argv)


class _Stamps:
    """Batch-end timestamps and the steps done at each (Keras reports the last step's index)."""

    def __init__(self):
        import keras

        outer = self

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                outer.marks.append((batch + 1, time.perf_counter()))

        self.callback = Callback()
        self.marks: list = []

    def seconds_per_step(self) -> float:
        (s0, t0), (s1, t1) = self.marks[0], self.marks[-1]
        return (t1 - t0) / (s1 - s0)


def _kgan_callbacks(model, tmp: str):
    """kgan's per-step callbacks, as `training.train` installs them (nothing due in the run)."""
    import tensorflow as tf

    from kgan import callbacks as cb

    step = tf.Variable(0, dtype=tf.int64)
    health = cb.RunHealth()
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step), tmp, max_to_keep=1)
    writer = tf.summary.create_file_writer(tmp)
    return [
        cb.StopOnDivergence(health),
        cb.StepCounter(step),
        cb.CheckpointEvery(manager, step, 10**9, health),
        cb.ScalarLogger(writer, every=10**9),
    ]


def measure(args) -> dict:
    import tensorflow as tf

    from kgan import config as cfg
    from kgan import device, optimizers
    from kgan.gans import build_gan

    recipe = cfg.defaults("dcgan")
    x = tf.random.stateless_uniform([4, 16, 16, 1], seed=[1, 2], minval=-1, maxval=1)
    data = tf.data.Dataset.from_tensors(x).repeat()
    models = {}
    for k in args.executions:
        model = build_gan("dcgan", image_size=16, latent_dim=8, width=4, seed=0)
        model.compile(
            d_optimizer=optimizers.make_optimizer(recipe.optimizer.d),
            g_optimizer=optimizers.make_optimizer(recipe.optimizer.g),
            jit_compile=False,
            steps_per_execution=k,
        )
        model.fit(data, epochs=1, steps_per_epoch=2 * k, verbose=0)  # trace
        models[k] = model
    variants = [(k, cbs) for k in args.executions for cbs in ("bare", "kgan")]
    times = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for k, cbs in order:
                stamps = _Stamps()
                extra = (
                    _kgan_callbacks(models[k], os.path.join(tmp, f"{k}-{r}"))
                    if cbs == "kgan"
                    else []
                )
                models[k].fit(
                    data,
                    epochs=1,
                    steps_per_epoch=args.steps,
                    verbose=0,
                    callbacks=[*extra, stamps.callback],
                )
                times[(k, cbs)].append(stamps.seconds_per_step())
    med = {f"{k}/{cbs}": statistics.median(times[(k, cbs)]) for k, cbs in variants}
    floor = min(args.executions)
    best = max(args.executions)
    rows = {}
    for k, cbs in variants:
        s = med[f"{k}/{cbs}"]
        rows[f"{k}/{cbs}"] = {
            "steps_per_execution": k,
            "callbacks": cbs,
            "step_s": s,
            "times": times[(k, cbs)],
            "overhead_s": s - med[f"{best}/{cbs}"],
            "vs_one_step_per_call": s / med[f"{floor}/{cbs}"],
        }
    return {
        "machine": {
            "platform": platform.platform(),
            "processor": device.cpu_model(),
            "cpus": os.cpu_count(),
        },
        "settings": {
            "gan": "dcgan",
            "size": 16,
            "width": 4,
            "batch": 4,
            "latent_dim": 8,
            "steps_per_fit": args.steps,
            "rounds": args.rounds,
            "onednn": device.onednn_enabled(),
            "jit_compile": False,
            "tensorflow": tf.__version__,
        },
        "rows": rows,
    }


def markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    load = m["load_average_before"][0], m["load_average_after"][0]
    lines = [
        f"Keras fit's per-step host overhead (`scripts/bench_overhead.py`): a tiny DCGAN "
        f"({s['size']}x{s['size']}, width {s['width']}, batch {s['batch']}) on kgan's CPU path "
        f"(oneDNN {'on' if s['onednn'] else 'off'}, no XLA), {s['steps_per_fit']} steps per fit "
        f"call, median of {s['rounds']} interleaved rounds. CPU: {m['processor']}, {m['cpus']} "
        f"cores; load average {load[0]:.1f} before, {load[1]:.1f} after. TensorFlow "
        f"{s['tensorflow']}.",
        "",
        "| steps_per_execution | callbacks | ms/step | overhead over the largest k, ms/step "
        "| / 1 step per call |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in report["rows"].values():
        lines.append(
            f"| {r['steps_per_execution']} | {r['callbacks']} | {1e3 * r['step_s']:.2f} "
            f"| {1e3 * r['overhead_s']:.2f} | {r['vs_one_step_per_call']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse(argv)
    from kgan import atomic, device

    before = os.getloadavg()
    report = measure(args)
    report["machine"]["load_average_before"] = before
    report["machine"]["load_average_after"] = os.getloadavg()
    slug = device.machine_slug()
    stem = args.out or os.path.join(ROOT, "docs", f"bench_overhead_{slug}")

    atomic.write_text(stem + ".json", json.dumps(report, indent=2))
    atomic.write_text(stem + ".md", markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
