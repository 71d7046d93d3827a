"""End-to-end training on a tiny slice dataset: run directory, exact resume, divergence, export."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import write_disc_slices

from kgan import callbacks as cb
from kgan import config as cfg
from kgan import pipeline, training

SIZE = 16


def _write_tiny_dataset(directory, count=48, seed=0):
    """Bright discs of varying size on black: four modalities, some with a 'tumour'."""
    write_disc_slices(
        os.path.join(directory, "tiny-train.tfrecord-00000-of-00001"),
        size=SIZE,
        count=count,
        seed=seed,
    )
    return directory


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return _write_tiny_dataset(str(tmp_path_factory.mktemp("tiny")))


def recipe(tmp_path, data, gan="began", **sets):
    items = {
        "image_size": SIZE,
        "width": 8,
        "bottleneck": 8,
        "latent_dim": 8,
        "batch_size": 4,
        "epochs": 2,
        "steps_per_epoch": 5,
        "checkpoint_every": 3,
        "num_samples": 8,
        "log_every": 2,
        "verbose": 0,
        "output.logdir": str(tmp_path / "runs"),
        "export_dir": str(tmp_path / "exports"),
        "export": False,
        "source": data,
    }
    items.update(sets)
    return cfg.resolve(gan, overrides=items)


class Interrupt(keras.callbacks.Callback):
    """Simulates a kill (Ctrl-C) after global step `at` (counted across fit calls)."""

    def __init__(self, at):
        super().__init__()
        self.at, self.seen = at, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at:
            raise KeyboardInterrupt(f"simulated kill after step {self.at}")


def _checkpoint_values(path):
    reader = tf.train.load_checkpoint(path)
    return {
        k: reader.get_tensor(k)
        for k in reader.get_variable_to_shape_map()
        if k != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }


def test_stream_order_is_a_function_of_position(tiny_data):
    keras.utils.set_random_seed(5)  # a global seed must not break the per-pass seeds
    stream = pipeline.SliceStream(tiny_data, split="train", batch_size=8, modalities=None, seed=3)
    assert (stream.count, stream.batches_per_pass) == (48, 6)
    # Held once, as stored (uint8); batches come out in [-1, 1] with their labels.
    assert stream.images.dtype == tf.uint8 and stream.images.shape[:2] == (48, SIZE)
    x, y = next(iter(stream.from_position(0, 1)))
    assert x.dtype == tf.float32 and x.shape == (8, SIZE, SIZE, 1)
    assert -1.0 <= float(tf.reduce_min(x)) < float(tf.reduce_max(x)) <= 1.0
    assert set(y) >= {"modality", "tumour", "slice_index"} and y["modality"].shape == (8,)

    def ids(ds):
        return [tuple(y["slice_index"].numpy()) for _, y in ds]

    whole = ids(stream.from_position(0, 15))
    assert len(whole) == 15
    assert ids(stream.from_position(4, 11)) == whole[4:]
    assert ids(stream.from_position(13, 2)) == whole[13:]
    for p in range(2):  # every pass is a permutation of all slices
        assert sorted(sum(whole[6 * p : 6 * p + 6], ())) == list(range(48))
    assert whole[:6] != whole[6:12]  # each pass has its own order
    again = pipeline.SliceStream(tiny_data, split="train", batch_size=8, modalities=["t1"], seed=3)
    assert again.count == 12 and all(i % 4 == 0 for b in ids(again.from_position(0, 1)) for i in b)


LEVERS = {"gan_params.ema_decay": 0.9, "gan_params.augment": ["translation", "cutout", "contrast"]}


@pytest.mark.parametrize("levers", [{}, LEVERS], ids=["plain", "ema-diffaugment"])
def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, tiny_data, levers):
    # BEGAN (k_t) without XLA: three builds of the compiled step would triple the time.
    # With the levers, the EMA copy, its update count and the augmentations' seed state must
    # come back too.
    whole = training.train(recipe(tmp_path, tiny_data, name="whole", jit_compile=False, **levers))
    assert (whole.steps, whole.total_steps, whole.resumed_from_step) == (10, 10, 0)

    cut = recipe(tmp_path, tiny_data, name="cut", jit_compile=False, **levers)
    with pytest.raises(KeyboardInterrupt):
        training.train(cut, extra_callbacks=[Interrupt(at=7)])  # mid-epoch 2 (steps 6-10)
    manager_dir = os.path.join(cut.run_dir, "checkpoints")
    assert tf.train.latest_checkpoint(manager_dir).endswith("ckpt-6")
    at6 = _checkpoint_values(tf.train.latest_checkpoint(manager_dir))

    resumed = training.train(cut)
    assert resumed.resumed_from_step == 6 and resumed.steps == 10

    a = _checkpoint_values(tf.train.latest_checkpoint(os.path.join(whole.run_dir, "checkpoints")))
    b = _checkpoint_values(tf.train.latest_checkpoint(manager_dir))
    assert a.keys() == b.keys() and len(a) > 20
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # The restored state really moved on from the checkpoint: step, k_t, optimiser iterations.
    assert int(b["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 10
    assert int(at6["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 6
    changed = [k for k in a if k.startswith("d_optimizer") and not np.array_equal(a[k], at6[k])]
    assert changed
    z = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    ga = keras.saving.load_model(whole.generator_path)
    gb = keras.saving.load_model(resumed.generator_path)
    np.testing.assert_array_equal(ga(z), gb(z))
    # Running the finished command again does no more training.
    again = training.train(cut)
    assert again.steps == 10 and again.resumed_from_step == 10
    if levers:
        # generator.keras is the weight average, not the last generator.
        gan = training.build_model(cut)
        checkpoint = training.make_checkpoint(gan, tf.Variable(0, dtype=tf.int64))
        checkpoint.restore(tf.train.latest_checkpoint(manager_dir)).assert_consumed()
        assert int(gan.ema_updates.numpy()) == 10
        np.testing.assert_allclose(gb(z), gan.ema_generator(z), atol=1e-6)
        assert not np.allclose(gb(z), gan.generator(z), atol=1e-3)


def test_run_directory_scalars_samples_and_export(tmp_path, tiny_data):
    c = recipe(
        tmp_path,
        tiny_data,
        gan="wgan",
        name="w",
        export=True,
        jit_compile=False,
        epochs=1,
        steps_per_epoch=3,
        **{"gan_params.n_critic": 2},
    )
    result = training.train(c)
    saved = json.load(open(result.config_path))
    assert saved["gan"] == "wgan" and saved["gan_params"]["n_critic"] == 2
    assert saved["resolved"]["real_batches_per_step"] == 2
    assert saved["resolved"]["batches_per_pass"] == 48 // 8
    assert saved["resolved"]["dataset_dir"] == os.path.abspath(tiny_data)
    assert set(result.epoch_logs) >= {"d_loss", "g_loss", "wasserstein", "d_real", "d_fake"}
    png = tf.io.decode_png(open(result.samples_png, "rb").read()).numpy()
    assert png.shape == (3 * (SIZE + 1) + 1, 3 * (SIZE + 1) + 1, 1)
    assert os.path.exists(os.path.join(c.run_dir, "samples", "samples-epoch001.png"))
    tags = set()
    for root, _, files in os.walk(result.logdir):
        for f in files:
            for e in tf.compat.v1.train.summary_iterator(os.path.join(root, f)):
                tags.update(v.tag for v in e.summary.value)
    assert {"train/d_loss", "train/wasserstein", "lr/d", "lr/g", "epoch/g_loss", "samples"} <= tags
    assert result.export_dir == os.path.join(c.export_base, "1")
    assert os.path.exists(os.path.join(result.export_dir, "saved_model.pb"))
    loaded = tf.saved_model.load(result.export_dir)
    out = loaded.signatures["serving_default"](z=tf.zeros([2, 8]))
    assert out["images"].shape == (2, SIZE, SIZE, 1)


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_data):
    # k_t starts at 0 and grows by about 2.5e-4 a step here: a limit of 6e-4 trips within steps.
    c = recipe(
        tmp_path,
        tiny_data,
        name="div",
        jit_compile=False,
        checkpoint_every=1,
        **{"train.divergence_limits.k_t": 6e-4},
    )
    with pytest.raises(cb.TrainingDivergedError) as e:
        training.train(c)
    message = str(e.value)
    assert "|k_t| =" in message and "> limit 0.0006" in message
    step = int(message.split("diverged at step ")[1].split()[0])
    assert 1 < step < 10
    latest = tf.train.latest_checkpoint(os.path.join(c.run_dir, "checkpoints"))
    assert latest.endswith(f"ckpt-{step - 1}") and latest in message


def test_refuses_to_resume_another_recipe(tmp_path, tiny_data):
    c = recipe(tmp_path, tiny_data, name="other")
    os.makedirs(os.path.join(c.run_dir, "checkpoints"))
    cfg.save_json(c, os.path.join(c.run_dir, "config.json"))
    tf.train.Checkpoint(v=tf.Variable(1)).save(os.path.join(c.run_dir, "checkpoints", "ckpt"))
    changed = recipe(tmp_path, tiny_data, name="other", width=16, epochs=5)
    with pytest.raises(training.ResumeMismatchError, match=r"model.width: 8 -> 16"):
        training.train(changed)
    training.check_resumable(
        recipe(tmp_path, tiny_data, name="other", epochs=9), os.path.join(c.run_dir, "config.json")
    )  # more epochs: fine


def test_script_flags_become_overrides():
    from kgan.commands import train as script  # scripts/train.py calls its main

    args = script.parser().parse_args(
        [
            "--gan",
            "began",
            "--epochs",
            "3",
            "--size",
            "32",
            "--conditional",
            "--seed",
            "4",
            "--logdir",
            "/tmp/x",
            "--set",
            "train.batch_size=8",
            "--set",
            "gamma=0.7",
        ]
    )
    assert script.overrides_from(args) == {
        "train.epochs": 3,
        "model.image_size": 32,
        "model.conditional": True,
        "train.seed": 4,
        "output.logdir": "/tmp/x",
    }
    c = cfg.resolve(args.gan, None, script.overrides_from(args), args.set_items)
    assert (c.train.batch_size, c.gan_params["gamma"], c.model.conditional) == (8, 0.7, True)
    assert script.overrides_from(script.parser().parse_args([])) == {}


def test_mirrored_strategy_on_two_logical_cpus(tmp_path, tiny_data):
    # Logical devices must be set before TensorFlow initialises: run in a fresh interpreter.
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import os, json
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        from kgan import config as cfg, training
        c = cfg.resolve("dcgan", overrides={{
            "image_size": {SIZE}, "width": 8, "latent_dim": 8, "batch_size": 4, "epochs": 1,
            "steps_per_epoch": 2, "num_samples": 4, "verbose": 0, "distribute": "mirrored",
            "output.logdir": {str(tmp_path)!r}, "export": False, "source": {tiny_data!r}}})
        r = training.train(c)
        print(json.dumps({{"steps": r.steps, "logs": r.epoch_logs,
                          "replicas": json.load(open(r.config_path))["resolved"]["replicas"]}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["steps"] == 2
    assert all(np.isfinite(v) for v in result["logs"].values())


def test_training_seed_leaves_the_phantom_data_alone(monkeypatch):
    """--seed changes weights, latents and batch order, not the cohort or its split."""
    from kgan import records

    asked = []
    monkeypatch.setattr(records, "ensure_dataset", lambda source, **kw: asked.append(kw) or "dir")
    for sets in (["train.seed=7"], ["train.seed=7", "data.split_seed=3"]):
        assert training.resolve_data(cfg.resolve("began", set_items=sets)) == "dir"
    assert [kw["seed"] for kw in asked] == [0, 3]


def test_a_run_says_what_it_will_do_before_training(tmp_path, tiny_data, capsys):
    c = recipe(tmp_path, tiny_data, name="plan", steps_per_epoch=30, epochs=1, verbose="auto")
    training.train(c)
    out = capsys.readouterr().out
    for needle in (
        "kgan: device        : CPU only:",
        "kgan: oneDNN        :",
        "kgan: XLA           :",
        "kgan: recipe        : the paper defaults for began",
        "kgan: GAN and size  : began, 16x16, batch 4",
        "kgan: steps         : 30 (1 epoch of 30)",
        "s/step; about",
    ):
        assert needle in out, (needle, out)
    # stdout is not a terminal under pytest: one line per epoch, no progress-bar redraws.
    assert "\x1b[" not in out and "\r" not in out
    saved = json.load(open(os.path.join(c.run_dir, "config.json")))["resolved"]
    assert saved["jit_compile"] is False and "oneDNN" in saved["jit_reason"]


def test_train_command_picks_the_cpu_recipe_without_a_gpu():
    from kgan.commands import train as command

    said = []
    args = command.parser().parse_args(["--gan", "began"])
    assert command.choose_recipe(args, has_gpu=False, log=said.append) == cfg.cpu_recipe("began")
    assert "--paper" in said[0] and "began-cpu" in said[0]
    assert command.choose_recipe(args, has_gpu=True, log=said.append) is None  # the paper's
    paper = command.parser().parse_args(["--gan", "wgan", "--paper"])
    assert command.choose_recipe(paper, has_gpu=False, log=said.append) is None
    both = command.parser().parse_args(["--config", "began-cpu", "--paper"])
    with pytest.raises(cfg.ConfigError, match="exclude"):
        command.choose_recipe(both, has_gpu=False)


def test_fit_calls_keep_executions_inside_epochs():
    def calls(*args):  # (first epoch, stop epoch, stream position, steps per epoch) per call
        return [
            (c.first_epoch, c.stop_epoch, c.position, c.steps_per_epoch)
            for c in training.fit_calls(*args)
        ]

    # Executions that end on epoch boundaries: one call for all epochs.
    assert calls(0, 6, 3, 3) == [(0, 3, 0, 6)]
    assert calls(0, 5, 2) == [(0, 2, 0, 5)]
    # 5 steps in runs of 3 would carry an execution over the boundary: one call per epoch.
    assert calls(0, 5, 3, 3) == [(0, 1, 0, 5), (1, 2, 5, 5), (2, 3, 10, 5)]
    # A resume mid-epoch finishes that epoch in a call of its own (exactly its rest).
    assert calls(7, 5, 3, 3) == [(1, 2, 7, 3), (2, 3, 10, 5)]
    assert calls(7, 6, 3, 3) == [(1, 2, 7, 5), (2, 3, 12, 6)]
    assert calls(10, 5, 2, 3) == []  # finished


class StepsSeen(keras.callbacks.Callback):
    """Records the steps run (BEGAN's critic updates, restored on resume) after every call Keras
    makes, and kills the run at `kill_at`."""

    def __init__(self, kill_at=None):
        super().__init__()
        self.kill_at, self.steps = kill_at, []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(int(self.model.d_optimizer.iterations.numpy()))
        if self.kill_at is not None and self.steps[-1] >= self.kill_at:
            raise KeyboardInterrupt(f"simulated kill after step {self.steps[-1]}")


def test_steps_per_execution_resume_is_exact(tmp_path, tiny_data):
    """Three steps per call (5-step epochs, so the last call of each epoch is shorter), killed
    and resumed, ends with the weights of an uninterrupted one-step-per-call run."""
    whole = training.train(recipe(tmp_path, tiny_data, name="one", jit_compile=False))
    cut = recipe(tmp_path, tiny_data, name="three", jit_compile=False, steps_per_execution=3)
    seen = StepsSeen(kill_at=8)
    with pytest.raises(KeyboardInterrupt):
        training.train(cut, extra_callbacks=[seen])
    # Calls end at steps 3, 5 (epoch end), 8; checkpoints every 3 steps land on those ends.
    assert seen.steps == [3, 5, 8]
    manager_dir = os.path.join(cut.run_dir, "checkpoints")
    assert tf.train.latest_checkpoint(manager_dir).endswith("ckpt-8")
    resumed = training.train(cut)
    assert (resumed.resumed_from_step, resumed.steps) == (8, 10)
    a = _checkpoint_values(tf.train.latest_checkpoint(os.path.join(whole.run_dir, "checkpoints")))
    b = _checkpoint_values(tf.train.latest_checkpoint(manager_dir))
    assert a.keys() == b.keys() and len(a) > 20
    for key in a.keys() - {"save_counter/.ATTRIBUTES/VARIABLE_VALUE"}:  # saves differ, not state
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert int(b["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 10
    # The optimisers counted every step, not every call.
    iterations = [
        k
        for k in b
        if k.startswith("d_optimizer") and int(np.size(b[k])) == 1 and b[k].dtype == np.int64
    ]
    assert iterations and all(int(b[k]) == 10 for k in iterations)


def test_divergence_guard_with_steps_per_execution_names_the_steps(tmp_path, tiny_data):
    limits = {"train.divergence_limits.k_t": 6e-4}
    one = recipe(tmp_path, tiny_data, name="div1", jit_compile=False, checkpoint_every=1, **limits)
    with pytest.raises(cb.TrainingDivergedError) as e:
        training.train(one)
    exact = int(str(e.value).split("diverged at step ")[1].split()[0])

    two = recipe(
        tmp_path,
        tiny_data,
        name="div2",
        jit_compile=False,
        checkpoint_every=1,
        steps_per_execution=2,
        **limits,
    )
    seen = StepsSeen()
    with pytest.raises(cb.TrainingDivergedError) as e:
        training.train(two, extra_callbacks=[seen])
    # Two steps per call in 5-step epochs: calls end at steps 2, 4, 5, 7, 9, 10.
    ends = [2, 4, 5, 7, 9, 10]
    last = min(x for x in ends if x >= exact)
    first = max([0] + [x for x in ends if x < last]) + 1
    message = str(e.value)
    assert f"diverged at step {last} " in message
    if last > first:
        assert f"in steps {first}-{last}" in message
    latest = tf.train.latest_checkpoint(os.path.join(two.run_dir, "checkpoints"))
    assert latest.endswith(f"ckpt-{first - 1}") and latest in message
    assert seen.steps[-1] == last  # stopped after the call that went bad
