#!/usr/bin/env python
"""kgan's training step on its faster kernels against Keras's own, interleaved in one process.

  python scripts/bench_kernels.py --gans dcgan wgan --rounds 12

`kgan.kernels` swaps how some layers compute (fused batch norm, sub-pixel single-channel
convolutions) without changing the maths. This times both on kgan's chosen path at the paper's
size (64x64, batch 64, width 64): each GAN is built twice, once with `kgan.kernels.enabled` off,
and the two steps alternate, one step each per round, so that a loaded machine weighs on both
alike. Printed per GAN: median wall and process-CPU seconds per step, and the median of the
per-round ratios (fast / Keras), with the load average. A relative measurement: for speed
against the PyTorch peer use `scripts/bench_train.py --against torch` on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

VARIANTS = ("keras", "kgan")


def parse(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--gans", nargs="+", default=["dcgan", "wgan"])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--rounds", type=int, default=12)
    return p.parse_args(argv)


def _step(gan: str, args, fast: bool):
    import bench_train as bench
    import tensorflow as tf

    from kgan import device, kernels

    jit, _ = device.resolve_jit_compile(
        "auto", gpus=len(tf.config.list_logical_devices("GPU")), onednn=device.onednn_enabled()
    )
    kernels.enabled = fast
    model = bench._model(gan, args, jit=jit)
    _, ds = bench._batch(model, args)
    iterator = iter(ds)
    model.make_train_function()

    def step():
        bench._sync(model.train_function(iterator))

    step()
    step()
    return step


def main(argv=None) -> int:
    args = parse(argv)
    for gan in args.gans:
        steps = {v: _step(gan, args, fast=v == "kgan") for v in VARIANTS}
        wall = {v: [] for v in VARIANTS}
        cpu = {v: [] for v in VARIANTS}
        load = os.getloadavg()[0]
        for r in range(args.rounds):
            for v in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
                w, c = time.perf_counter(), time.process_time()
                steps[v]()
                wall[v].append(time.perf_counter() - w)
                cpu[v].append(time.process_time() - c)
        print(f"{gan}: load average {load:.1f} -> {os.getloadavg()[0]:.1f}, {args.rounds} rounds")
        for name, t in (("wall", wall), ("cpu", cpu)):
            ratio = statistics.median(a / b for a, b in zip(t["kgan"], t["keras"]))
            print(
                f"  {name:4s} s/step: Keras kernels {statistics.median(t['keras']):.3f}, "
                f"kgan kernels {statistics.median(t['kgan']):.3f}; per-round ratio {ratio:.3f}"
            )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
