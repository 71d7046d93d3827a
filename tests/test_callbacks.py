"""Callbacks: divergence stop keeps the last good checkpoint; TensorBoard scalars, grids; saving."""

import glob
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from kgan import callbacks as cb
from kgan import config as cfg
from kgan import imaging, optimizers


class TinyGAN(keras.Model):
    """A stand-in GAN with the interface the callbacks use (generator, two optimisers, metrics).

    Each step adds 1 to `w`; from step `nan_weights_at` on, `w` is NaN after the update; from step
    `nan_loss_at` on the reported d_loss is NaN. d_loss = w before the update, so a NaN weight
    written at step t is first reported by step t + 1 (the case a log check alone would miss).
    """

    def __init__(self, nan_loss_at=None, nan_weights_at=None, grow=1.0, conditional=False):
        super().__init__()
        self.conditional = conditional
        z = keras.Input((4,))
        if conditional:
            m, t = keras.Input((), dtype="int32"), keras.Input((), dtype="int32")
            h = keras.layers.Concatenate()([z, keras.ops.one_hot(m, 4), keras.ops.one_hot(t, 2)])
            inputs = [z, m, t]
        else:
            h, inputs = z, z
        h = keras.layers.Dense(16, activation="tanh")(h)
        self.generator = keras.Model(inputs, keras.layers.Reshape((4, 4, 1))(h), name="generator")
        self.w = self.add_weight(shape=(), initializer="zeros", name="w")
        self.nan_loss_at, self.nan_weights_at, self.grow = nan_loss_at, nan_weights_at, grow
        self.steps = 0

    def compile(self, d_optimizer, g_optimizer):
        super().compile(optimizer=None, run_eagerly=True)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        self.d_optimizer.build([self.w])
        self.g_optimizer.build(self.generator.trainable_variables)
        self.built = True

    def train_step(self, data):
        self.steps += 1
        before = float(self.w.numpy())
        self.d_optimizer.iterations.assign_add(1)
        self.g_optimizer.iterations.assign_add(2)
        new = before + self.grow
        if self.nan_weights_at and self.steps >= self.nan_weights_at:
            new = float("nan")
        self.w.assign(new)
        d_loss = before
        if self.nan_loss_at and self.steps >= self.nan_loss_at:
            d_loss = float("nan")
        return {"d_loss": d_loss, "g_loss": 2.0 * self.steps}


def tiny(**kw):
    model = TinyGAN(**kw)
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.optimizers.Adam(
            optimizers.make_schedule(
                cfg.OptimizerConfig(
                    "adam", 1e-3, decay_rate=0.5, decay_steps=4, min_learning_rate=3e-4
                )
            )
        ),
    )
    return model


def data(n=64):
    return tf.data.Dataset.from_tensor_slices(np.zeros((n, 1), np.float32)).batch(1)


def test_bad_values():
    logs = {
        "a": 1.0,
        "b": float("nan"),
        "c": np.float32("inf"),
        "d": -np.inf,
        "e": "text",
        "f": np.array(3.0),
        "g": [1.0, 2.0],
    }
    bad = cb.bad_values(logs)
    assert set(bad) == {"b", "c", "d"} and bad["d"] == -math.inf
    assert cb.bad_values({"w": -5.0}, {"w": 4.0}) == {"w": -5.0}
    assert cb.bad_values({"w": 4.0}, {"w": 4.0}) == {}
    assert cb.bad_values(None) == {}


def test_weights_finite():
    assert cb.weights_finite([tf.Variable([1.0, 2.0]), tf.Variable(3)])
    assert not cb.weights_finite([tf.Variable([1.0, np.nan])])
    assert not cb.weights_finite([tf.Variable(1.0), tf.Variable([[np.inf]])])
    assert cb.weights_finite([])


def test_stop_on_nan_stops_at_that_step_with_a_clear_message():
    model = tiny(nan_loss_at=3)
    health = cb.RunHealth()
    history = model.fit(
        data(), epochs=2, verbose=0, callbacks=[cb.StopOnDivergence(health, step_offset=100)]
    )
    assert model.steps == 3  # nothing after the bad step
    assert len(history.history["d_loss"]) == 1
    assert health.diverged and health.step == 103
    assert "step 103" in health.reason and "d_loss = nan" in health.reason
    assert "g_loss" not in health.reason


@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_stop_on_inf(value):
    class InfGAN(TinyGAN):
        def train_step(self, data):
            logs = super().train_step(data)
            return {**logs, "g_loss": value if self.steps == 2 else 0.0}

    model = InfGAN()
    model.compile(keras.optimizers.Adam(), keras.optimizers.Adam())
    health = cb.RunHealth()
    model.fit(data(), epochs=1, verbose=0, callbacks=[cb.StopOnDivergence(health)])
    assert model.steps == 2 and f"g_loss = {value}" in health.reason


def test_divergence_limit_and_raise_error():
    model = tiny(grow=-10.0)  # d_loss = 0, -10, -20, ...
    health = cb.RunHealth()
    model.fit(
        data(),
        epochs=1,
        verbose=0,
        callbacks=[cb.StopOnDivergence(health, limits={"d_loss": 12.0})],
    )
    assert model.steps == 3  # |-20| > 12; |-10| is not
    assert "|d_loss| = 20 > limit 12" in health.reason
    model = tiny(nan_loss_at=2)
    with pytest.raises(cb.TrainingDivergedError, match="d_loss = nan"):
        model.fit(
            data(),
            epochs=1,
            verbose=0,
            callbacks=[cb.StopOnDivergence(cb.RunHealth(), raise_error=True)],
        )
    assert model.steps == 2


def _checkpointing(model, directory, every, health):
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(step=step, w=model.w)
    manager = tf.train.CheckpointManager(ckpt, directory, max_to_keep=10)
    callbacks = [
        cb.StopOnDivergence(health),
        cb.StepCounter(step),
        cb.CheckpointEvery(manager, step, every, health),
    ]
    return step, ckpt, manager, callbacks


def test_nan_loss_keeps_last_good_checkpoint(tmp_path):
    model = tiny(nan_loss_at=5)
    health = cb.RunHealth()
    step, ckpt, manager, callbacks = _checkpointing(model, str(tmp_path), 2, health)
    model.fit(data(), epochs=3, steps_per_epoch=8, verbose=0, callbacks=callbacks)
    assert model.steps == 5 and int(step.numpy()) == 5
    assert [int(p.rsplit("-", 1)[1]) for p in manager.checkpoints] == [2, 4]
    restored = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), w=tf.Variable(0.0))
    restored.restore(manager.latest_checkpoint).assert_consumed()
    assert int(restored.step.numpy()) == 4 and float(restored.w.numpy()) == 4.0


def test_nan_weights_are_never_checkpointed(tmp_path):
    # Step 4 writes NaN into w while its reported loss (w before the update) is still finite:
    # only the weight check stops the step-4 checkpoint from being a bad "last good" one.
    model = tiny(nan_weights_at=4)
    health = cb.RunHealth()
    step, ckpt, manager, callbacks = _checkpointing(model, str(tmp_path), 2, health)
    model.fit(data(), epochs=1, steps_per_epoch=10, verbose=0, callbacks=callbacks)
    assert [int(p.rsplit("-", 1)[1]) for p in manager.checkpoints] == [2]
    assert health.diverged and "non-finite weights after step 4" in health.reason
    assert model.steps == 4


def test_epoch_end_checkpoint_and_no_duplicates(tmp_path):
    model = tiny()
    health = cb.RunHealth()
    step, ckpt, manager, callbacks = _checkpointing(model, str(tmp_path), 4, health)
    model.fit(data(), epochs=2, steps_per_epoch=6, verbose=0, callbacks=callbacks)
    # every 4 steps (4, 8, 12) and at the epoch ends (6, 12 - already saved)
    assert [int(p.rsplit("-", 1)[1]) for p in manager.checkpoints] == [4, 6, 8, 12]


def test_generator_saver_atomic_and_stops_after_divergence(tmp_path):
    path = str(tmp_path / "generator.keras")
    model = tiny(nan_loss_at=10)
    health = cb.RunHealth()
    saver = cb.GeneratorSaver(path, health)
    model.fit(
        data(),
        epochs=5,
        steps_per_epoch=4,
        verbose=0,
        callbacks=[cb.StopOnDivergence(health), saver],
    )
    assert saver.saves == 2  # epochs 1 and 2 were good; the NaN came in epoch 3
    loaded = keras.saving.load_model(path)
    z = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(loaded(z), model.generator(z), rtol=1e-6)
    assert os.listdir(tmp_path) == ["generator.keras"]  # no temporary files left behind
    assert not saver.save()


def _events(logdir):
    out = {}
    for path in glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v))
    return out


def test_scalar_logger_steps_metrics_and_learning_rates(tmp_path):
    model = tiny()
    writer = tf.summary.create_file_writer(str(tmp_path))
    model.fit(
        data(),
        epochs=2,
        steps_per_epoch=3,
        verbose=0,
        callbacks=[cb.ScalarLogger(writer, every=2, step_offset=10)],
    )
    writer.close()
    events = _events(str(tmp_path))

    def values(tag):
        return [(s, float(tf.make_ndarray(v.tensor))) for s, v in events[tag]]

    # steps 11..16, written at 12, 14, 16; d_loss at the n-th step of this fit is n - 1.
    assert values("train/d_loss") == [(12, 1.0), (14, 3.0), (16, 5.0)]
    assert [s for s, _ in values("epoch/g_loss")] == [1, 2]
    # g optimizer: 2 iterations per step, lr 1e-3 halved every 4 iterations, floor 3e-4:
    # after steps 12 (it 4), 14 (it 8), 16 (it 12): 5e-4, 3e-4 (floor), 3e-4.
    assert [s for s, _ in values("lr/g")] == [12, 14, 16]
    assert [x for _, x in values("lr/g")] == pytest.approx([5e-4, 3e-4, 3e-4])
    assert all(x == pytest.approx(1e-3) for _, x in values("lr/d"))


def test_image_grid_hand_computed():
    images = np.array([np.full((2, 2, 1), -1.0), np.full((2, 2, 1), 1.0), np.zeros((2, 2, 1))])
    grid = imaging.image_grid(images, pad=1)
    assert grid.shape == (2 * 3 + 1, 2 * 3 + 1) and grid.dtype == np.uint8
    assert (grid[1:3, 1:3] == 0).all() and (grid[1:3, 4:6] == 255).all()
    assert (grid[4:6, 1:3] == 128).all()  # 0.0 -> 127.5 -> rounds to 128
    assert (grid[4:6, 4:6] == 0).all()  # empty cell
    assert (grid[0] == 0).all() and (grid[:, 3] == 0).all()  # padding
    with pytest.raises(ValueError, match="expected images"):
        imaging.image_grid(np.zeros((4, 4)))


def test_fixed_latents_are_fixed_and_labelled():
    a, none = cb.fixed_latents(8, 5, seed=3)
    b, _ = cb.fixed_latents(8, 5, seed=3)
    assert none is None and a.shape == (8, 5) and np.array_equal(a, b)
    (z, m, t), groups = cb.fixed_latents(16, 5, seed=3, conditional=True)
    assert m.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    assert t.tolist() == [0, 0, 1, 1] * 4
    assert np.array_equal(z[0:4], z[4:8])  # the same latents for every modality
    assert list(groups) == ["t1", "t1ce", "t2", "flair"] and groups["t2"] == slice(8, 12)


@pytest.mark.parametrize("conditional", [False, True])
def test_sample_grid_logged_each_epoch(tmp_path, conditional):
    model = tiny(conditional=conditional)
    inputs, groups = cb.fixed_latents(8, 4, seed=0, conditional=conditional)
    writer = tf.summary.create_file_writer(str(tmp_path / "logs"))
    model.fit(
        data(),
        epochs=2,
        steps_per_epoch=2,
        verbose=0,
        callbacks=[cb.SampleGrid(writer, inputs, groups, png_dir=str(tmp_path / "png"))],
    )
    writer.close()
    events = _events(str(tmp_path / "logs"))
    tags = (
        ["samples"] if not conditional else [f"samples/{m}" for m in ("t1", "t1ce", "t2", "flair")]
    )
    assert sorted(events) == sorted(tags)
    for tag in tags:
        assert [s for s, _ in events[tag]] == [1, 2]
        step, value = events[tag][-1]
        png = tf.make_ndarray(value.tensor)[2]  # [width, height, encoded png]
        image = tf.io.decode_png(png).numpy()
        want = imaging.image_grid(
            cb.generate(model.generator, inputs)[groups[tag.split("/")[1]]]
            if conditional
            else cb.generate(model.generator, inputs),
            columns=2 if conditional else None,
        )
        np.testing.assert_array_equal(image[..., 0], want)
    assert sorted(os.listdir(tmp_path / "png")) == ["samples-epoch001.png", "samples-epoch002.png"]


def test_time_estimate_times_steps_after_the_compile_and_says_the_rest():
    ticks = iter([100.0, 102.0])  # read at the end of step 3 and of step 3 + 4
    lines = []
    estimate = cb.TimeEstimate(1003, skip=3, measure=4, log=lines.append, clock=lambda: next(ticks))
    for batch in range(10):
        estimate.on_train_batch_end(batch)
    assert estimate.seconds_per_step == pytest.approx(0.5)
    # 1003 - 7 steps left at 0.5 s: 498 s, shown in minutes; said once.
    assert lines == ["kgan: 0.500 s/step; about 8 min for the remaining 996 steps"]


def test_time_estimate_says_nothing_for_a_run_shorter_than_its_window():
    lines = []
    estimate = cb.TimeEstimate(5, skip=3, measure=20, log=lines.append, clock=lambda: 0.0)
    for batch in range(5):
        estimate.on_train_batch_end(batch)
    assert lines == [] and estimate.seconds_per_step is None


@pytest.mark.parametrize(
    "seconds,text", [(45, "45 s"), (600, "10 min"), (3 * 3600, "3.0 h"), (3 * 86400, "3.0 days")]
)
def test_format_duration(seconds, text):
    assert cb.format_duration(seconds) == text


def test_step_counting_callbacks_count_steps_not_calls():
    """Four steps per call in a 10-step epoch: Keras reports batches 3, 7 and 11 (the last call
    ran two steps); the counters see 4, 8 and 10 steps."""
    ticks = iter([10.0, 14.0])
    lines = []
    estimate = cb.TimeEstimate(100, skip=3, measure=4, log=lines.append, clock=lambda: next(ticks))
    step = tf.Variable(0, dtype=tf.int64)
    counter = cb.StepCounter(step)
    for callback in (estimate, counter):
        callback.set_params({"steps": 10, "epochs": 1, "verbose": 0})
        callback.on_epoch_begin(0)
        for batch in (3, 7, 11):
            callback.on_train_batch_end(batch)
    assert int(step.numpy()) == 10 and estimate.seen == 10
    # timed from the end of step 4 to the end of step 8: 4 s for 4 steps
    assert estimate.seconds_per_step == pytest.approx(1.0)
    assert lines == ["kgan: 1.000 s/step; about 2 min for the remaining 92 steps"]
