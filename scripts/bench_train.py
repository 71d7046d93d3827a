#!/usr/bin/env python
"""Training-step speed of every GAN, side by side: XLA vs no XLA, oneDNN on vs off, against peak.

  python scripts/bench_train.py            # 64x64, batch 64, the paper's networks (slow on a CPU)
  python scripts/bench_train.py --quick    # 32x32, batch 16, narrow networks: a sanity run

For each GAN: images/s of one compiled train step (`jit_compile=True`) and of the same step
without XLA, each with TensorFlow's oneDNN kernels on and off (TF_ENABLE_ONEDNN_OPTS is read when
TensorFlow is imported, so each setting runs in its own subprocess); the FLOPs of one step counted
on its graph by the tf.compat.v1 profiler and the achieved GFLOP/s against the machine's float32
matmul peak; the input pipeline alone (kgan's resumable training stream, `SliceStream`, beside the
element-wise `load_slices`); and the
Keras fit loop's overhead over the bare compiled step. Medians over repeats, ratios, JSON and
Markdown out.

images/s counts the real images a step consumes (batch x n_critic for the WGANs), which is what
the input pipeline must deliver.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

GANS = ("dcgan", "wgan", "wgan-gp", "began")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="32x32, batch 16, width 16, 2 repeats")
    p.add_argument("--gans", nargs="+", default=list(GANS), choices=GANS)
    p.add_argument("--other-gans", nargs="+", choices=GANS,
                   help="GANs measured again with the other oneDNN setting (default: all)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=0, help="network width (0: the paper's 64)")
    p.add_argument("--reps", type=int, default=3, help="timed steps per measurement (median)")
    p.add_argument("--fit-steps", type=int, default=5, help="steps of the fit-overhead run")
    p.add_argument("--json", default="docs/bench_train.json")
    p.add_argument("--markdown", default="docs/bench_train.md")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: write results of one process
    p.add_argument("--extras", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.batch, args.width, args.reps, args.fit_steps = 32, 16, 16, 2, 3
    return args


# --- measurements inside one process -------------------------------------------------------------

def _median_time(fn, reps: int) -> tuple[float, list]:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def _onednn_enabled() -> bool | None:
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # private API: report unknown rather than fail
        return None


def matmul_peak(n: int, reps: int) -> float:
    """float32 GFLOP/s of an n x n matmul (the best of plain and XLA-compiled)."""
    import tensorflow as tf

    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    best = 0.0
    for jit in (False, True):
        f = tf.function(lambda x, y: tf.matmul(x, y), jit_compile=jit)
        f(a, b).numpy()
        med, _ = _median_time(lambda: f(a, b).numpy(), max(reps, 3))
        best = max(best, 2 * n ** 3 / med / 1e9)
    return best


def _model(gan: str, args, jit: bool):

    from kgan import config as cfg
    from kgan.gans import build_gan

    recipe = cfg.defaults(gan)
    model = build_gan(gan, image_size=args.size, latent_dim=100, width=args.width or None,
                      seed=0, **recipe.gan_params)
    model.compile(d_optimizer=cfg.make_optimizer(recipe.optimizer.d),
                  g_optimizer=cfg.make_optimizer(recipe.optimizer.g), jit_compile=jit)
    return model


def _batch(model, args):
    import tensorflow as tf

    n = args.batch * int(getattr(model, "real_batches_per_step", 1))
    x = tf.random.stateless_uniform([n, args.size, args.size, 1], seed=[1, 2], minval=-1, maxval=1)
    labels = {"modality": tf.zeros([n], tf.int32), "tumour": tf.zeros([n], tf.int32)}
    return n, tf.data.Dataset.from_tensors((x, labels)).repeat()


def step_flops(gan: str, args) -> float:
    """FLOPs of one train step, counted on the (uncompiled) step graph by the v1 profiler."""
    import tensorflow as tf

    model = _model(gan, args, jit=False)
    _, ds = _batch(model, args)
    x, y = next(iter(ds))
    graph = tf.function(lambda a, b: model.train_step((a, b))).get_concrete_function(x, y).graph
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    return float(tf.compat.v1.profiler.profile(graph, options=opts).total_float_ops)


def time_step(gan: str, args, jit: bool) -> dict:
    """Median seconds of one train step (the compile/trace call timed apart)."""
    model = _model(gan, args, jit)
    images, ds = _batch(model, args)
    iterator = iter(ds)
    model.make_train_function()
    t = time.perf_counter()
    model.train_function(iterator)
    first = time.perf_counter() - t
    model.train_function(iterator)  # one warm step
    med, times = _median_time(lambda: _sync(model.train_function(iterator)), args.reps)
    return {"seconds": med, "times": times, "first_call_s": first, "images_per_step": images,
            "images_per_s": images / med}


def _sync(logs):
    for value in logs.values():
        value.numpy()
        break


def fit_overhead(gan: str, args, rounds: int = 3) -> dict:
    """Keras fit over the same in-memory batches vs the bare compiled step, per step.

    The per-step cost inside fit is read from batch-end timestamps (a callback), skipping each
    call's first step, so it is the loop's steady-state overhead; what a fit call costs once on
    top (setting up its data adapter, retracing) is reported separately as `fit_call_extra_s`.
    Bare loops and fit calls alternate, `rounds` times, and medians are compared, so a change in
    machine load hits both sides alike.
    """
    import keras

    class _StepClock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.stamps.append(time.perf_counter())

    model = _model(gan, args, jit=True)
    _, ds = _batch(model, args)
    steps = max(3, args.fit_steps)
    clock = _StepClock()
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)  # compile
    iterator = iter(ds)
    _sync(model.train_function(iterator))
    bare, fit, extra = [], [], []
    for _ in range(rounds):
        stamps = [time.perf_counter()]
        for _ in range(steps):
            _sync(model.train_function(iterator))
            stamps.append(time.perf_counter())
        bare.append(statistics.median(b - a for a, b in zip(stamps[1:], stamps[2:])))
        clock.stamps = []
        t = time.perf_counter()
        model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False, callbacks=[clock])
        total = time.perf_counter() - t
        per_step = statistics.median(b - a for a, b in zip(clock.stamps, clock.stamps[1:]))
        fit.append(per_step)
        extra.append(total - steps * per_step)
    b, f = statistics.median(bare), statistics.median(fit)
    return {"bare_step_s": b, "fit_step_s": f, "overhead": f / b - 1.0, "bare": bare, "fit": fit,
            "fit_call_extra_s": statistics.median(extra)}


def _drain_rate(ds) -> float:
    """Images/s of consuming `ds` inside TensorFlow (Dataset.reduce), as `fit` consumes it."""
    import tensorflow as tf

    t = time.perf_counter()
    n = int(ds.reduce(tf.constant(0, tf.int64),
                      lambda n, batch: n + tf.cast(tf.shape(batch[0])[0], tf.int64)))
    return n / (time.perf_counter() - t)


def pipeline_rate(args, slices: int = 16384, batches: int = 400) -> dict:
    """Images/s of the training input alone (TFRecords -> shuffled float batches).

    Side by side, at the step's batch and at WGAN's five batches a step: kgan's training stream
    (`SliceStream`: a seeded permutation per pass, each batch one gather from memory) and
    `kgan.pipeline.load_slices` (the element-wise tf.data cache -> shuffle -> batch chain it
    replaced in training, still the general-purpose reader), both after their first pass.
    """
    import numpy as np
    import tensorflow as tf

    from kgan import pipeline, schema
    from kgan.training import SliceStream

    rng = np.random.default_rng(0)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for shard in range(4):
            path = os.path.join(d, f"bench-train.tfrecord-{shard:05d}-of-00004")
            with tf.io.TFRecordWriter(path) as w:
                for i in range(slices // 4):
                    image = rng.integers(0, 256, (args.size, args.size), dtype=np.uint8)
                    w.write(schema.encode_example(image, modality=i % 4, plane=0, slice_index=i,
                                                  case_id=f"c{shard}", tumour_fraction=0.0))
        for batch in (args.batch, 5 * args.batch):
            stream = SliceStream(d, split="train", batch_size=batch, modalities=None, seed=0)
            out[f"stream/{batch}"] = _drain_rate(stream.from_position(stream.batches_per_pass,
                                                                      batches))
            elementwise = pipeline.load_slices(d, "train", batch_size=batch, shuffle_seed=0,
                                               shuffle_buffer=slices)
            _drain_rate(elementwise)  # the first pass fills the cache
            out[f"load_slices/{batch}"] = _drain_rate(elementwise)
    return {"images_per_s": out[f"stream/{args.batch}"], "by_batch": out, "slices": slices}


def worker(args) -> None:
    import tensorflow as tf

    out = {"onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "onednn": _onednn_enabled(),
           "tensorflow": tf.__version__, "peak_gflops": matmul_peak(2048 if args.quick else 4096,
                                                                     args.reps),
           "steps": {}}
    for gan in args.gans:
        out["steps"][gan] = {
            "xla": time_step(gan, args, jit=True),
            "no_xla": time_step(gan, args, jit=False),
        }
        print(f"  {gan}: xla {out['steps'][gan]['xla']['seconds']:.3f} s, "
              f"no xla {out['steps'][gan]['no_xla']['seconds']:.3f} s", file=sys.stderr)
    if args.extras:
        out["flops"] = {gan: step_flops(gan, args) for gan in args.gans}
        out["fit"] = fit_overhead("dcgan" if "dcgan" in args.gans else args.gans[0], args)
        out["pipeline"] = pipeline_rate(args)
    with open(args.worker, "w") as f:
        json.dump(out, f)


# --- the report ----------------------------------------------------------------------------------

def run_worker(args, onednn: str | None, extras: bool, gans=None) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if onednn is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        path = tmp.name
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", path, "--size", str(args.size),
           "--batch", str(args.batch), "--width", str(args.width), "--reps", str(args.reps),
           "--fit-steps", str(args.fit_steps), "--gans", *(gans or args.gans)] + (["--extras"] if extras else [])
    if args.quick:
        cmd.append("--quick")
    label = "default" if onednn is None else f"TF_ENABLE_ONEDNN_OPTS={onednn}"
    print(f"bench_train: measuring with {label} ...", file=sys.stderr)
    subprocess.run(cmd, env=env, check=True)
    with open(path) as f:
        result = json.load(f)
    os.remove(path)
    return result


def summarise(args, runs: dict) -> dict:
    """Ratios and bars from the per-setting measurements."""
    default = runs["default"]
    flops = default["flops"]
    peak = max(r["peak_gflops"] for r in runs.values())
    rows = {}
    for gan in args.gans:
        row = {"gflop_per_step": flops[gan] / 1e9}
        for setting, r in runs.items():
            if gan not in r["steps"]:
                continue
            s = r["steps"][gan]
            for mode in ("xla", "no_xla"):
                key = f"{mode}/{setting}"
                row[key] = {
                    "step_s": s[mode]["seconds"],
                    "images_per_s": s[mode]["images_per_s"],
                    "gflops": flops[gan] / s[mode]["seconds"] / 1e9,
                    "of_peak": flops[gan] / s[mode]["seconds"] / 1e9 / peak,
                    "first_call_s": s[mode]["first_call_s"],
                }
            row[f"xla_speedup/{setting}"] = s["no_xla"]["seconds"] / s["xla"]["seconds"]
        fastest = min((row[k]["step_s"], k) for k in row if isinstance(row[k], dict))
        row["fastest"] = fastest[1]
        images_per_step = default["steps"][gan]["xla"]["images_per_step"]
        stream = default["pipeline"]["by_batch"].get(f"stream/{images_per_step}",
                                                     default["pipeline"]["images_per_s"])
        row["pipeline_over_step"] = stream / row[fastest[1]]["images_per_s"]
        rows[gan] = row
    bars = {}
    for gan in ("dcgan", "wgan"):
        if gan in rows:
            bars[f"{gan}: compiled >= 1.5x uncompiled (default oneDNN)"] = rows[gan]["xla_speedup/default"] >= 1.5
    if "began" in rows:
        bars["began: compiled never slower (default oneDNN)"] = rows["began"]["xla_speedup/default"] >= 1.0
    if "dcgan" in rows:
        bars["dcgan: compiled >= 70% of matmul peak"] = rows["dcgan"]["xla/default"]["of_peak"] >= 0.70
    bars["pipeline >= 10x every step"] = all(r["pipeline_over_step"] >= 10 for r in rows.values())
    bars["fit overhead < 5%"] = default["fit"]["overhead"] < 0.05
    return {
        "machine": {"platform": platform.platform(), "processor": _cpu_name(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()},
        "settings": {"size": args.size, "batch": args.batch, "width": args.width or 64,
                     "reps": args.reps, "quick": args.quick},
        "onednn_default_on": default["onednn"],
        "peak_gflops": {k: r["peak_gflops"] for k, r in runs.items()},
        "pipeline_images_per_s": default["pipeline"]["images_per_s"],
        "pipeline_by_batch": default["pipeline"]["by_batch"],
        "fit": default["fit"],
        "gans": rows,
        "bars": bars,
        "raw": runs,
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def markdown(report: dict) -> str:
    s = report["settings"]
    settings = list(report["peak_gflops"])
    lines = [
        f"Training step, {s['size']}x{s['size']}, batch {s['batch']}, width {s['width']}, "
        f"median of {s['reps']} steps; {report['machine']['processor']}, "
        f"{report['machine']['cpus']} cores, load average at the end "
        f"{report['machine']['load_average'][0]:.1f}. oneDNN on by default: "
        f"{report['onednn_default_on']}. Matmul peak: "
        + ", ".join(f"{v:.0f} GFLOP/s ({k})" for k, v in report["peak_gflops"].items()) + ".",
        "",
        "| GAN | GFLOP/step | setting | XLA img/s | no-XLA img/s | XLA speed-up | XLA GFLOP/s (% peak) "
        "| no-XLA GFLOP/s (% peak) |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for gan, row in report["gans"].items():
        for setting in settings:
            if f"xla/{setting}" not in row:
                continue
            x, n = row[f"xla/{setting}"], row[f"no_xla/{setting}"]
            lines.append(
                f"| {gan} | {row['gflop_per_step']:.0f} | {setting} | {x['images_per_s']:.1f} | "
                f"{n['images_per_s']:.1f} | {row[f'xla_speedup/{setting}']:.2f}x | "
                f"{x['gflops']:.0f} ({100 * x['of_peak']:.0f}%) | {n['gflops']:.0f} ({100 * n['of_peak']:.0f}%) |"
            )
    lines += ["", "| GAN | fastest | pipeline / fastest step |", "|---|---|---:|"]
    for gan, row in report["gans"].items():
        lines.append(f"| {gan} | {row['fastest']} | {row['pipeline_over_step']:.0f}x |")
    f = report["fit"]
    lines += [
        "",
        "Input pipeline alone, images/s by batch: "
        + ", ".join(f"{k} {v:,.0f}" for k, v in report["pipeline_by_batch"].items())
        + f". Fit loop: "
        f"{f['fit_step_s'] * 1000:.0f} ms/step vs bare compiled step {f['bare_step_s'] * 1000:.0f} "
        f"ms/step: overhead {100 * f['overhead']:+.1f}%.",
        "",
        "| bar | met |", "|---|---|",
    ]
    lines += [f"| {k} | {'yes' if v else 'NO'} |" for k, v in report["bars"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse(argv)
    if args.worker:
        worker(args)
        return 0
    default = run_worker(args, None, extras=True)
    other = "0" if default.get("onednn") else "1"
    runs = {"default": default,
            f"onednn={other}": run_worker(args, other, extras=False, gans=args.other_gans)}
    report = summarise(args, runs)
    for path, text in ((args.json, json.dumps(report, indent=2)), (args.markdown, markdown(report))):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
