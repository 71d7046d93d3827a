"""Two-replica MirroredStrategy training equals one-device training on the same global batch.

Logical devices must be configured before TensorFlow initialises its runtime,
so the comparison runs in a fresh Python process that splits the CPU into two
logical devices, trains every GAN for two steps on one device and on two
replicas from the same initial weights and data, and reports the largest
differences.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from kgan import distribute
    from kgan.gans import build_gan

    GLOBAL_BATCH = 8
    # One strategy object for all runs: a second MirroredStrategy in the same process
    # reuses collective instance keys that the runtime already bound to other shapes.
    ONE = tf.distribute.OneDeviceStrategy("/cpu:0")
    TWO = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {}
    # "-xla": two replicas XLA-compiled per replica (BEGAN's whole replica computation, the
    # others' networks in segments between their batch norms), against the plain one device.
    for key in ("dcgan", "wgan", "wgan-gp", "began", "dcgan-xla", "wgan-gp-xla", "began-xla"):
        jit = key.endswith("-xla")
        name = key.removesuffix("-xla")
        params = {"n_critic": 2} if name.startswith("wgan") else {}
        if name == "began":
            params.update(lambda_k=0.05, k_initial=0.1)  # keep k_t off its bounds
        rng = np.random.default_rng(0)

        def train(strategy, jit=False):
            with strategy.scope():
                gan = build_gan(name, image_size=16, width=4, bottleneck=8, seed=3,
                                conditional=True, **params)
                # Large learning rates so that any replica mismatch shows up.
                make = (lambda: keras.optimizers.RMSprop(1e-3)) if name == "wgan" else (
                    lambda: keras.optimizers.Adam(1e-3, beta_1=0.5))
                gan.compile(d_optimizer=make(), g_optimizer=make(), jit_compile=jit)
            per_step = GLOBAL_BATCH * gan.real_batches_per_step
            data = np.random.default_rng(1)
            x = data.uniform(-1, 1, (2 * per_step, 16, 16, 1)).astype("float32")
            labels = {"modality": data.integers(0, 4, 2 * per_step).astype("int32"),
                      "tumour": data.integers(0, 2, 2 * per_step).astype("int32")}
            ds = tf.data.Dataset.from_tensor_slices((x, labels))
            ds = ds.batch(per_step, drop_remainder=True)
            history = gan.fit(ds, epochs=1, verbose=0).history
            return gan, {k: float(v[-1]) for k, v in history.items()}

        one, logs_one = train(ONE)
        two, logs_two = train(TWO, jit=jit)
        weights = [(a.path, a.numpy(), b.numpy()) for a, b in zip(one.weights, two.weights)]
        changed = max(float(np.max(np.abs(a - b))) for a, b in zip(
            [w.numpy() for w in one.generator.weights],
            [w.numpy() for w in build_gan(name, image_size=16, width=4, bottleneck=8, seed=3,
                                           conditional=True, **params).generator.weights]))
        report[key] = {
            "replicas": two.distribute_strategy.num_replicas_in_sync,
            "jit": [two.jit_compile, two.jit_per_replica],
            "segments": sorted(
                f"{network}/{'train' if training else 'infer'}:"
                + "".join("x" if kind == "xla" else "b" for kind, _ in segmented.steps)
                for (network, training), segmented in two._segmented.items()
            ),
            "max_weight_diff": max(
                float(np.max(np.abs(a.astype("float64") - b))) for _, a, b in weights
            ),
            "max_log_diff": max(abs(logs_one[k] - logs_two[k]) for k in logs_one),
            "same_paths": [p for p, _, _ in weights] == [w.path for w in two.weights],
            "generator_moved": changed,
            "logs": logs_one,
            "latent_seed": [one.latent_seed.numpy().tolist(), two.latent_seed.numpy().tolist()],
        }
        if name == "began":
            report[key]["k_t"] = [float(one.k_t.numpy()), float(two.k_t.numpy())]
        if name == "wgan":
            report[key]["max_abs_critic_weight"] = max(
                float(np.max(np.abs(v.numpy()))) for v in two.discriminator.trainable_variables)
        if name == "dcgan":  # the end-of-run check of multi-worker runs sees a drifted replica
            agree = distribute.workers_agree(TWO, two.weights)
            kernel = two.generator.trainable_variables[0]
            kernel.value.values[1].assign_add(tf.ones_like(kernel.value.values[1]) * 1e-6)
            report[key]["agree"] = [agree, distribute.workers_agree(TWO, two.weights)]
    print("REPORT " + json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def report():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("REPORT "))
    return json.loads(line[len("REPORT ") :])


_NAMES = ["dcgan", "wgan", "wgan-gp", "began", "dcgan-xla", "wgan-gp-xla", "began-xla"]


@pytest.mark.parametrize("name", _NAMES)
def test_two_replicas_equal_one_device(report, name):
    entry = report[name]
    assert entry["replicas"] == 2
    # XLA per replica: Keras's own (whole-step) XLA is off, each replica's gradients compiled.
    assert entry["jit"] == ([False, True] if name.endswith("-xla") else [False, False])
    assert entry["same_paths"]
    # Training really moved the weights (so equality is not trivial) ...
    assert entry["generator_moved"] > 1e-3
    # ... and both runs moved them identically, up to float32 summation order.
    assert entry["max_weight_diff"] < 1e-5, entry
    assert entry["max_log_diff"] < 1e-5, entry
    assert entry["latent_seed"][0] == entry["latent_seed"][1]


@pytest.mark.parametrize("name", ["began", "began-xla"])
def test_began_k_t_is_replica_exact(report, name):
    k_one, k_two = report[name]["k_t"]
    assert k_one != 0.1 and 0.0 < k_one < 1.0  # k moved and stayed inside its bounds
    assert k_two == pytest.approx(k_one, abs=1e-7)


def test_batch_norm_gans_compile_segments_between_their_batch_norms(report):
    # Conditional DCGAN at 16x16: the generator's projection and its one hidden up-block are
    # each followed by a batch norm, then the last up-block (x b x b x); the discriminator's
    # first conv has none, its second has one (x b x).
    assert report["dcgan-xla"]["segments"] == [
        "discriminator/train:xbx",
        "generator/train:xbxbx",
    ]
    # WGAN-GP's critic has layer norm, not batch norm: one compiled segment, differentiated twice.
    assert "discriminator/train:x" in report["wgan-gp-xla"]["segments"]
    assert report["began-xla"]["segments"] == []  # one compiled function per replica instead
    assert report["dcgan"]["segments"] == []  # no XLA, no segments


def test_replica_drift_is_detected(report):
    assert report["dcgan"]["agree"] == [True, False]


def test_wgan_clipping_under_strategy(report):
    assert report["wgan"]["max_abs_critic_weight"] <= 0.01 + 1e-9
