#!/usr/bin/env python
"""Training-step speed of kgan's GANs on a GPU, through Keras 3's JAX backend (XLA).

  python scripts/bench_train_jax.py              # 64x64, batch 64, the paper's networks
  python scripts/bench_train_jax.py --quick      # 32x32, batch 8, narrow: a sanity run anywhere

Why JAX: the GPU machines lent to this project have no TensorFlow and no network, and TensorFlow
with its CUDA libraries (about 2 GiB of wheels) cannot be carried to them (64 MiB a call). They
do have JAX. Keras 3 builds the very same `kgan.networks`, `kgan.optimizers` and `kgan.losses`
(written in keras.ops) on JAX, and `jax.jit` compiles through the same XLA GPU compiler that
`jit_compile=True` uses in TensorFlow. So the steps below arrange each GAN's `train_step` (same
networks, loss functions, optimisers, critic updates, clipping, penalty, k_t control) in JAX's
stateless style, where gradients come from `jax.grad` instead of a tape, and their speed stands
in for kgan's compiled TensorFlow step on that GPU. The "op by op" column runs the same Python
step without jit, one kernel per op: JAX's eager mode, which is slower to dispatch than
TensorFlow's graph executor, so it bounds the no-XLA step from below.

Per GAN and batch size: images/s of the compiled step (median over blocks of steps, dispatch
pipelined as in training), FLOPs of one step from XLA's cost analysis, achieved TFLOP/s against
the device's matmul peak (float32 at the default precision, i.e. TF32 on NVIDIA tensor cores,
which TensorFlow also uses by default; strict float32 and bfloat16 peaks for reference), and the
projected time of the paper's full WGAN run. Results go to JSON lines as they come (a cut-off run
keeps what it measured) and to a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from kgan.names import GANS  # noqa: E402 (after the path and the backend are set)

#: The paper's run: 100 epochs over the BraTS training slices (docs/training.md#benchmark).
PAPER_SLICES = 61_600
PAPER_EPOCHS = 100


def parse(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="32x32, batch 8, width 8, few steps")
    p.add_argument("--gans", nargs="+", default=list(GANS), choices=GANS)
    p.add_argument("--size", type=int, default=64)
    p.add_argument(
        "--batches",
        type=int,
        nargs="+",
        default=[64, 512],
        help="batch sizes of the compiled step (the first is also run op by op)",
    )
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="compiled steps per timed block")
    p.add_argument("--blocks", type=int, default=5, help="timed blocks (median)")
    p.add_argument("--eager-reps", type=int, default=3, help="timed op-by-op steps (median)")
    p.add_argument("--no-eager", action="store_true", help="skip the op-by-op step")
    p.add_argument(
        "--dtype-policy",
        default="float32",
        choices=["float32", "mixed_bfloat16"],
        help="Keras dtype policy of the networks (losses stay float32)",
    )
    p.add_argument("--out", default="docs/bench_train_jax")
    p.add_argument(
        "--render",
        metavar="JSONL",
        help="only write JSONL's Markdown table (next to it), with every step's "
        "FLOPs recounted on this host's CPU",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.batches, args.width, args.steps, args.blocks = 32, [8], 8, 3, 3
        args.eager_reps = 2
    return args


# --- the GANs' train steps, stateless ------------------------------------------------------------


def _networks(gan: str, size: int, width: int):
    from kgan import networks

    if gan == "began":
        return (
            networks.began_generator(size, 100, width),
            networks.began_discriminator(size, width, 64),
        )
    return (
        networks.dcgan_generator(size, 100, width),
        networks.dcgan_discriminator(size, width, norm=networks.DEFAULT_CRITIC_NORM[gan]),
    )


class StatelessGAN:
    """One GAN's networks, optimisers and train step as a pure function of (state, batch).

    The step mirrors `kgan.gans.<gan>.train_step`: DCGAN's non-saturating losses; WGAN's
    n_critic critic updates on fresh real batches, each followed by weight clipping; WGAN-GP's
    penalty on per-sample interpolates; BEGAN's L1 auto-encoder losses and k_t update.
    """

    def __init__(self, gan: str, size: int, width: int):
        from kgan import config as cfg
        from kgan import optimizers

        recipe = cfg.defaults(gan)
        self.gan, self.size = gan, size
        self.params = dict(recipe.gan_params)
        self.n_critic = int(self.params.get("n_critic", 1)) if gan.startswith("wgan") else 1
        self.generator, self.discriminator = _networks(gan, size, width)
        self.d_opt, self.g_opt = optimizers.from_recipe(recipe)
        self.g_opt.build(self.generator.trainable_variables)
        self.d_opt.build(self.discriminator.trainable_variables)

    def initial_state(self, seed: int = 0) -> dict:
        import jax
        import jax.numpy as jnp

        def values(variables):  # copies: the compiled step donates (frees) its input state
            return [jnp.array(v.value, copy=True) for v in variables]

        return {
            "g": (
                values(self.generator.trainable_variables),
                values(self.generator.non_trainable_variables),
            ),
            "d": (
                values(self.discriminator.trainable_variables),
                values(self.discriminator.non_trainable_variables),
            ),
            "g_opt": values(self.g_opt.variables),
            "d_opt": values(self.d_opt.variables),
            "key": jax.random.key(seed),
            "k": jnp.zeros([], jnp.float32),
            "d_loss": jnp.zeros([], jnp.float32),
            "g_loss": jnp.zeros([], jnp.float32),
        }

    # networks as functions of their variables; outputs in float32 under a mixed policy too
    def _g(self, g, z):
        out, ntv = self.generator.stateless_call(g[0], g[1], z, training=True)
        return out.astype("float32"), (g[0], ntv)

    def _d(self, d, x):
        out, ntv = self.discriminator.stateless_call(d[0], d[1], x, training=True)
        return out.astype("float32"), (d[0], ntv)

    def step(self, state: dict, real):
        import jax

        key, *keys = jax.random.split(state["key"], 2 * self.n_critic + 2)
        state = dict(state, key=key)
        batch = real.shape[0] // self.n_critic
        if self.gan == "began":
            return self._began(state, real, keys[0])
        for i in range(self.n_critic):
            state = self._critic_update(
                state, real[i :: self.n_critic], keys[2 * i], keys[2 * i + 1]
            )
        return self._generator_update(state, batch, keys[-1])

    def _critic_update(self, state, real, z_key, alpha_key):
        import jax
        import jax.numpy as jnp

        from kgan import losses

        z = jax.random.normal(z_key, [real.shape[0], 100])
        fake, g = self._g(state["g"], z)
        fake = jax.lax.stop_gradient(fake)

        def loss_fn(d_tv, d_ntv):
            d = (d_tv, d_ntv)
            real_out, d = self._d(d, real)
            fake_out, d = self._d(d, fake)
            if self.gan == "dcgan":
                loss = losses.dcgan_discriminator_loss(real_out, fake_out)
            else:
                loss = losses.wasserstein_critic_loss(real_out, fake_out)
            if self.gan == "wgan-gp":
                alpha = jax.random.uniform(alpha_key, [real.shape[0]])
                x_hat = losses.interpolate(real, fake, alpha)

                def critic_sum(x):
                    return jnp.sum(self._d(d, x)[0])

                penalty = losses.penalty_from_gradients(jax.grad(critic_sum)(x_hat))
                loss = loss + self.params["gp_weight"] * penalty
            return loss, d[1]

        (loss, d_ntv), grads = jax.value_and_grad(loss_fn, has_aux=True)(*state["d"])
        d_tv, d_opt = self.d_opt.stateless_apply(state["d_opt"], grads, state["d"][0])
        if self.gan == "wgan":
            c = self.params["clip_value"]
            d_tv = [jnp.clip(v, -c, c) for v in d_tv]
        return dict(state, g=g, d=(d_tv, d_ntv), d_opt=d_opt, d_loss=loss)

    def _generator_update(self, state, batch, z_key):
        import jax

        from kgan import losses

        z = jax.random.normal(z_key, [batch, 100])

        def loss_fn(g_tv, g_ntv):
            fake, g = self._g((g_tv, g_ntv), z)
            out, d = self._d(state["d"], fake)
            loss = (
                losses.dcgan_generator_loss(out)
                if self.gan == "dcgan"
                else losses.wasserstein_generator_loss(out)
            )
            return loss, (g[1], d[1])

        (loss, (g_ntv, d_ntv)), grads = jax.value_and_grad(loss_fn, has_aux=True)(*state["g"])
        g_tv, g_opt = self.g_opt.stateless_apply(state["g_opt"], grads, state["g"][0])
        return dict(state, g=(g_tv, g_ntv), d=(state["d"][0], d_ntv), g_opt=g_opt, g_loss=loss)

    def _began(self, state, real, z_key):
        import jax
        import jax.numpy as jnp

        from kgan import losses

        z = jax.random.normal(z_key, [real.shape[0], 100])
        k = state["k"]

        def both_losses(g_tv, d_tv):
            fake, g = self._g((g_tv, state["g"][1]), z)
            rec_real, d = self._d((d_tv, state["d"][1]), real)
            rec_fake, d = self._d(d, fake)
            loss_real = losses.began_autoencoder_loss(real, rec_real)
            loss_fake = losses.began_autoencoder_loss(fake, rec_fake)
            return (
                (
                    losses.began_discriminator_loss(loss_real, loss_fake, k),
                    losses.began_generator_loss(loss_fake),
                ),
                (loss_real, loss_fake),
            )

        # One forward pass, two backward passes (d_loss for D, g_loss for G), as the two tapes
        # of kgan's BEGAN step; XLA drops the cotangents nobody uses.
        (d_loss, g_loss), pullback, (loss_real, loss_fake) = jax.vjp(
            both_losses, state["g"][0], state["d"][0], has_aux=True
        )
        one, zero = jnp.ones_like(d_loss), jnp.zeros_like(d_loss)
        _, d_grads = pullback((one, zero))
        g_grads, _ = pullback((zero, one))
        d_tv, d_opt = self.d_opt.stateless_apply(state["d_opt"], d_grads, state["d"][0])
        g_tv, g_opt = self.g_opt.stateless_apply(state["g_opt"], g_grads, state["g"][0])
        gamma, lambda_k = self.params["gamma"], self.params["lambda_k"]
        new_k = losses.began_k_update(k, loss_real, loss_fake, gamma=gamma, lambda_k=lambda_k)
        return dict(
            state,
            g=(g_tv, state["g"][1]),
            d=(d_tv, state["d"][1]),
            g_opt=g_opt,
            d_opt=d_opt,
            k=new_k,
            d_loss=d_loss,
            g_loss=g_loss,
        )


# --- measurements ------------------------------------------------------------------------------


def _ready(state):
    import jax

    jax.block_until_ready(state["g_loss"])


def matmul_peaks(n: int, reps: int = 10) -> dict:
    """TFLOP/s of an n x n x n matmul: float32 default (TF32 on tensor cores), strict, bfloat16."""
    import jax
    import jax.numpy as jnp

    out = {}
    ka, kb = jax.random.split(jax.random.key(1))
    for name, dtype, precision in (
        ("float32_default", jnp.float32, None),
        ("float32_highest", jnp.float32, "highest"),
        ("bfloat16", jnp.bfloat16, None),
    ):
        a = jax.random.normal(ka, [n, n], dtype)
        b = jax.random.normal(kb, [n, n], dtype)
        f = jax.jit(lambda x, y, p=precision: jnp.matmul(x, y, precision=p))
        f(a, b).block_until_ready()
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            f(a, b).block_until_ready()
            times.append(time.perf_counter() - t)
        out[name] = 2 * n**3 / statistics.median(times) / 1e12
    return out


def _flops(lowered) -> float | None:
    """FLOPs of one step from XLA's cost analysis of the step's HLO before optimisation.

    Not the compiled module's: on a GPU XLA hands convolutions to cuDNN as custom calls, which
    its cost analysis does not count (it reported 1 GFLOP for a 135 GFLOP DCGAN step).
    """
    try:
        cost = lowered.cost_analysis()
    except Exception:  # not every backend reports costs
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    value = (cost or {}).get("flops")
    return float(value) if value else None


def cpu_step_flops(gan: str, size: int, width: int, batch: int) -> float | None:
    """FLOPs of one step counted on the host CPU backend, for devices whose XLA reports none.

    The step's HLO before optimisation does not depend on the platform, so any backend that
    implements the cost analysis (the CPU one does) counts the same operations.
    """
    import jax

    cpu = jax.devices("cpu")[0]
    model = StatelessGAN(gan, size, width)
    state = jax.device_put(model.initial_state(), cpu)
    real = jax.device_put(jax.numpy.zeros([batch * model.n_critic, size, size, 1]), cpu)
    return _flops(jax.jit(model.step).lower(state, real))


def _real_batch(model: StatelessGAN, batch: int):
    """The images one step reads (n_critic batches for the WGANs), uniform in [-1, 1]."""
    import jax

    return jax.random.uniform(
        jax.random.key(2),
        [batch * model.n_critic, model.size, model.size, 1],
        minval=-1.0,
        maxval=1.0,
    )


def time_compiled(model: StatelessGAN, batch: int, args) -> dict:
    import jax

    real = _real_batch(model, batch)
    state = model.initial_state()
    t = time.perf_counter()
    lowered = jax.jit(model.step, donate_argnums=0).lower(state, real)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t
    flops = _flops(lowered) or cpu_step_flops(model.gan, model.size, args.width, batch)
    state = compiled(state, real)
    _ready(state)
    per_step = []
    for _ in range(args.blocks):
        t = time.perf_counter()
        for _ in range(args.steps):
            state = compiled(state, real)
        _ready(state)
        per_step.append((time.perf_counter() - t) / args.steps)
    seconds = statistics.median(per_step)
    return {
        "batch": batch,
        "seconds": seconds,
        "per_step": per_step,
        "compile_s": compile_s,
        "images_per_step": batch * model.n_critic,
        "images_per_s": batch * model.n_critic / seconds,
        "flops": flops,
        "finite": bool(jax.numpy.isfinite(state["g_loss"])),
    }


def time_eager(model: StatelessGAN, batch: int, args) -> dict:
    real = _real_batch(model, batch)
    state = model.initial_state()
    t = time.perf_counter()
    state = model.step(state, real)  # first call compiles every op once
    _ready(state)
    first = time.perf_counter() - t
    times = []
    for _ in range(args.eager_reps):
        t = time.perf_counter()
        state = model.step(state, real)
        _ready(state)
        times.append(time.perf_counter() - t)
    seconds = statistics.median(times)
    return {
        "batch": batch,
        "seconds": seconds,
        "times": times,
        "first_call_s": first,
        "images_per_s": batch * model.n_critic / seconds,
    }


def _emit(path: str, record: dict) -> None:
    print(json.dumps(record), flush=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def markdown(records: list[dict]) -> str:
    env = next(r for r in records if r["kind"] == "env")
    peaks = next((r for r in records if r["kind"] == "peak"), {}).get("tflops", {})
    policy = env.get("dtype_policy", "float32")
    peak_name = "bfloat16" if policy == "mixed_bfloat16" else "float32_default"
    ref = peaks.get(peak_name)
    lines = [
        f"Device: {env['device']} (JAX {env['jax']}, Keras {env['keras']}, backend "
        f"{env['platform']}). Images {env['size']}x{env['size']}, width {env['width']}, "
        f"dtype policy {policy}.",
        "",
        "Matmul peak, TFLOP/s: " + ", ".join(f"{k} {v:.1f}" for k, v in peaks.items()),
        "",
        f"| GAN | batch | compiled img/s | step ms | GFLOP/step | TFLOP/s (% of {peak_name} peak) "
        "| op-by-op img/s | compiled / op-by-op | compile s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    eager = {(r["gan"], r["batch"]): r for r in records if r["kind"] == "eager"}
    for r in (r for r in records if r["kind"] == "compiled"):
        cells = [
            r["gan"],
            str(r["batch"]),
            f"{r['images_per_s']:,.0f}",
            f"{1e3 * r['seconds']:.2f}",
        ]
        if r["flops"]:
            tflops = r["flops"] / r["seconds"] / 1e12
            share = f" ({100 * tflops / ref:.0f}%)" if ref else ""
            cells += [f"{r['flops'] / 1e9:,.1f}", f"{tflops:.2f}{share}"]
        else:
            cells += ["-", "-"]
        e = eager.get((r["gan"], r["batch"]))
        if e:
            cells += [f"{e['images_per_s']:,.0f}", f"{r['images_per_s'] / e['images_per_s']:.1f}x"]
        else:
            cells += ["-", "-"]
        cells.append(f"{r['compile_s']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    for r in (r for r in records if r["kind"] == "projection"):
        lines += [
            "",
            f"Paper's full WGAN run ({r['steps']:,} steps of {r['images_per_step']} real "
            f"slices at batch {r['batch']}): {r['minutes']:.1f} min projected from the "
            f"compiled step.",
        ]
    return "\n".join(lines) + "\n"


def render(jsonl: str) -> int:
    """Writes the Markdown table of a finished run, with FLOPs counted on this host's CPU.

    Every step is recounted (not only those the device left out): runs made before the
    pre-optimisation count hold the GPU-compiled module's figure, which misses cuDNN's work.
    """
    import keras

    with open(jsonl) as f:
        records = [json.loads(line) for line in f if line.strip()]
    env = next(r for r in records if r["kind"] == "env")
    keras.config.set_dtype_policy(env.get("dtype_policy", "float32"))
    for r in records:
        if r["kind"] == "compiled":
            r["device_reported_flops"] = r.get("flops")
            r["flops"] = cpu_step_flops(r["gan"], env["size"], env["width"], r["batch"])
            r["flops_counted_on"] = "host cpu"
    out = os.path.splitext(jsonl)[0] + ".md"
    with open(out, "w") as f:
        f.write(markdown(records))
    print(markdown(records))
    return 0


def main(argv=None) -> int:
    args = parse(argv)
    import jax
    import keras

    if args.render:
        return render(args.render)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    jsonl = args.out + ".jsonl"
    if os.path.exists(jsonl):
        os.remove(jsonl)
    records = []

    def emit(record):
        records.append(record)
        _emit(jsonl, record)

    keras.config.set_dtype_policy(args.dtype_policy)
    device = jax.devices()[0]
    emit(
        {
            "kind": "env",
            "dtype_policy": args.dtype_policy,
            "device": getattr(device, "device_kind", str(device)),
            "platform": device.platform,
            "jax": jax.__version__,
            "keras": keras.__version__,
            "host": platform.node(),
            "size": args.size,
            "width": args.width,
        }
    )
    emit({"kind": "peak", "tflops": matmul_peaks(1024 if args.quick else 8192)})
    for gan in args.gans:
        model = StatelessGAN(gan, args.size, args.width)
        for batch in args.batches:
            emit({"kind": "compiled", "gan": gan, **time_compiled(model, batch, args)})
        if not args.no_eager:
            emit({"kind": "eager", "gan": gan, **time_eager(model, args.batches[0], args)})
    wgan = next(
        (r for r in records if r["kind"] == "compiled" and r["gan"] == "wgan" and r["batch"] == 64),
        None,
    )
    if wgan and (args.size, args.width) == (64, 64):  # the paper's shapes only
        steps = PAPER_EPOCHS * (PAPER_SLICES // wgan["images_per_step"])
        emit(
            {
                "kind": "projection",
                "batch": 64,
                "steps": steps,
                "images_per_step": wgan["images_per_step"],
                "minutes": steps * wgan["seconds"] / 60,
            }
        )
    text = markdown(records)
    with open(args.out + ".md", "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
