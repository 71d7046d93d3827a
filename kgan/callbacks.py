"""Small Keras callbacks for GAN training: stop on divergence, log to TensorBoard, save safely.

They share one `RunHealth` so that nothing is saved once training has gone bad: a NaN loss
reported at step t means the weights after step t-1's update may already be broken, so the
checkpoint and generator savers also check that every weight is finite before writing, and a
divergence stops all further saving. The last good checkpoint and `generator.keras` survive.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from kgan import atomic, imaging, names


class TrainingDivergedError(RuntimeError):
    """Training produced NaN/Inf or exceeded a divergence limit (the message says where)."""


class RunHealth:
    """Shared flag: once set, savers stop writing and the reason is kept for the report."""

    def __init__(self) -> None:
        self.diverged = False
        self.reason = ""
        self.step: int | None = None

    def fail(self, reason: str, step: int | None = None) -> None:
        if not self.diverged:
            self.diverged, self.reason, self.step = True, reason, step


def bad_values(logs: Mapping | None, limits: Mapping[str, float] | None = None) -> dict:
    """{metric: value} for each value that is NaN/Inf or whose magnitude exceeds its limit."""
    bad = {}
    for key, value in (logs or {}).items():
        try:
            x = float(np.asarray(value, dtype=np.float64).reshape(()))
        except (TypeError, ValueError):
            continue  # non-scalar or non-numeric entries are not metrics
        if not math.isfinite(x):
            bad[key] = x
        elif limits and key in limits and abs(x) > limits[key]:
            bad[key] = x
    return bad


def weights_finite(variables: Sequence) -> bool:
    """True when every variable holds only finite numbers (checked on device, one scalar back)."""
    checks = []
    for v in variables:
        value = tf.convert_to_tensor(v)
        if value.dtype.is_floating:
            checks.append(tf.reduce_all(tf.math.is_finite(value)))
    return bool(tf.reduce_all(tf.stack(checks)).numpy()) if checks else True


class ExecutedSteps(keras.callbacks.Callback):
    """Base for callbacks that count the training steps that actually ran.

    With `steps_per_execution` = k, Keras calls `on_train_batch_end` once per k steps, with
    `batch` the index of the execution's last step (first + k - 1), also when the fit call's
    data ran out sooner (its last execution can be shorter). The steps done in the epoch are
    therefore min(batch + 1, steps of the epoch), and what ran since the previous call is the
    difference; with k = 1 that is one step per call, as before.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_steps = 0

    def executed(self, batch: int) -> int:
        """Steps run since the previous call (call once per `on_train_batch_end`)."""
        limit = (self.params or {}).get("steps")
        done = batch + 1 if not limit else min(batch + 1, int(limit))
        ran = done - getattr(self, "_epoch_steps", 0)
        self._epoch_steps = done
        return max(ran, 0)


class StopOnDivergence(ExecutedSteps):
    """Stops training when a metric turns NaN/Inf or exceeds a limit, and says which and when.

    Like Keras's `TerminateOnNaN`, but it watches every metric (a GAN has no single "loss"), takes
    magnitude limits for divergence (e.g. a WGAN critic whose Wasserstein estimate explodes), and
    flags the shared `RunHealth` so the checkpoint savers keep the last good state.

    Args:
      health: the run's shared flag.
      limits: {metric name: largest allowed |value|}.
      step_offset: steps done before this fit call (for the message after a resume).
      raise_error: raise `TrainingDivergedError` at once instead of stopping gracefully.

    With several steps per execution the logs are seen once per execution: the reason then
    names the steps of the execution that went bad (the trackers are running means, so a bad
    value in any of its steps shows at its end), and training stops after that execution.
    """

    def __init__(
        self,
        health: RunHealth,
        limits: Mapping[str, float] | None = None,
        step_offset: int = 0,
        raise_error: bool = False,
    ) -> None:
        super().__init__()
        self.health = health
        self.limits = dict(limits or {})
        self.step = step_offset
        self.raise_error = raise_error

    def on_train_batch_end(self, batch, logs=None):
        ran = self.executed(batch)
        first, self.step = self.step + 1, self.step + ran
        bad = bad_values(logs, self.limits)
        if not bad:
            return
        parts = []
        for key, value in sorted(bad.items()):
            if math.isfinite(value):
                parts.append(f"|{key}| = {abs(value):.4g} > limit {self.limits[key]:.4g}")
            else:
                parts.append(f"{key} = {value}")
        where = (
            f"at step {self.step} (batch {batch} of this epoch)"
            if ran <= 1
            else f"at step {self.step} (in steps {first}-{self.step}, run as one execution)"
        )
        reason = f"training diverged {where}: " + ", ".join(parts)
        self.health.fail(reason, self.step)
        self.model.stop_training = True
        if self.raise_error:
            raise TrainingDivergedError(reason)


class StepCounter(ExecutedSteps):
    """Keeps the run's global step variable in step with the steps done (checkpoints hold it)."""

    def __init__(self, step_var: tf.Variable) -> None:
        super().__init__()
        self.step_var = step_var

    def on_train_batch_end(self, batch, logs=None):
        self.step_var.assign_add(self.executed(batch))


class CheckpointEvery(keras.callbacks.Callback):
    """Saves a `tf.train.CheckpointManager` every `every` steps and at each epoch end.

    Place it after `StepCounter` so the saved step counts the batch just done. With several
    steps per execution it saves at the end of the execution that reaches or passes a multiple
    of `every` (numbered with the step it ends at). Skips saving once the run is unhealthy or a
    weight is not finite, so the newest checkpoint is always good.
    """

    def __init__(
        self,
        manager: tf.train.CheckpointManager,
        step_var: tf.Variable,
        every: int,
        health: RunHealth,
        check_variables: Callable[[], Sequence] | None = None,
    ) -> None:
        super().__init__()
        self.manager = manager
        self.step_var = step_var
        self.every = int(every)
        self.health = health
        self.check_variables = check_variables
        self.last_saved_step = -1
        self.last_seen_step: int | None = None
        self.skipped = 0

    def _save(self) -> None:
        step = int(self.step_var.numpy())
        if step == self.last_saved_step or self.health.diverged:
            return
        variables = self.check_variables() if self.check_variables else self.model.variables
        if not weights_finite(variables):
            self.health.fail(f"non-finite weights after step {step}; not saving", step)
            self.model.stop_training = True
            self.skipped += 1
            return
        self.manager.save(checkpoint_number=step)
        self.last_saved_step = step

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.step_var.numpy())
        before = step - 1 if self.last_seen_step is None else self.last_seen_step
        self.last_seen_step = step
        if step // self.every > before // self.every and not bad_values(logs):
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        if not bad_values(logs):
            self._save()


def save_model_atomic(model: keras.Model, path: str) -> None:
    """Saves a `.keras` file via a temp file and `os.replace`: readers never see half a file."""
    with atomic.atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


class GeneratorSaver(keras.callbacks.Callback):
    """Writes `generator.keras` atomically at every epoch end (and on demand), while healthy."""

    def __init__(self, path: str, health: RunHealth) -> None:
        super().__init__()
        self.path = path
        self.health = health
        self.saves = 0

    def save(self) -> bool:
        # The generator to serve: the weight average when the GAN keeps one (ema_decay).
        generator = getattr(self.model, "sampling_generator", self.model.generator)
        if self.health.diverged or not weights_finite(generator.variables):
            return False
        save_model_atomic(generator, self.path)
        self.saves += 1
        return True

    def on_epoch_end(self, epoch, logs=None):
        if not bad_values(logs):
            self.save()


def _scalar(value) -> float | None:
    try:
        return float(np.asarray(value, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        return None


def current_learning_rate(optimizer) -> float:
    """The learning rate the optimiser uses at its current iteration (schedules evaluated)."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer
    return float(np.asarray(optimizer.learning_rate))


class ScalarLogger(ExecutedSteps):
    """Writes every metric and both learning rates to TensorBoard.

    Per step (every `every` steps) under `train/<metric>` with the run's global step, so curves
    continue across resumes; per epoch under `epoch/<metric>`. Learning rates as `lr/d` and
    `lr/g` (from `model.d_optimizer` / `model.g_optimizer`). With several steps per execution,
    at the end of each execution that reaches or passes a multiple of `every`.
    """

    def __init__(self, writer, every: int = 10, step_offset: int = 0) -> None:
        super().__init__()
        self.writer = writer
        self.every = int(every)
        self.step = step_offset

    def _rates(self) -> dict:
        rates = {}
        for tag, name in (("lr/d", "d_optimizer"), ("lr/g", "g_optimizer")):
            opt = getattr(self.model, name, None)
            if opt is not None:
                rates[tag] = current_learning_rate(opt)
        return rates

    def _write(self, prefix: str, logs: Mapping | None, step: int) -> None:
        with self.writer.as_default(step=step):
            for key, value in (logs or {}).items():
                x = _scalar(value)
                if x is not None:
                    tf.summary.scalar(f"{prefix}/{key}", x)
            if prefix == "train":
                for tag, rate in self._rates().items():
                    tf.summary.scalar(tag, rate)

    def on_train_batch_end(self, batch, logs=None):
        before = self.step
        self.step += self.executed(batch)
        if self.step // self.every > before // self.every:
            self._write("train", logs, self.step)

    def on_epoch_end(self, epoch, logs=None):
        self._write("epoch", logs, epoch + 1)
        self.writer.flush()


class TimeEstimate(ExecutedSteps):
    """Prints, once, the measured seconds per step and the time the rest of the run will take.

    The first `skip` steps are left out (they trace and compile the step), then at least
    `measure` steps are timed (whole executions when a call runs several steps); a run shorter
    than that says nothing. Why: a recipe meant for a GPU can take hours
    on a CPU, and the user should know within a minute, not at the end.
    """

    def __init__(
        self, remaining_steps: int, *, skip: int = 3, measure: int = 20, log=print, clock=None
    ) -> None:
        super().__init__()
        self.remaining = int(remaining_steps)
        self.skip, self.measure = int(skip), int(measure)
        self.log = log
        self.clock = clock or __import__("time").perf_counter
        self.seen = 0
        self.started: float | None = None
        self.started_at = 0
        self.seconds_per_step: float | None = None

    def on_train_batch_end(self, batch, logs=None):
        self.seen += self.executed(batch)
        if self.seconds_per_step is not None:
            return
        if self.started is None:
            if self.seen >= self.skip:
                self.started, self.started_at = self.clock(), self.seen
        elif self.seen >= self.started_at + self.measure:
            self.seconds_per_step = (self.clock() - self.started) / (self.seen - self.started_at)
            left = (self.remaining - self.seen) * self.seconds_per_step
            self.log(
                f"kgan: {self.seconds_per_step:.3f} s/step; about {format_duration(left)} for "
                f"the remaining {self.remaining - self.seen:,} steps"
            )


def format_duration(seconds: float) -> str:
    """ "45 s", "12 min", "3.5 h", "2.1 days": a duration a person reads at a glance."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def fixed_latents(count: int, latent_dim: int, seed: int, conditional: bool = False):
    """The fixed generator inputs of the sample grid: the same latents every epoch and resume.

    Conditional: each modality gets `count // 4` rows (tumour off for the first half of its
    samples, on for the second), all modalities sharing the same latents so rows compare.
    Returns (inputs for `generator(...)`, {modality name: slice of the batch} or None).
    """
    rng = np.random.default_rng(seed)
    if not conditional:
        return rng.standard_normal((count, latent_dim)).astype(np.float32), None
    per = max(1, count // len(names.MODALITIES))
    z = np.tile(
        rng.standard_normal((per, latent_dim)).astype(np.float32), (len(names.MODALITIES), 1)
    )
    modality = np.repeat(np.arange(len(names.MODALITIES), dtype=np.int32), per)
    tumour = np.tile((np.arange(per) >= per // 2).astype(np.int32), len(names.MODALITIES))
    groups = {m: slice(i * per, (i + 1) * per) for i, m in enumerate(names.MODALITIES)}
    return [z, modality, tumour], groups


def generate(generator, inputs, batch_size: int = 64) -> np.ndarray:
    """Runs the generator in inference mode, in batches, returning float32 numpy."""
    first = inputs[0] if isinstance(inputs, list) else inputs
    out = []
    for start in range(0, len(first), batch_size):
        chunk = (
            [x[start : start + batch_size] for x in inputs]
            if isinstance(inputs, list)
            else inputs[start : start + batch_size]
        )
        out.append(np.asarray(generator(chunk, training=False), np.float32))
    return np.concatenate(out)


class SampleGrid(keras.callbacks.Callback):
    """Logs a grid of samples from a fixed latent batch to TensorBoard after each epoch.

    Unconditional: one image `samples`. Conditional: one image per modality, `samples/<modality>`
    (left half without tumour, right half with), so the label is in the tag. Optionally also
    writes `samples-epoch<NNN>.png` into `png_dir`.
    """

    def __init__(
        self,
        writer,
        inputs,
        groups: Mapping[str, slice] | None = None,
        every: int = 1,
        png_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.writer = writer
        self.inputs = inputs
        self.groups = groups
        self.every = max(1, int(every))
        self.png_dir = png_dir

    def grids(self) -> dict:
        images = generate(
            getattr(self.model, "sampling_generator", self.model.generator), self.inputs
        )
        if not self.groups:
            return {"samples": imaging.image_grid(images)}
        return {
            f"samples/{m}": imaging.image_grid(
                images[s], columns=s.stop - s.start if s.stop - s.start <= 16 else None
            )
            for m, s in self.groups.items()
        }

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        grids = self.grids()
        with self.writer.as_default(step=epoch + 1):
            for tag, grid in grids.items():
                tf.summary.image(tag, grid[None, :, :, None], step=epoch + 1)
        self.writer.flush()
        if self.png_dir:
            stacked = np.concatenate(list(grids.values()), axis=0)
            imaging.write_png(
                stacked, os.path.join(self.png_dir, f"samples-epoch{epoch + 1:03d}.png")
            )
