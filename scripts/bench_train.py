#!/usr/bin/env python
"""Training-step speed of every GAN, side by side: XLA vs no XLA, oneDNN on vs off, against peak.

  python scripts/bench_train.py            # 64x64, batch 64, the paper's networks (slow on a CPU)
  python scripts/bench_train.py --quick    # 32x32, batch 16, narrow networks: a sanity run
  python scripts/bench_train.py --against torch   # kgan against the PyTorch reference (see below)

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

`--against torch` measures instead kgan against a peer: `scripts/torch_reference.py`, the same four
steps in PyTorch (the `bench` extra), at its best ordinary CPU settings (threads = cores, NCHW and
channels_last). Every variant lives in its own long-lived child process (oneDNN on and off for
kgan, each with its plain and XLA step; one torch process), and the parent asks them in turn for
timed steps, round after round and GAN after GAN, so that the machine's load falls on all of them
alike. Medians per variant, kgan's choice (oneDNN on; on a CPU the faster of plain and XLA) over
torch's best, FLOPs counted as torch executes them (2 x multiply-adds of every conv and matmul,
forward and backward) and on kgan's graph by TensorFlow's profiler, and the float32 matmul peak
(median over the rounds, measured in each
between the steps).
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

from kgan import device
from kgan.names import GANS


def parse(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="32x32, batch 16, width 16, 2 repeats")
    p.add_argument("--gans", nargs="+", default=list(GANS), choices=GANS)
    p.add_argument(
        "--other-gans",
        nargs="+",
        choices=GANS,
        help="GANs measured again with the other oneDNN setting (default: all)",
    )
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=0, help="network width (0: the paper's 64)")
    p.add_argument("--reps", type=int, default=3, help="timed steps per measurement (median)")
    p.add_argument("--fit-steps", type=int, default=5, help="steps of the fit-overhead run")
    p.add_argument("--json", default="docs/bench_train.json")
    p.add_argument("--markdown", default="docs/bench_train.md")
    p.add_argument("--against", choices=["torch"], help="measure kgan against a peer instead")
    p.add_argument("--rounds", type=int, default=3, help="--against: interleaved rounds (median)")
    p.add_argument(
        "--steps", type=int, default=1, help="--against: timed steps per variant a round"
    )
    p.add_argument(
        "--kgan-variants",
        nargs="+",
        default=None,
        help="--against: kgan variants to time (default: all of onednn/plain, "
        "onednn/plain-keras-kernels, onednn/xla, no-onednn/plain, no-onednn/xla)",
    )
    p.add_argument(
        "--out",
        default="",
        help="--against: JSON/Markdown path stem (default: docs/bench_torch_<cpu>)",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: write results of one process
    p.add_argument("--serve", choices=["kgan", "torch"], help=argparse.SUPPRESS)
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
        med, _ = _median_time(lambda f=f: f(a, b).numpy(), max(reps, 3))
        best = max(best, 2 * n**3 / med / 1e9)
    return best


def _model(gan: str, args, jit: bool):

    from kgan import config as cfg
    from kgan import optimizers
    from kgan.gans import build_gan

    recipe = cfg.defaults(gan)
    model = build_gan(
        gan,
        image_size=args.size,
        latent_dim=100,
        width=args.width or None,
        seed=0,
        **recipe.gan_params,
    )
    d_optimizer, g_optimizer = optimizers.from_recipe(recipe)
    model.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer, jit_compile=jit)
    return model


def _batch(model, args):
    import tensorflow as tf

    n = args.batch * int(getattr(model, "real_batches_per_step", 1))
    x = tf.random.stateless_uniform([n, args.size, args.size, 1], seed=[1, 2], minval=-1, maxval=1)
    labels = {"modality": tf.zeros([n], tf.int32), "tumour": tf.zeros([n], tf.int32)}
    return n, tf.data.Dataset.from_tensors((x, labels)).repeat()


def step_flops(gan: str, args) -> float:
    """FLOPs of one train step, counted on the (uncompiled) step graph by the v1 profiler."""
    return _graph_flops(gan, args)["all"]


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
    return {
        "seconds": med,
        "times": times,
        "first_call_s": first,
        "images_per_step": images,
        "images_per_s": images / med,
    }


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
    return {
        "bare_step_s": b,
        "fit_step_s": f,
        "overhead": f / b - 1.0,
        "bare": bare,
        "fit": fit,
        "fit_call_extra_s": statistics.median(extra),
    }


def _drain_rate(ds) -> float:
    """Images/s of consuming `ds` inside TensorFlow (Dataset.reduce), as `fit` consumes it."""
    import tensorflow as tf

    t = time.perf_counter()
    n = int(
        ds.reduce(
            tf.constant(0, tf.int64), lambda n, batch: n + tf.cast(tf.shape(batch[0])[0], tf.int64)
        )
    )
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

    rng = np.random.default_rng(0)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for shard in range(4):
            path = os.path.join(d, f"bench-train.tfrecord-{shard:05d}-of-00004")
            with tf.io.TFRecordWriter(path) as w:
                for i in range(slices // 4):
                    image = rng.integers(0, 256, (args.size, args.size), dtype=np.uint8)
                    w.write(
                        schema.encode_example(
                            image,
                            modality=i % 4,
                            plane=0,
                            slice_index=i,
                            case_id=f"c{shard}",
                            tumour_fraction=0.0,
                        )
                    )
        for batch in (args.batch, 5 * args.batch):
            stream = pipeline.SliceStream(
                d, split="train", batch_size=batch, modalities=None, seed=0
            )
            out[f"stream/{batch}"] = _drain_rate(
                stream.from_position(stream.batches_per_pass, batches)
            )
            elementwise = pipeline.load_slices(
                d, "train", batch_size=batch, shuffle_seed=0, shuffle_buffer=slices
            )
            _drain_rate(elementwise)  # the first pass fills the cache
            out[f"load_slices/{batch}"] = _drain_rate(elementwise)
    return {"images_per_s": out[f"stream/{args.batch}"], "by_batch": out, "slices": slices}


def worker(args) -> None:
    import tensorflow as tf

    out = {
        "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "onednn": _onednn_enabled(),
        "tensorflow": tf.__version__,
        "peak_gflops": matmul_peak(2048 if args.quick else 4096, args.reps),
        "steps": {},
    }
    for gan in args.gans:
        out["steps"][gan] = {
            "xla": time_step(gan, args, jit=True),
            "no_xla": time_step(gan, args, jit=False),
        }
        print(
            f"  {gan}: xla {out['steps'][gan]['xla']['seconds']:.3f} s, "
            f"no xla {out['steps'][gan]['no_xla']['seconds']:.3f} s",
            file=sys.stderr,
        )
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
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        path,
        "--size",
        str(args.size),
        "--batch",
        str(args.batch),
        "--width",
        str(args.width),
        "--reps",
        str(args.reps),
        "--fit-steps",
        str(args.fit_steps),
        "--gans",
        *(gans or args.gans),
    ] + (["--extras"] if extras else [])
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
        stream = default["pipeline"]["by_batch"].get(
            f"stream/{images_per_step}", default["pipeline"]["images_per_s"]
        )
        row["pipeline_over_step"] = stream / row[fastest[1]]["images_per_s"]
        rows[gan] = row
    bars = {}
    for gan in ("dcgan", "wgan"):
        if gan in rows:
            bars[f"{gan}: compiled >= 1.5x uncompiled (default oneDNN)"] = (
                rows[gan]["xla_speedup/default"] >= 1.5
            )
    if "began" in rows:
        bars["began: compiled never slower (default oneDNN)"] = (
            rows["began"]["xla_speedup/default"] >= 1.0
        )
    if "dcgan" in rows:
        bars["dcgan: compiled >= 70% of matmul peak"] = (
            rows["dcgan"]["xla/default"]["of_peak"] >= 0.70
        )
    bars["pipeline >= 10x every step"] = all(r["pipeline_over_step"] >= 10 for r in rows.values())
    bars["fit overhead < 5%"] = default["fit"]["overhead"] < 0.05
    return {
        "machine": {
            "platform": platform.platform(),
            "processor": device.cpu_model(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "settings": {
            "size": args.size,
            "batch": args.batch,
            "width": args.width or 64,
            "reps": args.reps,
            "quick": args.quick,
        },
        "onednn_default_on": default["onednn"],
        "peak_gflops": {k: r["peak_gflops"] for k, r in runs.items()},
        "pipeline_images_per_s": default["pipeline"]["images_per_s"],
        "pipeline_by_batch": default["pipeline"]["by_batch"],
        "fit": default["fit"],
        "gans": rows,
        "bars": bars,
        "raw": runs,
    }


def markdown(report: dict) -> str:
    s = report["settings"]
    settings = list(report["peak_gflops"])
    lines = [
        f"Training step, {s['size']}x{s['size']}, batch {s['batch']}, width {s['width']}, "
        f"median of {s['reps']} steps; {report['machine']['processor']}, "
        f"{report['machine']['cpus']} cores, load average at the end "
        f"{report['machine']['load_average'][0]:.1f}. oneDNN on by default: "
        f"{report['onednn_default_on']}. Matmul peak: "
        + ", ".join(f"{v:.0f} GFLOP/s ({k})" for k, v in report["peak_gflops"].items())
        + ".",
        "",
        "| GAN | GFLOP/step | setting | XLA img/s | no-XLA img/s | XLA speed-up | XLA GFLOP/s (% "
        "peak) | no-XLA GFLOP/s (% peak) |",
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
                f"{x['gflops']:.0f} ({100 * x['of_peak']:.0f}%) | {n['gflops']:.0f} "
                f"({100 * n['of_peak']:.0f}%) |"
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
        "| bar | met |",
        "|---|---|",
    ]
    lines += [f"| {k} | {'yes' if v else 'NO'} |" for k, v in report["bars"].items()]
    return "\n".join(lines) + "\n"


# --- against a peer (PyTorch) ---------------------------------------------------------------------

#: kgan's variants: (oneDNN env value, XLA). kgan's choice on a CPU: oneDNN on, the faster of the
#: two.
KGAN_VARIANTS = {
    "onednn/plain": ("1", False),
    # kgan's plain step on Keras's own layer kernels (KGAN_FAST_KERNELS=0, kgan.kernels)
    "onednn/plain-keras-kernels": ("1", False),
    "onednn/xla": ("1", True),
    "no-onednn/plain": ("0", False),
    "no-onednn/xla": ("0", True),
}
TORCH_VARIANTS = ("torch/nchw", "torch/channels_last")
BAR_GANS = ("dcgan", "wgan", "began")


def _graph_flops(gan: str, args) -> dict:
    """FLOPs of kgan's step graph by TensorFlow's profiler: all, and convs and matmuls only."""
    import tensorflow as tf

    model = _model(gan, args, jit=False)
    _, ds = _batch(model, args)
    x, y = next(iter(ds))
    graph = tf.function(lambda a, b: model.train_step((a, b))).get_concrete_function(x, y).graph
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    report = tf.compat.v1.profiler.profile(graph, cmd="op", options=opts)
    # The "op" view nests the op types as a chain, each node's total counting the rest of it:
    # its own float_ops are the type's.
    by_op, nodes = {}, list(report.children)
    while nodes:
        node = nodes.pop()
        if node.float_ops:
            by_op[node.name] = by_op.get(node.name, 0.0) + float(node.float_ops)
        nodes.extend(node.children)
    dense = sum(v for k, v in by_op.items() if k.startswith(("Conv2D", "MatMul", "BatchMatMul")))
    return {"all": float(report.total_float_ops), "conv_matmul": dense, "by_op": by_op}


def _torch_matmul_peak(n: int, reps: int = 3) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    med, _ = _median_time(lambda: torch.mm(a, b), reps)
    return 2 * n**3 / med / 1e9


def serve(args) -> None:
    """A child process that answers timing requests, one JSON line each, until stdin closes."""
    kind = args.serve
    cache = {}
    if kind == "torch":
        import torch

        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import torch_reference as ref

        torch.set_num_threads(os.cpu_count())  # threads = cores
        info = {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        }
    else:
        import tensorflow as tf

        info = {
            "tensorflow": tf.__version__,
            "onednn": _onednn_enabled(),
            "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        }

    def build(gan, variant):
        if kind == "torch":
            model = ref.TorchGAN(
                gan, args.size, args.width or 64, channels_last=variant.endswith("channels_last")
            )
            n = args.batch * model.n_critic
            real = torch.rand(
                n, 1, args.size, args.size, generator=torch.Generator().manual_seed(1)
            )
            real = (2 * real - 1).contiguous(memory_format=model.memory_format)
            step = lambda: model.step(real)  # noqa: E731
        else:
            from kgan import kernels

            default, kernels.enabled = kernels.enabled, not variant.endswith("keras-kernels")
            try:
                model = _model(gan, args, jit=variant.endswith("xla"))
            finally:
                kernels.enabled = default  # for every other model (the FLOP count)
            _, ds = _batch(model, args)
            iterator = iter(ds)
            model.make_train_function()
            step = lambda: _sync(model.train_function(iterator))  # noqa: E731
        t = time.perf_counter()
        step()
        first = time.perf_counter() - t
        step()  # one warm step
        return step, first

    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "info":
            out = info
        elif req["op"] == "time":
            key = (req["gan"], req["variant"])
            if key not in cache:
                cache[key] = build(*key)
            step, first = cache[key]
            times = []
            for _ in range(req["steps"]):
                t = time.perf_counter()
                step()
                times.append(time.perf_counter() - t)
            out = {"times": times, "first_call_s": first}
        elif req["op"] == "peak":
            out = {
                "gflops": (
                    _torch_matmul_peak(req["n"]) if kind == "torch" else matmul_peak(req["n"], 3)
                )
            }
        elif req["op"] == "flops":
            out = (
                {"flops": ref.step_flops(req["gan"], args.size, args.width or 64, args.batch)}
                if kind == "torch"
                else _graph_flops(req["gan"], args)
            )
        else:
            raise ValueError(f"unknown request {req}")
        print("@@" + json.dumps(out), flush=True)


class _Child:
    def __init__(self, args, kind: str, onednn: str | None = None):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("TF_ENABLE_ONEDNN_OPTS", None)
        if onednn is not None:
            env["TF_ENABLE_ONEDNN_OPTS"] = onednn
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--serve",
            kind,
            "--size",
            str(args.size),
            "--batch",
            str(args.batch),
            "--width",
            str(args.width),
        ]
        self.proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def ask(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        raise RuntimeError(f"bench_train: a worker died answering {req}")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def against_torch(args) -> dict:
    """Interleaved rounds of kgan's variants and the torch reference; the report as a dict."""
    load_before = os.getloadavg()
    kgan_variants = args.kgan_variants or list(KGAN_VARIANTS)
    unknown = sorted(set(kgan_variants) - set(KGAN_VARIANTS))
    if unknown or not {"onednn/plain", "onednn/xla"} <= set(kgan_variants):
        raise SystemExit(
            f"bench_train: --kgan-variants must include onednn/plain and onednn/xla "
            f"(kgan's choice) and name only {list(KGAN_VARIANTS)}; got {kgan_variants}"
        )
    children = {"onednn": _Child(args, "kgan", "1"), "torch": _Child(args, "torch")}
    if any(v.startswith("no-onednn") for v in kgan_variants):
        children["no-onednn"] = _Child(args, "kgan", "0")
    try:
        info = {k: c.ask(op="info") for k, c in children.items()}
        n = 2048 if args.quick else 4096
        # The peak is measured again every round, between the steps, so that it sees the same
        # machine load as they do (a peak taken once, on a busy machine, gave steps "above" it).
        peak_rounds = {k: [] for k in children}
        variants = kgan_variants + list(TORCH_VARIANTS)
        owner = {v: v.split("/")[0] for v in variants}
        times = {(g, v): [] for g in args.gans for v in variants}
        first = {}
        for r in range(args.rounds):
            for k, c in children.items():
                peak_rounds[k].append(c.ask(op="peak", n=n)["gflops"])
            for gan in args.gans:
                order = variants[r % len(variants) :] + variants[: r % len(variants)]  # rotate
                for v in order:
                    res = children[owner[v]].ask(op="time", gan=gan, variant=v, steps=args.steps)
                    times[(gan, v)] += res["times"]
                    first[(gan, v)] = res["first_call_s"]
                    print(
                        f"  round {r + 1}/{args.rounds} {gan:8s} {v:20s} "
                        f"{statistics.median(res['times']):.3f} s",
                        file=sys.stderr,
                        flush=True,
                    )
        flops = {
            g: {
                "torch": children["torch"].ask(op="flops", gan=g)["flops"],
                "tf_graph": children["onednn"].ask(op="flops", gan=g),
            }
            for g in args.gans
        }
    finally:
        for c in children.values():
            c.close()
    peaks = {k: statistics.median(v) for k, v in peak_rounds.items()}
    peak = max(peaks.values())
    rows = {}
    for gan in args.gans:
        med = {v: statistics.median(times[(gan, v)]) for v in variants}
        chosen = min(("onednn/plain", "onednn/xla"), key=med.get)
        torch_best = min(TORCH_VARIANTS, key=med.get)
        work = flops[gan]["torch"]
        rows[gan] = {
            "step_s": med,
            "times": {v: times[(gan, v)] for v in variants},
            "first_call_s": {v: first[(gan, v)] for v in variants},
            "kgan_choice": chosen,
            "torch_best": torch_best,
            "ratio": med[chosen] / med[torch_best],
            "ratio_each": {v: med[v] / med[torch_best] for v in kgan_variants},
            "gflop_per_step": work / 1e9,
            "tf_graph_gflop_per_step": flops[gan]["tf_graph"]["all"] / 1e9,
            "tf_graph_conv_matmul_gflop_per_step": flops[gan]["tf_graph"]["conv_matmul"] / 1e9,
            "tf_graph_flops_by_op": flops[gan]["tf_graph"]["by_op"],
            "of_peak": {v: work / med[v] / 1e9 / peak for v in variants},
        }
    bars = {}
    for gan in BAR_GANS:
        if gan in rows:
            bars[f"{gan}: kgan <= 0.8x torch"] = rows[gan]["ratio"] <= 0.8
    if "dcgan" in rows:
        d = rows["dcgan"]
        bars["dcgan: kgan's path >= 80% of matmul peak"] = d["of_peak"][d["kgan_choice"]] >= 0.8
    return {
        "machine": {
            "platform": platform.platform(),
            "processor": device.cpu_model(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "settings": {
            "size": args.size,
            "batch": args.batch,
            "width": args.width or 64,
            "rounds": args.rounds,
            "steps_per_round": args.steps,
        },
        "workers": info,
        "peak_gflops": peaks,
        "peak_gflops_by_round": peak_rounds,
        "peak_used_gflops": peak,
        "gans": rows,
        "bars": bars,
    }


def markdown_against(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    cpu = f"{m['processor']}, {m['cpus']} cores"
    w = report["workers"]
    lines = [
        "kgan against the PyTorch reference (`scripts/torch_reference.py`), training step at "
        f"{s['size']}x{s['size']}, batch {s['batch']}, width {s['width']}; median of {s['rounds']} "
        f"interleaved rounds x {s['steps_per_round']} step(s). CPU: {cpu}; load average "
        f"{m['load_average_before'][0]:.1f} before, {m['load_average_after'][0]:.1f} after. "
        f"TensorFlow {w['onednn']['tensorflow']}, torch {w['torch']['torch']} "
        f"({w['torch']['threads']} threads, {w['torch']['cpu_capability']}). Float32 matmul peak, "
        "median of the rounds: "
        + ", ".join(f"{v:.0f} GFLOP/s ({k})" for k, v in report["peak_gflops"].items())
        + ".",
        "",
        "| GAN | GFLOP/step (torch / TF graph conv+matmul) | variant | step s | % of peak "
        "| / torch best |",
        "|---|---|---|---:|---:|---:|",
    ]
    for gan, r in report["gans"].items():
        flops = f"{r['gflop_per_step']:.0f} / {r['tf_graph_conv_matmul_gflop_per_step']:.0f}"
        for v, t in r["step_s"].items():
            label = (
                v
                + (" (kgan's choice)" if v == r["kgan_choice"] else "")
                + (" (torch best)" if v == r["torch_best"] else "")
            )
            ratio = f"{r['ratio_each'][v]:.2f}x" if v in r["ratio_each"] else "-"
            lines.append(
                f"| {gan} | {flops} | {label} | {t:.2f} | {100 * r['of_peak'][v]:.0f}% | {ratio} |"
            )
            flops = ""
    lines += ["", f"| bar ({cpu}) | value | met |", "|---|---:|---|"]
    for gan, r in report["gans"].items():
        if gan in BAR_GANS:
            lines.append(
                f"| {gan}: kgan <= 0.8x torch (goal 0.7x) | {r['ratio']:.2f}x | "
                f"{'yes' if r['ratio'] <= 0.8 else 'NO'} |"
            )
    if "dcgan" in report["gans"]:
        d = report["gans"]["dcgan"]
        share = d["of_peak"][d["kgan_choice"]]
        lines.append(
            f"| dcgan: kgan's path >= 80% of matmul peak | {100 * share:.0f}% | "
            f"{'yes' if share >= 0.8 else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def main(argv=None) -> int:
    args = parse(argv)
    if args.worker:
        worker(args)
        return 0
    if args.serve:
        serve(args)
        return 0
    if args.against:
        report = against_torch(args)
        stem = args.out or os.path.join("docs", f"bench_torch_{device.machine_slug()}")
        _write(stem + ".json", json.dumps(report, indent=2))
        _write(stem + ".md", markdown_against(report))
        print(markdown_against(report))
        return 0
    default = run_worker(args, None, extras=True)
    other = "0" if default.get("onednn") else "1"
    runs = {
        "default": default,
        f"onednn={other}": run_worker(args, other, extras=False, gans=args.other_gans),
    }
    report = summarise(args, runs)
    for path, text in (
        (args.json, json.dumps(report, indent=2)),
        (args.markdown, markdown(report)),
    ):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
