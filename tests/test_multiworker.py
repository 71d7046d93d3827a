"""Two worker processes on 127.0.0.1 train exactly as one process on the global batch, and resume.

Each check starts `python -m kgan.launch --workers 2 -- <train args>` (two `kgan train`
processes, MultiWorkerMirroredStrategy over gRPC on loopback, ring all-reduce on the CPU) and
compares the chief's final checkpoint, value by value, with that of the same recipe trained in
this process on one device. Tiny shapes (16x16, width 8) keep each launch to seconds of
training; most of the time is the two interpreters importing TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf
from conftest import write_disc_slices

from kgan import config as cfg
from kgan import distribute, launch, pipeline, training
from kgan.commands import train as train_command

SIZE = 16
#: Seconds one launch of two workers may take before the test fails (and kills it).
LAUNCH_TIMEOUT = 240


def _write_slices(directory: str, count: int = 48, seed: int = 0) -> str:
    """Discs of varying size and brightness: four modalities, some with a 'tumour'."""
    write_disc_slices(
        os.path.join(directory, "mw-train.tfrecord-00000-of-00001"),
        size=SIZE,
        count=count,
        seed=seed,
        radius=(3, 7),
        brightness=(70, 45),
        noise=8.0,
    )
    return directory


@pytest.fixture(scope="module")
def slices(tmp_path_factory):
    return _write_slices(str(tmp_path_factory.mktemp("mw-slices")))


def train_args(gan: str, data: str, logdir: str, *, epochs: int = 2, steps: int = 3) -> list[str]:
    """`scripts/train.py` arguments of a tiny run, with learning rates large enough that a
    replica mismatch would show."""
    args = [
        "--paper",
        "--gan",
        gan,
        "--data",
        data,
        "--size",
        str(SIZE),
        "--logdir",
        logdir,
        "--name",
        gan,
        "--conditional",
        "--seed",
        "7",
    ]
    sets = {
        "model.width": 8,
        "model.latent_dim": 8,
        "model.bottleneck": 8,
        "train.batch_size": 4,
        "train.epochs": epochs,
        "train.steps_per_epoch": steps,
        "train.checkpoint_every": 2,
        "train.num_samples": 4,
        "train.verbose": 2,
        "output.export": "false",
        "optimizer.d.learning_rate": 1e-3,
        "optimizer.g.learning_rate": 1e-3,
    }
    if gan == "wgan":
        sets["gan_params.n_critic"] = 2
    if gan == "began":
        sets.update({"gan_params.lambda_k": 0.05, "gan_params.k_initial": 0.1})
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    return args


def checkpoint_values(run_dir: str, oldest: bool = False) -> tuple[int, dict]:
    """(step, {key: value}) of a run's newest (or oldest kept) checkpoint."""
    state = tf.train.get_checkpoint_state(os.path.join(run_dir, "checkpoints"))
    assert state and state.all_model_checkpoint_paths, f"no checkpoint in {run_dir}"
    path = state.all_model_checkpoint_paths[0] if oldest else state.model_checkpoint_path
    reader = tf.train.load_checkpoint(path)
    values = {
        k: reader.get_tensor(k)
        for k in reader.get_variable_to_shape_map()
        if k != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }
    return int(path.rsplit("-", 1)[1]), values


def train_here(args: list[str], monkeypatch) -> str:
    """Trains in this process on one device (no TF_CONFIG); returns the run directory."""
    monkeypatch.delenv(distribute.TF_CONFIG, raising=False)
    assert train_command.main(args) == 0
    return os.path.join(args[args.index("--logdir") + 1], args[args.index("--name") + 1])


def _launch_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "kgan.launch", "--workers", "2", "--", *args]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != distribute.TF_CONFIG}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def launch_two(args: list[str]) -> subprocess.CompletedProcess:
    """Runs the launcher to the end in its own process group (killed whole on a timeout)."""
    p = subprocess.Popen(
        _launch_command(args),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = p.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        pytest.fail(f"two workers took over {LAUNCH_TIMEOUT} s:\n{out[-4000:]}")
    return subprocess.CompletedProcess(p.args, p.returncode, out, "")


def assert_same_weights(reference: dict, got: dict, *, tolerance: float = 2e-5) -> None:
    assert sorted(reference) == sorted(got)
    worst = max(float(np.max(np.abs(reference[k].astype("float64") - got[k]))) for k in reference)
    assert worst < tolerance, f"largest difference {worst}"


def moved(run_dir: str) -> float:
    """How far the weights went from the oldest kept checkpoint to the newest."""
    (_, first), (_, last) = checkpoint_values(run_dir, oldest=True), checkpoint_values(run_dir)
    return max(
        float(np.max(np.abs(last[k].astype("float64") - first[k])))
        for k in last
        if k.startswith("model/") and last[k].dtype.kind == "f"
    )


@pytest.mark.slow
@pytest.mark.parametrize("gan", ["dcgan", "wgan"])
def test_two_workers_train_as_one_process(gan, slices, tmp_path, monkeypatch):
    args_one = train_args(gan, slices, str(tmp_path / "one"))
    run_one = train_here(args_one, monkeypatch)
    step_one, one = checkpoint_values(run_one)
    assert moved(run_one) > 1e-3  # training moved the weights: equality below is not trivial

    result = launch_two(train_args(gan, slices, str(tmp_path / "two")))
    assert result.returncode == 0, result.stdout[-6000:]
    assert "2 replicas in sync; this process is the chief" in result.stdout
    run_dir = str(tmp_path / "two" / gan)
    step_two, two = checkpoint_values(run_dir)
    assert step_two == step_one == 6
    assert_same_weights(one, two)
    # Only the chief wrote: one run directory, and no worker's temporary directory left over.
    assert sorted(os.listdir(tmp_path / "two")) == [gan]
    worker_dir = re.search(r"a worker writing to (\S+)\)", result.stdout).group(1)
    assert not os.path.exists(worker_dir)
    resolved = json.load(open(os.path.join(run_dir, "config.json")))["resolved"]
    assert resolved["replicas"] == 2 and resolved["workers"] == 2
    # Both workers ended with bit-identical weights (k_t, clipped critic, seed state).
    assert result.stdout.count("is identical on all 2 replicas") == 2
    if gan == "wgan":  # the chief's checkpoint holds a clipped critic
        saved = json.load(open(os.path.join(run_dir, "config.json")))
        saved.pop("resolved")
        model = training.build_model(cfg.from_dict(saved), jit_compile=False)
        critic = {id(v) for v in model.discriminator.trainable_variables}
        keys = [
            f"model/{i}/.ATTRIBUTES/VARIABLE_VALUE"
            for i, v in enumerate(model.variables)
            if id(v) in critic
        ]
        assert keys and all(k in two for k in keys)
        assert max(float(np.max(np.abs(two[k]))) for k in keys) <= 0.01 + 1e-7
        assert max(float(np.max(np.abs(two[k]))) for k in keys) > 0.009  # clipping was active


@pytest.mark.slow
@pytest.mark.parametrize("gan", ["began", "dcgan"])
def test_two_workers_with_xla_per_replica_train_as_one_process(gan, slices, tmp_path, monkeypatch):
    """XLA across two CPU workers: each replica's computation compiled (BEGAN's at once, DCGAN's
    between its synchronised batch norms), the all-reduces outside XLA, and the same weights as
    one plain process on the global batch."""
    run_one = train_here(
        train_args(gan, slices, str(tmp_path / "one")) + ["--set", "train.jit_compile=false"],
        monkeypatch,
    )
    step_one, one = checkpoint_values(run_one)
    assert moved(run_one) > 1e-3

    args = train_args(gan, slices, str(tmp_path / "two")) + ["--set", "train.jit_compile=true"]
    result = launch_two(args)
    assert result.returncode == 0, result.stdout[-6000:]
    assert result.stdout.count("XLA           : on (the recipe asks for XLA, compiled per") == 2
    step_two, two = checkpoint_values(str(tmp_path / "two" / gan))
    assert step_two == step_one == 6
    assert_same_weights(one, two)
    assert result.stdout.count("is identical on all 2 replicas") == 2


@pytest.mark.slow
def test_killed_worker_stops_the_job_and_both_resume(slices, tmp_path, monkeypatch):
    """kill -9 of worker 1 mid-run ends the job; rerunning resumes and ends as an unbroken run."""
    gan = "began"
    args_one = train_args(gan, slices, str(tmp_path / "one"), epochs=2, steps=4)
    step_one, one = checkpoint_values(train_here(args_one, monkeypatch))

    args = train_args(gan, slices, str(tmp_path / "two"), epochs=2, steps=4)
    ckpt_dir = tmp_path / "two" / gan / "checkpoints"
    p = subprocess.Popen(
        _launch_command(args),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        worker_pid = None
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        os.set_blocking(p.stdout.fileno(), False)
        while time.monotonic() < deadline and p.poll() is None:
            chunk = p.stdout.readline()
            if chunk:
                lines.append(chunk)
                match = re.match(r"kgan\.launch: worker 1 pid (\d+)", chunk)
                worker_pid = int(match.group(1)) if match else worker_pid
                continue
            latest = tf.train.latest_checkpoint(str(ckpt_dir)) if ckpt_dir.exists() else None
            if worker_pid and latest and int(latest.rsplit("-", 1)[1]) >= 2:
                os.kill(worker_pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        else:
            pytest.fail(
                "the run ended (or timed out) before its first checkpoint:\n"
                + "".join(lines)[-4000:]
            )
        os.set_blocking(p.stdout.fileno(), True)
        out, _ = p.communicate(timeout=60)
    except BaseException:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    killed_log = "".join(lines) + out
    assert p.returncode == 128 + signal.SIGKILL, killed_log[-4000:]
    assert "worker 1 exited with -9; stopping the others" in killed_log
    saved_step, _ = checkpoint_values(str(tmp_path / "two" / gan))
    assert 2 <= saved_step < step_one

    result = launch_two(args)
    assert result.returncode == 0, result.stdout[-6000:]
    # The killed worker's temporary directory is gone too (removed when it restarted).
    worker_dir = re.search(r"a worker writing to (\S+)\)", result.stdout).group(1)
    assert worker_dir in killed_log and not os.path.exists(worker_dir)
    resumed = re.findall(r"\[worker (\d)\] kgan: resuming .* from step (\d+) of 8", result.stdout)
    assert sorted(resumed) == [("0", str(saved_step)), ("1", str(saved_step))]
    step_two, two = checkpoint_values(str(tmp_path / "two" / gan))
    assert step_two == step_one == 8
    assert_same_weights(one, two)  # k_t and the latent seed state among them


def test_worker_shares_are_the_parts_of_each_global_batch(slices):
    """Replica r of R gets rows [r B/R, (r+1) B/R) of every batch of the one-process stream."""
    stream = pipeline.SliceStream(slices, split="train", batch_size=8, modalities=None, seed=3)
    whole = [x.numpy() for x, _ in stream.from_position(5, 4)]  # crosses a pass boundary
    by_replica = [
        [x.numpy() for x, _ in stream.from_position(5, 4, shard=(r, 1), shards=4)] for r in range(4)
    ]
    for step, batch in enumerate(whole):
        assert np.array_equal(np.concatenate([parts[step] for parts in by_replica]), batch)
    # A worker with two local replicas: two elements per step, in replica order.
    two_local = [x.numpy() for x, _ in stream.from_position(5, 4, shard=(2, 2), shards=4)]
    assert len(two_local) == 8
    assert np.array_equal(np.concatenate(two_local[2:4]), whole[1][4:])
    with pytest.raises(ValueError, match="equal parts"):
        stream.from_position(0, 1, shard=(0, 1), shards=3)


def test_tf_config_names_the_chief_and_the_workers():
    configs = [json.loads(c) for c in launch.tf_configs(["127.0.0.1:1", "127.0.0.1:2"])]
    clusters = [distribute.cluster_from_env({"TF_CONFIG": json.dumps(c)}) for c in configs]
    assert [c.is_chief for c in clusters] == [True, False]
    assert [c.workers for c in clusters] == [2, 2]
    assert distribute.wants_multiworker("auto", clusters[1])
    assert not distribute.wants_multiworker("none", clusters[1])
    assert not distribute.wants_multiworker("auto", None)
    with_chief = {
        "cluster": {"chief": ["h:1"], "worker": ["h:2", "h:3"]},
        "task": {"type": "worker", "index": 0},
    }
    cluster = distribute.cluster_from_env({"TF_CONFIG": json.dumps(with_chief)})
    assert not cluster.is_chief and cluster.worker_rank == 1 and cluster.workers == 3
    assert distribute.cluster_from_env({}) is None


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("{not json", "not JSON"),
        (
            '{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 3}}',
            "not in its cluster",
        ),
        ('{"cluster": {"worker": "h:1"}, "task": {"type": "worker", "index": 0}}', "address lists"),
    ],
)
def test_bad_tf_config_is_a_clear_error(raw, problem):
    with pytest.raises(distribute.ClusterError, match=problem):
        distribute.cluster_from_env({"TF_CONFIG": raw})


def test_launcher_stops_every_worker_when_one_fails(tmp_path):
    """Worker 1 fails at once; worker 0 (which would sleep a minute) is stopped, code kept."""
    script = (
        "import json, os, sys, time\n"
        "task = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
        "print('up', task, flush=True)\n"
        "sys.exit(3) if task == 1 else time.sleep(60)\n"
    )
    started = time.monotonic()
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        code = launch.run(2, [sys.executable, "-c", script], out=f)
    text = out.read_text()
    assert code == 3
    assert time.monotonic() - started < 30
    assert "[worker 1] up 1" in text and "worker 1 exited with 3; stopping the others" in text
