"""The GAN models: compiled (XLA) steps, clipping, k_t, gradient penalty, conditioning, resume."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from kgan import names, optimizers
from kgan.gans import BEGAN, GANS, WGAN, WGANGP, build_gan

REPO_ROOT = Path(__file__).resolve().parents[1]


def toy_batches(count, batch, size=16, seed=0):
    """Batches of (images, labels) shaped like kgan.pipeline.load_slices output."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        images = rng.uniform(-1, 1, (batch, size, size, 1)).astype("float32")
        labels = {
            "modality": rng.integers(0, 4, batch).astype("int32"),
            "tumour": rng.integers(0, 2, batch).astype("int32"),
        }
        out.append((images, labels))
    return out


# ------------------------------------------------------------------ XLA steps

_COMPILED_STEPS = textwrap.dedent(
    """
    import glob, json, os, re, sys
    import numpy as np, tensorflow as tf
    from kgan.gans import build_gan

    dump = os.environ["KGAN_XLA_DUMP"]
    def compiled_steps():
        names = set()
        for path in glob.glob(os.path.join(dump, "*")):
            m = re.search(r"one_step_on_data_(\\d+)", os.path.basename(path))
            if m:
                names.add(m.group(1))
        return names

    rng = np.random.default_rng(0)
    report = {}
    # n_critic is cut to keep XLA's CPU compile time down: the critic loop is
    # unrolled, so 5 updates compile the same ops 5 times.
    runs = [("dcgan", True, {}), ("dcgan", False, {}), ("wgan", True, {"n_critic": 2}),
            ("wgan-gp", True, {"n_critic": 1}), ("began", True, {})]
    for name, jit, params in runs:
        gan = build_gan(name, image_size=32, width=4, bottleneck=8, seed=1,
                        conditional=(name == "dcgan"), **params)
        gan.compile(jit_compile=jit)
        per_step = 4 * gan.real_batches_per_step
        x = rng.uniform(-1, 1, (3 * per_step, 32, 32, 1)).astype("float32")
        labels = {"modality": rng.integers(0, 4, 3 * per_step).astype("int32"),
                  "tumour": rng.integers(0, 2, 3 * per_step).astype("int32")}
        ds = tf.data.Dataset.from_tensor_slices((x, labels)).batch(per_step, drop_remainder=True)
        before = compiled_steps()
        history = gan.fit(ds, epochs=1, verbose=0).history
        entry = {
            "metrics": {k: float(v[-1]) for k, v in history.items()},
            "new_xla_modules": len(compiled_steps() - before),
            "latent_seed": gan.latent_seed.numpy().tolist(),
        }
        if name == "wgan":
            entry["max_abs_critic_weight"] = max(
                float(np.max(np.abs(v.numpy()))) for v in gan.discriminator.trainable_variables)
            entry["generator_updates"] = int(gan.generator_updates.numpy())
        report[f"{name}-{'xla' if jit else 'plain'}"] = entry
    print("REPORT " + json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def compiled_report(tmp_path_factory):
    """Runs a few steps of every GAN in a fresh process with XLA's module dump switched on.

    XLA writes a module to --xla_dump_to for every computation it compiles, so a
    new module named after Keras' train function proves the step ran through XLA
    (and the plain run proves the check can fail).
    """
    dump = tmp_path_factory.mktemp("xla_dump")
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KGAN_XLA_DUMP": str(dump),
        "XLA_FLAGS": f"--xla_dump_to={dump} --xla_dump_hlo_module_re=.*one_step_on_data.*",
        "PYTHONPATH": str(REPO_ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-c", _COMPILED_STEPS],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("REPORT "))
    return json.loads(line[len("REPORT ") :])


CONTRACT_METRICS = {
    "dcgan": {"d_loss", "g_loss", "d_real", "d_fake"},
    "wgan": {"d_loss", "g_loss", "d_real", "d_fake", "wasserstein"},
    "wgan-gp": {"d_loss", "g_loss", "d_real", "d_fake", "wasserstein", "gradient_penalty"},
    "began": {"d_loss", "g_loss", "d_real", "d_fake", "k_t", "convergence"},
}


@pytest.mark.parametrize("name", ["dcgan", "wgan", "wgan-gp", "began"])
def test_compiled_steps_run_through_xla(compiled_report, name):
    entry = compiled_report[f"{name}-xla"]
    assert entry["new_xla_modules"] >= 1, "train step was not compiled by XLA"
    assert set(entry["metrics"]) == CONTRACT_METRICS[name]
    assert all(np.isfinite(v) for v in entry["metrics"].values()), entry["metrics"]
    assert entry["latent_seed"][0] == 1 and entry["latent_seed"][1] > 0


def test_plain_steps_do_not_use_xla(compiled_report):
    assert compiled_report["dcgan-plain"]["new_xla_modules"] == 0


def test_compiled_wgan_clips_and_counts(compiled_report):
    entry = compiled_report["wgan-xla"]
    assert entry["max_abs_critic_weight"] <= 0.01 + 1e-9
    assert entry["generator_updates"] == 3
    # 2 critic updates + 1 generator update per step, one seed draw each, 3 steps.
    assert entry["latent_seed"][1] == 3 * 3


# --------------------------------------------------------------------- WGAN


def test_every_critic_update_is_clipped(monkeypatch):
    gan = build_gan("wgan", image_size=16, width=4, n_critic=3, clip_value=0.01, seed=2)
    gan.compile(
        d_optimizer=keras.optimizers.RMSprop(0.05),
        g_optimizer=keras.optimizers.RMSprop(0.05),
        run_eagerly=True,
    )
    seen = []
    original = WGAN.clip_critic

    def checked(self):
        unclipped = max(
            float(np.max(np.abs(v.numpy()))) for v in self.discriminator.trainable_variables
        )
        original(self)
        clipped = [np.abs(v.numpy()) for v in self.discriminator.trainable_variables]
        seen.append(
            (
                unclipped,
                max(float(c.max()) for c in clipped),
                float(np.mean(np.concatenate([c.ravel() for c in clipped]) >= 0.01 - 1e-7)),
            )
        )

    monkeypatch.setattr(WGAN, "clip_critic", checked)
    for images, _ in toy_batches(2, 12):
        gan.train_on_batch(images)
    assert len(seen) == 2 * 3  # after every critic update, not once per step
    for unclipped, clipped, at_bound in seen:
        assert unclipped > 0.01  # the update pushed weights past c ...
        assert clipped <= 0.01 + 1e-9  # ... and clipping brought every one back
        assert at_bound > 0.3
    # Batch-norm moving statistics are not parameters: they are left alone.
    moving = [v for v in gan.discriminator.non_trainable_variables if "moving_variance" in v.path]
    assert moving and max(float(np.max(v.numpy())) for v in moving) > 0.01


def test_reference_schedule_skips_generator_updates():
    # Warm-up of 4 critic updates for the first 2 generator updates and every 3rd, n_critic 2:
    # steps 1..7 update G after steps 2, 4, 5, 7 (then g = 3 is a multiple of 3 -> warm-up).
    gan = build_gan(
        "wgan",
        image_size=16,
        width=4,
        n_critic=2,
        seed=3,
        reference_schedule=True,
        warmup_generator_updates=2,
        warmup_critic_updates=4,
        warmup_every=3,
    )
    gan.compile(jit_compile=False)
    updates, g_changed = [], []
    for images, _ in toy_batches(7, 8):
        before = [v.numpy().copy() for v in gan.generator.trainable_variables]
        gan.train_on_batch(images)
        updates.append(int(gan.generator_updates.numpy()))
        after = gan.generator.trainable_variables
        g_changed.append(any(not np.array_equal(b, a.numpy()) for b, a in zip(before, after)))
    assert updates == [0, 1, 1, 2, 3, 3, 4]
    assert g_changed == [False, True, False, True, True, False, True]


def test_wgan_rejects_batches_not_divisible_by_n_critic():
    gan = build_gan("wgan", image_size=16, width=4, n_critic=5)
    gan.compile(jit_compile=False)
    with pytest.raises(ValueError, match="n_critic"):
        gan.train_on_batch(toy_batches(1, 8)[0][0])


# ------------------------------------------------------------------- WGAN-GP


def test_gradient_penalty_of_a_linear_critic():
    """f(x) = 0.5 * sum(x) on 4x4 images: grad = 0.5 everywhere, norm 0.5 * 4 = 2, penalty 1."""
    critic = keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(0.5)),
        ]
    )
    generator = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(16), keras.layers.Reshape((4, 4, 1))]
    )
    gan = WGANGP(generator, critic, latent_dim=3, gp_weight=10.0)
    real = tf.random.stateless_uniform([5, 4, 4, 1], seed=[0, 1], minval=-1, maxval=1)
    fake = tf.random.stateless_uniform([5, 4, 4, 1], seed=[0, 2], minval=-1, maxval=1)
    loss, logged = gan.critic_loss(real, fake, None)
    assert float(logged["gradient_penalty"]) == pytest.approx(1.0, rel=1e-6)
    wasserstein = 0.5 * (float(tf.reduce_sum(real)) - float(tf.reduce_sum(fake))) / 5
    assert float(logged["wasserstein"]) == pytest.approx(wasserstein, rel=1e-5)
    assert float(loss) == pytest.approx(-wasserstein + 10.0, rel=1e-5)


def test_wgan_gp_critic_has_no_batch_norm_and_no_clipping():
    gan = build_gan("wgan-gp", image_size=16, width=4)
    assert gan.clip_value is None
    assert not any(
        isinstance(layer, keras.layers.BatchNormalization) for layer in gan.discriminator.layers
    )


# --------------------------------------------------------------------- BEGAN


def test_began_k_t_update_and_clipping():
    gan = build_gan(
        "began",
        image_size=16,
        width=4,
        bottleneck=8,
        seed=4,
        k_initial=0.5,
        gamma=0.5,
        lambda_k=0.1,
    )
    gan.compile(jit_compile=False)
    assert gan.k_t.aggregation == "mean" and not gan.k_t.trainable
    assert any(w is gan.k_t for w in gan.non_trainable_weights)
    images = toy_batches(1, 4)[0][0]
    logs = gan.train_on_batch(images, return_dict=True)
    expected = 0.5 + 0.1 * (0.5 * logs["d_real"] - logs["d_fake"])
    assert float(gan.k_t.numpy()) == pytest.approx(expected, abs=1e-6)
    assert logs["k_t"] == pytest.approx(expected, abs=1e-6)
    assert logs["convergence"] == pytest.approx(
        logs["d_real"] + abs(0.5 * logs["d_real"] - logs["d_fake"]), abs=1e-6
    )
    # A huge gain saturates k at a bound; the sign of gamma L(x) - L(G(z)) picks which.
    # (lambda_k is baked into the traced step, so the new value needs a new trace.)
    gan.lambda_k = 1000.0
    gan.make_train_function(force=True)
    logs = gan.train_on_batch(images, return_dict=True)
    bound = 1.0 if 0.5 * logs["d_real"] - logs["d_fake"] > 0 else 0.0
    assert float(gan.k_t.numpy()) == bound


# ------------------------------------------------------------ conditioning


def test_conditional_samples_follow_their_label():
    """On toy slices whose brightness is set by the modality, G(z | m) learns the brightness."""
    rng = np.random.default_rng(0)
    n = 512
    modality = rng.integers(0, 4, n).astype("int32")
    tumour = rng.integers(0, 2, n).astype("int32")
    levels = np.array([-0.75, -0.25, 0.25, 0.75], "float32")
    images = levels[modality][:, None, None, None] + 0.05 * rng.standard_normal((n, 16, 16, 1))
    ds = (
        tf.data.Dataset.from_tensor_slices(
            (images.clip(-1, 1).astype("float32"), {"modality": modality, "tumour": tumour})
        )
        .shuffle(n, seed=0)
        .repeat()
        .batch(16, drop_remainder=True)
    )
    gan = build_gan("dcgan", image_size=16, width=8, conditional=True, seed=0)
    gan.compile(
        d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
        jit_compile=False,
    )
    gan.fit(ds, steps_per_epoch=150, epochs=1, verbose=0)
    z = tf.random.stateless_normal([32, gan.latent_dim], seed=[1, 1 << 20])
    means = []
    for m in range(4):
        out = gan.generator([z, tf.fill([32], m), tf.zeros([32], tf.int32)], training=False)
        means.append(float(tf.reduce_mean(out)))
    assert np.all(np.diff(means) > 0.2), means
    np.testing.assert_allclose(means, levels, atol=0.25)


def test_conditional_gan_needs_labels():
    gan = build_gan("dcgan", image_size=16, width=4, conditional=True)
    gan.compile(jit_compile=False)
    with pytest.raises(ValueError, match="modality"):
        gan.train_on_batch(toy_batches(1, 4)[0][0])


# ------------------------------------------------------------ weights, resume


def test_save_load_weights_keeps_k_t_seed_counters_and_optimizers(tmp_path):
    for name, params in (
        ("began", {"lambda_k": 0.5, "gamma": 1.0}),
        ("wgan", {"n_critic": 2, "reference_schedule": True}),
    ):
        gan = build_gan(name, image_size=16, width=4, bottleneck=8, seed=5, **params)
        gan.compile(jit_compile=False)
        for images, _ in toy_batches(3, 4 * gan.real_batches_per_step):
            gan.train_on_batch(images)
        path = tmp_path / f"{name}.weights.h5"
        gan.save_weights(path)
        fresh = build_gan(name, image_size=16, width=4, bottleneck=8, seed=5, **params)
        fresh.compile(jit_compile=False)
        fresh.load_weights(path)
        assert fresh.latent_seed.numpy().tolist() == gan.latent_seed.numpy().tolist() != [5, 0]
        if name == "began":
            assert float(fresh.k_t.numpy()) == float(gan.k_t.numpy()) > 0
        else:
            assert (
                int(fresh.pending_critic_updates.numpy())
                == 6
                == int(gan.pending_critic_updates.numpy())
            )
        assert (
            int(fresh.d_optimizer.iterations.numpy()) == int(gan.d_optimizer.iterations.numpy()) > 0
        )
        for a, b in zip(gan.d_optimizer.variables, fresh.d_optimizer.variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        for a, b in zip(gan.weights, fresh.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_resume_from_saved_weights_is_exact(tmp_path):
    batches = toy_batches(4, 4, seed=9)

    def new():
        gan = build_gan("began", image_size=16, width=4, bottleneck=8, seed=6, lambda_k=0.05)
        gan.compile(jit_compile=False)
        return gan

    straight = new()
    for images, _ in batches[:2]:
        straight.train_on_batch(images)
    straight.save_weights(tmp_path / "mid.weights.h5")
    for images, _ in batches[2:]:
        straight.train_on_batch(images)

    resumed = new()
    resumed.load_weights(tmp_path / "mid.weights.h5")
    for images, _ in batches[2:]:
        resumed.train_on_batch(images)
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, rtol=0)

    # Without the restored seed state the resumed run draws other z and drifts apart.
    forgetful = new()
    forgetful.load_weights(tmp_path / "mid.weights.h5")
    forgetful.latent_seed.assign([6, 0])
    for images, _ in batches[2:]:
        forgetful.train_on_batch(images)
    assert not np.allclose(
        straight.generator.get_weights()[0], forgetful.generator.get_weights()[0]
    )


# ------------------------------------------------------------------ build_gan


def test_every_named_gan_has_a_class():
    assert tuple(GANS) == names.GANS
    assert all(GANS[name].gan_name == name for name in names.GANS)


def test_build_gan_names_and_errors():
    assert isinstance(build_gan("WGAN_GP", image_size=16, width=4), WGANGP)
    assert isinstance(build_gan("began", image_size=16, width=4), BEGAN)
    gan = build_gan("wgan", image_size=16, width=4)
    assert gan.real_batches_per_step == 5 and gan.clip_value == 0.01
    with pytest.raises(ValueError, match="unknown GAN"):
        build_gan("stylegan")
    with pytest.raises(ValueError, match="bad option"):
        build_gan("dcgan", image_size=16, width=4, gamma=0.5)


def test_default_optimizers_follow_the_papers():
    cases = {
        "dcgan": ("adam", 2e-4, 0.5),
        "wgan": ("rmsprop", 5e-5, None),
        "wgan-gp": ("adam", 1e-4, 0.0),
        "began": ("adam", 1e-4, 0.5),
    }
    for name, (kind, lr, beta_1) in cases.items():
        gan = build_gan(name, image_size=16, width=4)
        gan.compile(jit_compile=False)
        for opt in (gan.d_optimizer, gan.g_optimizer):
            assert kind in type(opt).__name__.lower()
            assert float(opt.learning_rate) == pytest.approx(lr)
            if beta_1 is not None:
                assert opt.beta_1 == beta_1
    # BEGAN's decay is the recipe's schedule (tested by hand in test_config), not a second copy.
    began = build_gan("began", image_size=16, width=4)
    began.compile(jit_compile=False)
    schedule = began.g_optimizer._learning_rate  # Keras keeps the schedule object here
    assert isinstance(schedule, optimizers.StepDecayWithFloor)
    assert (schedule.decay_steps, schedule.min_learning_rate) == (100_000, 2e-5)


def test_sample_latent_draws_from_and_advances_the_seed_state():
    gan = build_gan("dcgan", image_size=16, width=4, seed=7)
    assert gan.latent_seed.numpy().tolist() == [7, 0]
    z = gan.sample_latent(4)
    assert z.shape == (4, 100) and gan.latent_seed.numpy().tolist() == [7, 1]
    assert float(tf.math.reduce_std(gan.sample_latent(4000))) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("name", ["dcgan", "wgan", "wgan-gp", "began"])
def test_compiled_step_trains_under_mixed_bfloat16(name):
    """The GPU option train.mixed_precision = "mixed_bfloat16": bf16 layers, float32 weights,
    losses and images (TensorFlow runs bfloat16 on this CPU too, so the path is exercised here)."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        params = {"n_critic": 2} if name.startswith("wgan") else {}
        gan = build_gan(name, image_size=16, width=4, bottleneck=8, latent_dim=8, seed=1, **params)
        gan.compile(jit_compile=True)
        n = 8 * gan.real_batches_per_step
        x = np.random.default_rng(0).uniform(-1, 1, (n, 16, 16, 1)).astype("float32")
        y = {"modality": np.zeros(n, "int32"), "tumour": np.zeros(n, "int32")}
        before = [w.numpy().copy() for w in gan.generator.trainable_weights]
        history = gan.fit(
            tf.data.Dataset.from_tensors((x, y)).repeat(3), epochs=1, verbose=0
        ).history
        compute = {layer.compute_dtype for layer in gan.discriminator.layers if layer.weights}
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert "bfloat16" in compute
    assert all(np.isfinite(v[-1]) for v in history.values()), history
    assert {w.dtype for w in gan.weights if w.dtype != "int64"} == {"float32"}
    assert gan.generator(tf.zeros([2, 8])).dtype == tf.float32
    assert any(
        not np.array_equal(a, b.numpy()) for a, b in zip(before, gan.generator.trainable_weights)
    )
    if name == "wgan":
        assert (
            max(float(tf.reduce_max(tf.abs(w))) for w in gan.discriminator.trainable_weights)
            <= 0.01
        )
