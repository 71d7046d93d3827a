#!/usr/bin/env python
"""Where a GAN's training step spends its time on kgan's chosen path: TensorFlow ops by type.

  python scripts/profile_step.py --gans dcgan began   # docs/profile_<cpu>.{json,md}

Each GAN is built at the paper's size (64x64, batch 64, width 64 unless told), compiled on the
path `kgan.device.resolve_jit_compile("auto")` picks for this machine, run two steps untimed,
then traced with `tf.profiler` for `--steps` steps. The trace's executor ops are summed by type
(oneDNN's kernel names folded onto TensorFlow's: `_MklNativeFusedConv2D` is a `Conv2D`), and
each type's FLOPs - counted on the step graph by TensorFlow's profiler, the counter
`scripts/bench_train.py` uses - over its time give its rate, beside the float32 matmul peak
measured in the same process just before. Op times are summed over the executor's threads, so
two ops that ran side by side both count in full: the rate is per op, and the shares say where
the time goes.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))


def parse(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--gans", nargs="+", default=["dcgan", "began"])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--steps", type=int, default=2, help="profiled steps per GAN")
    p.add_argument("--out", default="", help="path stem (default docs/profile_<cpu>)")
    return p.parse_args(argv)


def op_type(name: str) -> str:
    """TensorFlow's op type of a traced kernel: `_MklNativeConv2DBackpropFilterWithBias` ->
    `Conv2DBackpropFilter`."""
    kind = name.rsplit(":", 1)[-1]
    kind = re.sub(r"^_Mkl(Native)?", "", kind)
    kind = re.sub(r"^Fused", "", kind)
    return re.sub(r"WithBias$", "", kind)


def trace_op_times(logdir: str) -> tuple[dict, dict]:
    """{op type: summed picoseconds} and {op type: kernel count} of the executor threads."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    times, counts = collections.Counter(), collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name:  # executor bookkeeping, not an op
                    continue
                times[op_type(name)] += event.duration_ps
                counts[op_type(name)] += 1
    return times, counts


def profile(gan: str, args, peak: float) -> dict:
    import bench_train as bench
    import tensorflow as tf

    from kgan import device

    jit, why = device.resolve_jit_compile(
        "auto", gpus=len(tf.config.list_logical_devices("GPU")), onednn=device.onednn_enabled()
    )
    model = bench._model(gan, args, jit=jit)
    _, ds = bench._batch(model, args)
    iterator = iter(ds)
    model.make_train_function()
    for _ in range(2):
        bench._sync(model.train_function(iterator))
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        walls = []
        for _ in range(args.steps):
            t = time.perf_counter()
            bench._sync(model.train_function(iterator))
            walls.append(time.perf_counter() - t)
        tf.profiler.experimental.stop()
        times, counts = trace_op_times(logdir)
    flops = bench._graph_flops(gan, args)["by_op"]
    total = sum(times.values())
    rows = {}
    for kind, ps in times.most_common():
        seconds = ps / 1e12 / args.steps
        gflop = flops.get(kind, 0.0) / 1e9
        rows[kind] = {
            "seconds_per_step": seconds,
            "share": ps / total,
            "kernels_per_step": counts[kind] / args.steps,
            "gflop_per_step": gflop,
            "gflops": gflop / seconds if gflop and seconds else None,
            "of_peak": gflop / seconds / peak if gflop and seconds else None,
        }
    return {
        "jit_compile": jit,
        "jit_reason": why,
        "step_s": statistics.median(walls),
        "walls": walls,
        "op_seconds_per_step": total / 1e12 / args.steps,
        "ops": rows,
    }


def markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    lines = [
        f"Training-step profile (`scripts/profile_step.py`) at {s['size']}x{s['size']}, batch "
        f"{s['batch']}, width {s['width']}, {s['steps']} traced step(s) on kgan's chosen "
        f"path (oneDNN {'on' if s['onednn'] else 'off'}). CPU: {m['processor']}, {m['cpus']} "
        f"cores; load average {m['load_average_before'][0]:.1f} before, "
        f"{m['load_average_after'][0]:.1f} after. Float32 matmul peak measured just before: "
        f"{report['peak_gflops']:.0f} GFLOP/s. Op time is summed over the executor's threads "
        f"(ops that ran side by side both count), so the rate is per op.",
        "",
    ]
    for gan, r in report["gans"].items():
        lines += [
            f"**{gan}**: step {r['step_s']:.2f} s wall, {r['op_seconds_per_step']:.2f} s of "
            f"op time ({'XLA' if r['jit_compile'] else 'no XLA'}: {r['jit_reason']}).",
            "",
            "| op type | s/step | share | kernels/step | GFLOP/step | GFLOP/s | % of peak |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for kind, o in r["ops"].items():
            if o["share"] < 0.002:
                continue
            rate = f"{o['gflops']:.0f}" if o["gflops"] else "-"
            share = f"{100 * o['of_peak']:.0f}%" if o["of_peak"] else "-"
            gflop = f"{o['gflop_per_step']:.1f}" if o["gflop_per_step"] else "-"
            lines.append(
                f"| {kind} | {o['seconds_per_step']:.3f} | {100 * o['share']:.1f}% | "
                f"{o['kernels_per_step']:.0f} | {gflop} | {rate} | {share} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse(argv)
    import bench_train as bench

    from kgan import atomic, device

    before = os.getloadavg()
    peak = bench.matmul_peak(4096, 3)
    gans = {g: profile(g, args, peak) for g in args.gans}
    report = {
        "machine": {
            "processor": device.cpu_model(),
            "cpus": os.cpu_count(),
            "load_average_before": before,
            "load_average_after": os.getloadavg(),
        },
        "settings": {
            "size": args.size,
            "batch": args.batch,
            "width": args.width,
            "steps": args.steps,
            "onednn": device.onednn_enabled(),
        },
        "peak_gflops": peak,
        "gans": gans,
    }
    slug = device.machine_slug()
    stem = args.out or os.path.join(ROOT, "docs", f"profile_{slug}")
    atomic.write_text(stem + ".json", json.dumps(report, indent=2))
    atomic.write_text(stem + ".md", markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
