"""Training across machines: the cluster in `TF_CONFIG`, the strategy, and where each worker writes.

TensorFlow's multi-worker training reads the cluster from the `TF_CONFIG` environment variable,
a JSON object set per process by the launcher (`kgan.launch` locally, SLURM or Kubernetes on a
cluster, docs/training.md#training-across-workers):

    {"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 0}}

Every worker runs the same `scripts/train.py`; `tf.distribute.MultiWorkerMirroredStrategy`
keeps one copy of every variable per replica and all-reduces the gradients, so the workers stay
in lock-step exactly as MirroredStrategy's replicas do on one machine. What differs from one
machine, and lives here:

- the strategy has to exist before TensorFlow runs its first op (collective ops are configured
  at program start-up), so `train` creates it first;
- only the chief writes the run directory; every other worker must still take part in each
  checkpoint save (reading synchronised variables is a collective), so it writes into a
  temporary directory of its own, which is removed at the end (TensorFlow's documented
  pattern for Keras and custom loops);
- each worker feeds only its own replicas: per step it gathers its rows of the global batch
  (`kgan.pipeline.SliceStream.from_position(shard=...)`), so the global batch and its order
  are those of one process.

This module imports TensorFlow lazily, so that `kgan.launch` (which only forms `TF_CONFIG`)
stays light.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile

TF_CONFIG = "TF_CONFIG"


class ClusterError(ValueError):
    """`TF_CONFIG` is malformed; the message says what is wrong with it."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's place in the cluster `TF_CONFIG` describes."""

    #: {"worker": [...], "chief": [...], ...}: the addresses of each task type.
    jobs: dict
    task_type: str
    task_index: int

    @property
    def workers(self) -> int:
        """Processes that train (chief plus workers; parameter servers and evaluators excluded)."""
        return len(self.jobs.get("chief", [])) + len(self.jobs.get("worker", []))

    @property
    def is_chief(self) -> bool:
        """The chief task, or worker 0 when the cluster names no chief (TensorFlow's rule)."""
        if self.task_type == "chief":
            return True
        return "chief" not in self.jobs and self.task_type == "worker" and self.task_index == 0

    @property
    def worker_rank(self) -> int:
        """0 for the chief, then the workers in order (the replica order of the strategy)."""
        if self.task_type == "chief":
            return 0
        return self.task_index + len(self.jobs.get("chief", []))


def cluster_from_env(environ=None) -> Cluster | None:
    """The cluster of `TF_CONFIG`, or None when it is unset or empty.

    Raises:
      ClusterError: `TF_CONFIG` is not JSON, or names a task that is not in its cluster.
    """
    raw = (os.environ if environ is None else environ).get(TF_CONFIG, "").strip()
    if not raw:
        return None
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ClusterError(f"{TF_CONFIG} is not JSON ({e}): {raw[:200]!r}") from None
    if not isinstance(spec, dict):
        raise ClusterError(f"{TF_CONFIG} must be a JSON object, got {raw[:200]!r}")
    jobs = spec.get("cluster") or {}
    task = spec.get("task") or {}
    if not jobs:
        return None
    if not isinstance(jobs, dict) or not all(isinstance(v, list) for v in jobs.values()):
        raise ClusterError(f'{TF_CONFIG} "cluster" must map task types to address lists: {jobs!r}')
    task_type = task.get("type")
    try:
        task_index = int(task.get("index", 0))
    except (TypeError, ValueError):
        raise ClusterError(f'{TF_CONFIG} "task.index" must be an integer: {task!r}') from None
    if task_type not in jobs or not 0 <= task_index < len(jobs[task_type]):
        raise ClusterError(
            f'{TF_CONFIG} "task" {task!r} is not in its cluster {sorted(jobs)} '
            f"({', '.join(f'{k}: {len(v)}' for k, v in jobs.items())})"
        )
    return Cluster(jobs=jobs, task_type=task_type, task_index=task_index)


def wants_multiworker(mode: str, cluster: Cluster | None) -> bool:
    """Whether a run's `train.distribute` setting asks for MultiWorkerMirroredStrategy.

    "multiworker" always does (one worker without `TF_CONFIG` is a valid, local cluster);
    "auto" does when `TF_CONFIG` names more than one training process.
    """
    return mode == "multiworker" or (mode == "auto" and cluster is not None and cluster.workers > 1)


_strategy = None


def multiworker_strategy():
    """This process's MultiWorkerMirroredStrategy, created on the first call.

    The first call must come before any other TensorFlow op (TensorFlow refuses to configure
    collective ops later), so `scripts/train.py` calls it first thing when `TF_CONFIG` names
    several workers, and `kgan.training.train` reuses it. Ring all-reduce over gRPC on CPUs
    (the only collective implementation there); NCCL is TensorFlow's choice with GPUs.
    """
    global _strategy
    if _strategy is None:
        import tensorflow as tf

        comm = tf.distribute.experimental.CommunicationImplementation
        implementation = comm.AUTO if tf.config.list_physical_devices("GPU") else comm.RING
        _strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=implementation
            )
        )
    return _strategy


def across_workers(strategy) -> bool:
    """Whether `strategy` spans several worker processes."""
    import tensorflow as tf

    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )  # pylint: disable=protected-access


def barrier(strategy) -> None:
    """Returns on every worker only once all workers have called it (a one-number all-reduce)."""
    import tensorflow as tf

    if not across_workers(strategy):
        return
    ones = strategy.run(lambda: tf.constant(1.0))
    strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None).numpy()


def workers_agree(strategy, variables) -> bool:
    """Whether every replica, on every worker, holds bit-identical values of `variables`.

    Each replica fingerprints its own copies (per variable: the float64 sum and the sum of
    squares); an all-gather of the fingerprints then compares them. The
    weights, BEGAN's k_t, WGAN's clipped critic and the latent seed state are all updated
    from all-reduced values, so they must agree exactly; a difference means a replica
    drifted. Call it on every worker together (it is a collective).
    """
    import tensorflow as tf

    variables = list(variables)

    @tf.function
    def compare():
        def fingerprint():
            values = [tf.cast(tf.convert_to_tensor(v), tf.float64) for v in variables]
            local = tf.stack(
                [tf.reduce_sum(x) for x in values] + [tf.reduce_sum(tf.square(x)) for x in values]
            )
            ctx = tf.distribute.get_replica_context()
            every = ctx.all_gather(local[None], axis=0)  # [replicas, fingerprint]
            return tf.reduce_all(tf.equal(every, every[:1]))

        return strategy.run(fingerprint)

    return all(bool(v) for v in strategy.experimental_local_results(compare()))


def worker_write_dir(run_dir: str, cluster: Cluster | None) -> str:
    """Where this process writes: `run_dir` on the chief, an empty temporary directory elsewhere.

    The temporary directory's name follows from the run directory and the task, so a worker that
    was killed (and could not clean up) has its leftovers removed when it restarts.
    """
    if cluster is None or cluster.is_chief:
        return run_dir
    run = hashlib.sha1(os.path.abspath(run_dir).encode()).hexdigest()[:12]
    path = os.path.join(
        tempfile.gettempdir(), f"kgan-{run}-{cluster.task_type}{cluster.task_index}"
    )
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def remove_worker_dir(write_dir: str, run_dir: str) -> None:
    """Removes a non-chief worker's temporary directory (never the run directory itself)."""
    if os.path.abspath(write_dir) != os.path.abspath(run_dir):
        shutil.rmtree(write_dir, ignore_errors=True)


def distributed_stream(strategy, stream, position: int, steps: int):
    """The stream's batches from `position` on, each worker feeding only its own replicas.

    Replica r of R gets rows [r * B/R, (r + 1) * B/R) of every global batch B, the part Keras
    gives it when it splits a batch on one machine, so the replicas together see exactly the
    batches of one process. Each worker's input pipeline (`input_pipeline_id`) serves its
    local replicas, in order.
    """

    def per_worker(context):
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * local
        return stream.from_position(
            position, steps, shard=(first, local), shards=context.num_replicas_in_sync
        )

    return strategy.distribute_datasets_from_function(per_worker)


__all__ = [
    "Cluster",
    "ClusterError",
    "TF_CONFIG",
    "across_workers",
    "barrier",
    "cluster_from_env",
    "distributed_stream",
    "multiworker_strategy",
    "remove_worker_dir",
    "wants_multiworker",
    "worker_write_dir",
    "workers_agree",
]
