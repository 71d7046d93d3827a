"""Training: a recipe in, a run directory, checkpoints, TensorBoard logs and an export out.

`train(config)` is the library behind `scripts/train.py`:

1. finds the data: the phantom cohort (built with `kgan.records.ensure_dataset` when missing) or
   any slice dataset name / shard directory readable by `kgan.pipeline`;
2. builds the GAN with `kgan.gans.build_gan` under a MirroredStrategy when the machine has more
   than one GPU (the recipe's batch is the global batch), with optional mixed precision;
3. restores `runs/<name>/checkpoints/` when present and continues *exactly* where it stopped:
   the checkpoint holds every model variable (weights, BatchNorm statistics, BEGAN's k_t, the
   latent seed state, WGAN's generator-update counter, the metric trackers), both optimisers'
   variables (slots, iteration counters, hence also the learning-rate schedule) and the global
   step; the data order is a function of (seed, pass) only - each pass over the data is shuffled
   with its own seed and the stream is skipped to the saved step - so the resumed run sees the
   same batches in the same order as an uninterrupted one;
4. fits with Keras's loop (a progress bar on a terminal, a line per epoch otherwise), with XLA
   chosen per device by `kgan.device.resolve_jit_compile` and passed explicitly (Keras's own
   "auto" turns XLA off on CPUs and under tf.distribute), after printing what it will do;
5. writes `generator.keras` every epoch, a final `samples.png`, and exports the generator as a
   TF Serving SavedModel into `exports/<name>/<version>/` (all three from the weight average
   when the recipe keeps one, `gan_params.ema_decay`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from kgan import callbacks as cb
from kgan import config as cfg
from kgan import device, distribute, imaging, optimizers, pipeline

#: Recipe fields that may change between a run and its resume (everything else must match).
RESUMABLE_CHANGES = {
    "train.epochs",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.log_every",
    "train.verbose",
    "train.divergence_limits",
    "train.num_samples",
    "output.export",
    "output.export_dir",
    "output.logdir",
    "data.data_dir",
    "train.jit_compile",
    "train.steps_per_execution",
    "recipe",
}


class ResumeMismatchError(cfg.ConfigError):
    """The run directory holds a run of a different recipe."""


@dataclasses.dataclass
class TrainResult:
    """Where everything went, and how the run ended."""

    run_dir: str
    config_path: str
    generator_path: str
    checkpoint_dir: str
    logdir: str
    samples_png: str
    export_dir: str | None
    steps: int
    total_steps: int
    resumed_from_step: int
    epoch_logs: dict
    seconds: float

    def summary(self) -> str:
        lines = [
            f"run directory : {self.run_dir}",
            f"recipe        : {self.config_path}",
            f"generator     : {self.generator_path}",
            f"checkpoints   : {self.checkpoint_dir} (step {self.steps} of {self.total_steps})",
            f"sample grid   : {self.samples_png}",
            f"TensorBoard   : tensorboard --logdir {self.logdir}",
            f"export        : {self.export_dir or '(not exported)'}",
        ]
        if self.resumed_from_step:
            lines.insert(1, f"resumed from  : step {self.resumed_from_step}")
        return "\n".join(lines)


# --- data ----------------------------------------------------------------------------------------


def resolve_data(config: cfg.Config) -> str:
    """The dataset directory for a recipe, building the phantom cohort when it is missing."""
    d = config.data
    if d.source == "phantom":
        from kgan import records

        kwargs = {
            "plane": d.plane,
            "size": config.model.image_size,
            "data_dir": d.data_dir,
            "seed": d.split_seed,
        }
        if d.patients:
            kwargs["patients"] = d.patients
        return records.ensure_dataset("phantom", **kwargs)
    return pipeline.resolve_dataset_dir(d.source, d.data_dir)


def dataset_image_size(source: str, data_dir: str | None = None, split: str = "train") -> int:
    """The slice size of an existing dataset (so `--data` needs no `--size`)."""
    return pipeline.image_size_of(pipeline.shard_files(source, split, data_dir))


# --- run directory -------------------------------------------------------------------------------


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k not in ("gan_params", "divergence_limits"):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_resumable(config: cfg.Config, saved_path: str) -> None:
    """Refuses to resume a run directory written by a different recipe, naming the differences."""
    with open(saved_path) as f:
        saved = json.load(f)
    saved.pop("resolved", None)
    old, new = _flatten(saved), _flatten(config.to_dict())
    diffs = [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
        for k in sorted(set(old) | set(new))
        if k not in RESUMABLE_CHANGES and old.get(k) != new.get(k)
    ]
    if diffs:
        raise ResumeMismatchError(
            f"{saved_path} holds a run of another recipe ({'; '.join(diffs)}); train under another "
            f"name (--set name=...) or start this one afresh (--fresh)"
        )


def _devices() -> tuple[list, str]:
    gpus = tf.config.list_logical_devices("GPU")
    return gpus, (f"{len(gpus)} GPU(s)" if gpus else "CPU")


def make_strategy(config: cfg.Config) -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs when there are several (or when asked), else the default.

    Multi-worker runs get their strategy from `kgan.distribute.multiworker_strategy`, which must
    run before any other TensorFlow op, hence before this function's device listing.
    """
    gpus, _ = _devices()
    mode = config.train.distribute
    if mode == "mirrored" or (mode == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _set_precision(config: cfg.Config) -> str:
    policy = config.train.mixed_precision
    if policy == "mixed_float16":
        # float16 needs loss scaling (keras.optimizers.LossScaleOptimizer plus scaled losses in
        # each train_step); the GAN steps do not scale their losses, so refuse rather than train
        # with silently wrong gradients. bfloat16 has float32's range and needs no scaling.
        raise cfg.ConfigError(
            "train.mixed_precision = 'mixed_float16' needs loss scaling, which the GAN train "
            "steps do not do; use 'mixed_bfloat16' (Ampere/Hopper GPUs, TPUs)"
        )
    if policy != "none" and not tf.config.list_logical_devices("GPU"):
        print(
            f"kgan: mixed precision {policy!r} is for GPUs; training in float32 on this CPU",
            file=sys.stderr,
        )
        policy = "none"
    keras.mixed_precision.set_global_policy("float32" if policy == "none" else policy)
    return policy


def build_model(config: cfg.Config, jit_compile: bool | None = None):
    """The GAN of a recipe, compiled with the recipe's optimisers (call inside a strategy scope)."""
    from kgan.gans import build_gan

    m = config.model
    gan = build_gan(
        config.gan,
        image_size=m.image_size,
        latent_dim=m.latent_dim,
        conditional=m.conditional,
        width=m.width or None,
        bottleneck=m.bottleneck,
        seed=config.train.seed,
        **config.gan_params,
    )
    d_opt, g_opt = optimizers.from_recipe(config)
    if jit_compile is None:
        jit_compile, _ = device.resolve_jit_compile(
            config.train.jit_compile, gpus=len(_devices()[0]), onednn=device.onednn_enabled()
        )
    gan.compile(
        d_optimizer=d_opt,
        g_optimizer=g_opt,
        jit_compile=jit_compile,
        steps_per_execution=config.train.steps_per_execution,
    )
    return gan


def make_checkpoint(gan, step: tf.Variable) -> tf.train.Checkpoint:
    """Everything exact resume needs, tracked by position (robust to Keras's layer names)."""
    return tf.train.Checkpoint(
        step=step,
        model=list(gan.variables),
        d_optimizer=list(gan.d_optimizer.variables),
        g_optimizer=list(gan.g_optimizer.variables),
    )


def restore(checkpoint: tf.train.Checkpoint, path: str) -> None:
    """Restores a checkpoint and fails loudly when it does not fit the model."""
    try:
        checkpoint.restore(path).assert_consumed()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise ResumeMismatchError(
            f"checkpoint {path} does not match the model this recipe builds: {e}"
        ) from e


# --- the run -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _FitCall:
    """One `fit` call: `epochs` (first, stop) of `steps_per_epoch` steps from stream `position`."""

    position: int
    first_epoch: int
    stop_epoch: int
    steps_per_epoch: int

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * (self.stop_epoch - self.first_epoch)


def fit_calls(
    start: int, steps_per_epoch: int, epochs: int, steps_per_execution: int = 1
) -> list[_FitCall]:
    """The `fit` calls that take a run from step `start` to its end.

    A run resumed inside an epoch first finishes that epoch (a shorter epoch of its own, so
    Keras's epoch numbers stay those of an uninterrupted run), then trains the whole epochs left.
    Keras cuts an epoch into executions of `steps_per_execution` steps and only the data running
    out ends one early, so one call spans several epochs only when executions end on the epoch
    boundaries; otherwise each epoch is a call of its own (its stream holds exactly its steps),
    which keeps every epoch end - its checkpoint, sample grid, `generator.keras` - at its step.
    """
    calls = []
    epoch, done_in_epoch = divmod(start, steps_per_epoch)
    if done_in_epoch and epoch < epochs:
        calls.append(_FitCall(start, epoch, epoch + 1, steps_per_epoch - done_in_epoch))
        epoch += 1
    if epoch < epochs and steps_per_epoch % steps_per_execution == 0:
        calls.append(_FitCall(epoch * steps_per_epoch, epoch, epochs, steps_per_epoch))
    elif epoch < epochs:
        calls.extend(
            _FitCall(e * steps_per_epoch, e, e + 1, steps_per_epoch) for e in range(epoch, epochs)
        )
    return calls


def _open_run_dir(config: cfg.Config, fresh: bool) -> tuple[str, str]:
    """(config.json path, checkpoint folder) of the run; refuses a folder of another recipe.

    With `fresh` the folder is deleted first; otherwise a run with checkpoints must have been
    trained by this recipe (up to `RESUMABLE_CHANGES`).
    """
    if fresh and os.path.isdir(config.run_dir):
        shutil.rmtree(config.run_dir)
    config_path = os.path.join(config.run_dir, "config.json")
    ckpt_dir = os.path.join(config.run_dir, "checkpoints")
    if tf.train.latest_checkpoint(ckpt_dir) is not None and os.path.isfile(config_path):
        check_resumable(config, config_path)
    return config_path, ckpt_dir


def _training_stream(config: cfg.Config, dataset_dir: str, per_step: int) -> pipeline.SliceStream:
    """The recipe's split as a resumable stream of `batch_size * per_step` slices per step,
    after checking that the dataset's slice size is the recipe's."""
    stream = pipeline.SliceStream(
        dataset_dir,
        split=config.data.split,
        batch_size=config.train.batch_size * per_step,
        modalities=config.data.modalities,
        seed=config.train.seed,
    )
    data_size = pipeline.image_size_of(pipeline.shard_files(dataset_dir, config.data.split))
    if data_size != config.model.image_size:
        raise cfg.ConfigError(
            f"dataset {dataset_dir} holds {data_size}x{data_size} slices but the recipe trains "
            f"{config.model.image_size}x{config.model.image_size}: pass --size {data_size}"
        )
    return stream


def _fit(gan, batches: Callable, calls: list[_FitCall], callbacks, health, verbose) -> dict:
    """Runs the fit calls in order (stopping early on divergence); the last epoch's logs.

    `batches(position, steps)` is the data of one call: the stream's batches from `position`
    (`SliceStream.from_position`, or its per-worker shares across workers).
    """
    epoch_logs: dict = {}
    for call in calls:
        if gan.stop_training or health.diverged:
            break
        history = gan.fit(
            batches(call.position, call.steps),
            epochs=call.stop_epoch,
            initial_epoch=call.first_epoch,
            steps_per_epoch=call.steps_per_epoch,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,
        )
        epoch_logs = {k: v[-1] for k, v in history.history.items()} or epoch_logs
    return epoch_logs


def _print_plan(
    config: cfg.Config,
    plan: device.Plan,
    stream: pipeline.SliceStream,
    steps_per_epoch: int,
    total_steps: int,
) -> None:
    """What the run will do, before it starts (device, XLA, recipe, sizes, steps)."""
    epochs = config.train.epochs
    size = config.model.image_size
    for line in [
        *plan.lines(),
        f"recipe        : {config.recipe or f'the paper defaults for {config.gan}'}",
        f"GAN and size  : {config.gan}, {size}x{size}, "
        f"batch {config.train.batch_size} ({stream.count:,} training slices)",
        f"steps         : {total_steps:,} ({epochs} "
        f"epoch{'s' if epochs != 1 else ''} of {steps_per_epoch:,})",
    ]:
        print(f"kgan: {line}", flush=True)


def _save_last(
    gan,
    manager: tf.train.CheckpointManager,
    saver: cb.GeneratorSaver,
    *,
    start: int,
    steps_done: int,
    saved_step: int,
) -> None:
    """The checkpoint of the last step (unless the callbacks just wrote it) and generator.keras.

    The checkpoint is decided from values every worker shares (steps trained, the step the
    callbacks saved last), so that in a multi-worker run all workers save together.
    """
    if steps_done != start and saved_step != steps_done:
        manager.save(checkpoint_number=steps_done)
    if steps_done != start or not os.path.exists(saver.path):
        saver.set_model(gan)
        saver.save()


def _verbosity(config: cfg.Config) -> int:
    verbose = config.train.verbose
    return (1 if sys.stdout.isatty() else 2) if verbose == "auto" else verbose


def train(
    config: cfg.Config,
    *,
    fresh: bool = False,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainResult:
    """Trains a GAN from a resolved recipe, resuming its run directory when one exists.

    Under `TF_CONFIG` naming several workers (or `train.distribute = "multiworker"`), every
    worker calls this with the same recipe: the chief writes the run directory, the others
    write into temporary directories that are removed on return (`kgan.distribute`).

    Args:
      config: the recipe (`kgan.config.resolve`).
      fresh: delete `runs/<name>/` first instead of resuming it.
      extra_callbacks: more Keras callbacks (run after kgan's own).

    Returns:
      A `TrainResult` with the paths of everything written (those of the run directory, also
      on a worker that is not the chief).

    Raises:
      cb.TrainingDivergedError: NaN/Inf or a divergence limit; the last good checkpoint and
        generator.keras are kept.
      ResumeMismatchError: runs/<name>/ holds a run of another recipe.
    """
    started = time.perf_counter()
    cfg.validate(config)
    cluster = distribute.cluster_from_env()
    strategy = None
    if distribute.wants_multiworker(config.train.distribute, cluster):
        if fresh and (cluster is None or cluster.is_chief) and os.path.isdir(config.run_dir):
            shutil.rmtree(config.run_dir)
        # Collective ops are configured when the runtime starts: before any other TF op.
        strategy = distribute.multiworker_strategy()
        # Every worker past this point: the chief's --fresh deletion above is done.
        distribute.barrier(strategy)
    else:
        cluster = None
    write_dir = distribute.worker_write_dir(config.run_dir, cluster)
    try:
        return _train(
            config,
            fresh=fresh,
            extra_callbacks=extra_callbacks,
            strategy=strategy,
            cluster=cluster,
            write_dir=write_dir,
            started=started,
        )
    finally:
        distribute.remove_worker_dir(write_dir, config.run_dir)


def _train(
    config: cfg.Config,
    *,
    fresh: bool,
    extra_callbacks: Sequence[keras.callbacks.Callback],
    strategy: tf.distribute.Strategy | None,
    cluster: distribute.Cluster | None,
    write_dir: str,
    started: float,
) -> TrainResult:
    """`train` past the cluster set-up; `write_dir` is where this process writes."""
    chief = cluster is None or cluster.is_chief
    run_dir = config.run_dir
    # Across workers the chief has deleted a --fresh run directory already.
    config_path, ckpt_dir = _open_run_dir(config, fresh and strategy is None)

    # The model, its data and the device plan.
    keras.utils.set_random_seed(config.train.seed)
    policy = _set_precision(config)
    strategy = strategy or make_strategy(config)
    across = distribute.across_workers(strategy)
    if across and not chief:
        distribute.barrier(strategy)  # the chief has built the data (a phantom cohort) by then
    dataset_dir = resolve_data(config)
    if across and chief:
        distribute.barrier(strategy)
    gpus, device_name = _devices()
    from kgan import gans

    cpu_replicas = strategy.num_replicas_in_sync if not gpus else 1
    onednn = device.onednn_enabled()
    jit, jit_reason = device.resolve_jit_compile(
        config.train.jit_compile,
        gpus=len(gpus),
        onednn=onednn,
        cpu_replicas=cpu_replicas,
        per_replica=gans.GANS[config.gan].compiles_per_replica,
    )
    with strategy.scope():
        gan = build_model(config, jit_compile=jit)
    per_step = int(getattr(gan, "real_batches_per_step", 1))
    replicas = strategy.num_replicas_in_sync
    if across:
        if config.train.batch_size % replicas:
            raise cfg.ConfigError(
                f"train.batch_size {config.train.batch_size} is the global batch and must split "
                f"evenly over the {replicas} replicas of the workers in TF_CONFIG"
            )
        # A dataset distributed across workers loses its static batch size; the GAN restores it.
        gan.replica_batch_size = config.train.batch_size * per_step // replicas
    stream = _training_stream(config, dataset_dir, per_step)
    steps_per_epoch = config.train.steps_per_epoch or stream.batches_per_pass
    total_steps = steps_per_epoch * config.train.epochs
    if chief:
        cfg.save_json(
            config,
            config_path,
            extra={
                "dataset_dir": os.path.abspath(dataset_dir),
                "train_slices": stream.count,
                "batches_per_pass": stream.batches_per_pass,
                "real_batches_per_step": per_step,
                "steps_per_epoch": steps_per_epoch,
                "total_steps": total_steps,
                "replicas": replicas,
                "workers": cluster.workers if across else 1,
                "device": device_name,
                "cpu": device.cpu_model(),
                "onednn": onednn,
                "mixed_precision": policy,
                "jit_compile": jit,
                "jit_reason": jit_reason,
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
            },
        )

    # Where the run stands: the last checkpoint, if any. Every worker saves (a save reads
    # synchronised variables: all must take part); only the chief's saves land in the run
    # directory, and every worker resumes from those.
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    checkpoint = make_checkpoint(gan, step)
    manager = tf.train.CheckpointManager(
        checkpoint,
        os.path.join(write_dir, "checkpoints"),
        max_to_keep=config.train.keep_checkpoints,
    )
    latest = None if fresh and not chief else tf.train.latest_checkpoint(ckpt_dir)
    if latest:
        restore(checkpoint, latest)
    start = int(step.numpy())

    # The callbacks that log, check and save while it trains.
    logdir = os.path.join(run_dir, "logs")
    writer = tf.summary.create_file_writer(os.path.join(write_dir, "logs", "train"))
    health = cb.RunHealth()
    generator_path = os.path.join(write_dir, "generator.keras")
    inputs, groups = cb.fixed_latents(
        config.train.num_samples,
        config.model.latent_dim,
        seed=config.train.seed,
        conditional=config.model.conditional,
    )
    saver = cb.GeneratorSaver(generator_path, health)
    checkpointer = cb.CheckpointEvery(
        manager,
        step,
        config.train.checkpoint_every,
        health,
        check_variables=lambda: gan.variables,
    )
    callbacks = [
        cb.StopOnDivergence(health, config.train.divergence_limits, step_offset=start),
        cb.StepCounter(step),
        checkpointer,
        saver,
        cb.ScalarLogger(writer, every=config.train.log_every, step_offset=start),
        cb.SampleGrid(writer, inputs, groups, png_dir=os.path.join(write_dir, "samples")),
        *extra_callbacks,
    ]
    _print_plan(
        config,
        device.Plan(
            devices=device.describe_devices(gpus),
            onednn=device.describe_onednn(onednn),
            jit_compile=jit,
            jit_reason=jit_reason,
        ),
        stream,
        steps_per_epoch,
        total_steps,
    )
    if across:
        role = "the chief" if chief else f"a worker writing to {write_dir}"
        print(
            f"kgan: workers       : {cluster.workers} ({replicas} replicas in sync; "
            f"this process is {role})",
            flush=True,
        )
    if start:
        print(f"kgan: resuming {run_dir} from step {start} of {total_steps} ({latest})", flush=True)
    if start < total_steps:
        callbacks.append(
            cb.TimeEstimate(total_steps - start, log=lambda line: print(line, flush=True))
        )

    with strategy.scope():
        epoch_logs = _fit(
            gan,
            (
                functools.partial(distribute.distributed_stream, strategy, stream)
                if across
                else stream.from_position
            ),
            fit_calls(
                start, steps_per_epoch, config.train.epochs, config.train.steps_per_execution
            ),
            callbacks,
            health,
            verbose=_verbosity(config),
        )
    writer.close()

    if health.diverged:
        last = tf.train.latest_checkpoint(ckpt_dir) or "(none saved)"
        raise cb.TrainingDivergedError(
            f"{health.reason}. Kept the last good checkpoint {last} and {generator_path}; "
            f"lower the learning rate or change the recipe, then rerun to resume from it."
        )

    # What a run leaves: the last checkpoint and generator, a sample grid and an export.
    steps_done = int(step.numpy())
    if across:
        if not distribute.workers_agree(strategy, gan.weights):
            raise cb.TrainingDivergedError(
                f"the {replicas} replicas hold different weights after step {steps_done}: "
                f"a worker drifted out of step (the chief's checkpoints are kept in {ckpt_dir})"
            )
        print(
            f"kgan: in sync       : every weight, k_t and the latent seed state included, "
            f"is identical on all {replicas} replicas",
            flush=True,
        )
    _save_last(
        gan,
        manager,
        saver,
        start=start,
        steps_done=steps_done,
        saved_step=checkpointer.last_saved_step,
    )
    write_sample_grid(
        gan.sampling_generator, inputs, groups, os.path.join(write_dir, "samples.png")
    )
    export_dir = None
    if config.output.export and chief:
        export_dir = export(run_dir, config.export_base, reuse=steps_done == start)
    return TrainResult(
        run_dir=run_dir,
        config_path=config_path,
        generator_path=os.path.join(run_dir, "generator.keras"),
        checkpoint_dir=ckpt_dir,
        logdir=logdir,
        samples_png=os.path.join(run_dir, "samples.png"),
        export_dir=export_dir,
        steps=steps_done,
        total_steps=total_steps,
        resumed_from_step=start,
        epoch_logs={k: float(v) for k, v in epoch_logs.items()},
        seconds=time.perf_counter() - started,
    )


def write_sample_grid(generator, inputs, groups, path: str) -> None:
    """The fixed-latent sample grid as one PNG (conditional: one row band per modality)."""
    images = cb.generate(generator, inputs)
    if groups:
        grid = np.concatenate(
            [
                imaging.image_grid(images[s], columns=min(16, s.stop - s.start))
                for s in groups.values()
            ],
            axis=0,
        )
    else:
        grid = imaging.image_grid(images)
    imaging.write_png(grid, path)


def export(run_dir: str, out_base: str, reuse: bool = False) -> str:
    """Exports the run's generator as a TF Serving SavedModel (kgan.export).

    With `reuse` (a rerun that trained nothing new), the newest existing version is returned
    instead of writing an identical new one.
    """
    from kgan import serving
    from kgan.export import export_run

    if reuse:
        versions = serving.existing_versions(out_base)
        if versions:
            return os.path.join(out_base, str(max(versions)))
    return export_run(run_dir, out_base)


__all__ = [
    "TrainResult",
    "ResumeMismatchError",
    "build_model",
    "check_resumable",
    "dataset_image_size",
    "fit_calls",
    "make_checkpoint",
    "make_strategy",
    "resolve_data",
    "train",
    "write_sample_grid",
]
