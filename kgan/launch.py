"""Local multi-worker training: N worker processes on this machine, talking over 127.0.0.1.

    python -m kgan.launch --workers 2 -- --gan dcgan --epochs 1

starts `kgan train <args>` (the program behind `scripts/train.py`) N times, each with its own
`TF_CONFIG` naming all N workers on free loopback ports, and prefixes each line a worker prints
with its rank. It is for trying and testing multi-worker training on one machine; on a cluster,
SLURM or Kubernetes start the same command on every node with a `TF_CONFIG` of their own
(docs/training.md#training-across-workers).

The job stands or falls as a whole, as TensorFlow's synchronous training does: when a worker
exits with an error (or is killed), the launcher stops the others and exits with that worker's
code; rerunning the same command resumes every worker from the chief's last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from kgan import device

LOOPBACK = "127.0.0.1"
#: Seconds a worker gets to exit after SIGTERM before it is killed.
GRACE_SECONDS = 10.0


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """`count` distinct ports that were free on `host` a moment ago (bound, read, released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(addresses: list[str]) -> list[str]:
    """The `TF_CONFIG` of each worker of a cluster of `addresses` (worker 0 is the chief)."""
    cluster = {"worker": list(addresses)}
    return [
        json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        for i in range(len(addresses))
    ]


def _pump(stream, prefix: str, out) -> None:
    for line in iter(stream.readline, ""):
        out.write(f"{prefix}{line}" if line.endswith("\n") else f"{prefix}{line}\n")
        out.flush()
    stream.close()


def _stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM to every live worker, then SIGKILL to those still alive after the grace time."""
    for p in processes:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for p in processes:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run(
    workers: int,
    command: list[str],
    *,
    out=sys.stdout,
    env: dict | None = None,
    poll_seconds: float = 0.2,
) -> int:
    """Runs `command` as `workers` processes of one cluster; returns the job's exit code.

    Args:
      workers: processes to start (each one worker of the cluster; worker 0 is the chief).
      command: the program and its arguments, run unchanged by every worker.
      out: where the workers' prefixed output goes.
      env: the environment of the workers (this process's by default), to which each
        worker's `TF_CONFIG` is added.
      poll_seconds: how often the workers' states are checked.

    Returns:
      0 when every worker exits with 0; otherwise the code of the first worker that failed
      (128 + signal number for a worker killed by a signal, as a shell reports it).
    """
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    addresses = [f"{LOOPBACK}:{port}" for port in free_ports(workers)]
    base = dict(os.environ if env is None else env)
    processes, pumps = [], []
    code = 0
    try:
        for rank, config in enumerate(tf_configs(addresses)):
            p = subprocess.Popen(
                command,
                env={**base, "TF_CONFIG": config},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
            processes.append(p)
            out.write(f"kgan.launch: worker {rank} pid {p.pid} on {addresses[rank]}\n")
            out.flush()
            pump = threading.Thread(
                target=_pump, args=(p.stdout, f"[worker {rank}] ", out), daemon=True
            )
            pump.start()
            pumps.append(pump)
        while True:
            states = [p.poll() for p in processes]
            failed = [(rank, rc) for rank, rc in enumerate(states) if rc not in (None, 0)]
            if failed:
                rank, rc = failed[0]
                code = 128 - rc if rc < 0 else rc
                out.write(f"kgan.launch: worker {rank} exited with {rc}; stopping the others\n")
                out.flush()
                break
            if all(rc == 0 for rc in states):
                break
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        code = 130
    finally:
        _stop(processes)
        for pump in pumps:
            pump.join(timeout=5)
    return code


def _interrupt(signum, frame):
    """SIGTERM (a batch system's cancel) stops the workers as Ctrl-C does."""
    raise KeyboardInterrupt(f"signal {signum}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m kgan.launch",
        description="Run `kgan train` as several workers of one cluster on this machine "
        "(TF_CONFIG per worker, ports on 127.0.0.1).",
        epilog="example: python -m kgan.launch --workers 2 -- --gan dcgan --epochs 1",
    )
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument(
        "train_args",
        nargs=argparse.REMAINDER,
        help="after --: the arguments of scripts/train.py, given to every worker",
    )
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    train_args = list(args.train_args)
    if train_args and train_args[0] == "--":
        train_args = train_args[1:]
    command = [sys.executable, "-m", "kgan.cli", "train", *train_args]
    signal.signal(signal.SIGTERM, _interrupt)
    env = dict(os.environ)
    if device._onednn_origin == "kgan":  # pylint: disable=protected-access
        # `import kgan` set it in this process; each worker decides (and says so) itself.
        env.pop(device.ONEDNN_VAR, None)
    return run(args.workers, command, env=env)


if __name__ == "__main__":
    sys.exit(main())
