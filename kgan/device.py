"""The machine a run lands on, and the fastest correct path for it.

Two choices decide a GAN step's speed on a CPU, and the right one differs between machines
(measured with kgan's own steps, docs/training.md#which-path-kgan-takes):

- oneDNN. TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it is imported, and decides by CPU
  when it is unset: on on the Intel Xeons and the Zen 5 EPYC seen here, off on an older AMD EPYC,
  where the main job's step took 0.181 s without it and 0.123 s with it. On x86-64 kgan therefore
  sets it to 1 when the user has not set it; `import kgan` does so, before TensorFlow is imported
  (a user's own value, 0 or 1, always wins).
- XLA. On a GPU it is the design's path. On a CPU, XLA's backend does not use oneDNN: with oneDNN
  on, the plain step is as fast or faster (Intel: 0.68-0.81x for XLA at the paper's size; AMD:
  DCGAN 2.6 s XLA vs 1.8 s plain, main job 0.117 vs 0.123 s); with oneDNN off, XLA wins
  (1.36-1.71x). So `jit_compile = "auto"` resolves to: GPU -> XLA; CPU with oneDNN -> plain;
  CPU without oneDNN -> XLA. Under a strategy over several CPU replicas (logical devices or
  workers) the same rule holds: each replica's computation compiles on its own, with the
  all-reduces outside XLA (`resolve_jit_compile` says how).

This module imports no TensorFlow at import time, so that `kgan/__init__.py` can call
`enable_onednn` first.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys

ONEDNN_VAR = "TF_ENABLE_ONEDNN_OPTS"
_X86 = ("x86_64", "amd64", "i386", "i686")

#: How the oneDNN setting came about, filled by `enable_onednn` ("user", "kgan" or "tensorflow").
_onednn_origin = "tensorflow"


def enable_onednn() -> str:
    """Turns TensorFlow's oneDNN kernels on for x86-64 CPUs unless the user chose already.

    Returns:
      Who decided: "user" (TF_ENABLE_ONEDNN_OPTS was set), "kgan" (set to 1 here), or
      "tensorflow" (not x86-64, or TensorFlow was imported before kgan: its own default holds).
    """
    global _onednn_origin
    if ONEDNN_VAR in os.environ:
        _onednn_origin = "user"
    elif platform.machine().lower() in _X86 and "tensorflow" not in sys.modules:
        os.environ[ONEDNN_VAR] = "1"
        _onednn_origin = "kgan"
    else:
        _onednn_origin = "tensorflow"
    return _onednn_origin


def onednn_enabled() -> bool | None:
    """Whether TensorFlow's oneDNN kernels are on in this process (None when it cannot tell)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # pragma: no cover - a TensorFlow without the private helper
        value = os.environ.get(ONEDNN_VAR)
        return None if value is None else value.strip().lower() in ("1", "true")
    return bool(_pywrap_util_port.IsMklEnabled())


def cpu_model() -> str:
    """The CPU's marketing name ("AMD EPYC", "Intel(R) Xeon(R) ..."), for logs and benchmarks."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_description() -> str:
    """The CPU's name with its family and model numbers and the core count, beside a figure.

    The name alone can hide the generation: lscpu and /proc/cpuinfo call a Zen 4 and a Zen 5
    both "AMD EPYC", and they differ in speed and in TensorFlow's oneDNN default.
    """
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    numbers = ""
    if "cpu family" in fields and "model" in fields:
        numbers = f" (family {fields['cpu family']}, model {fields['model']})"
    return f"{cpu_model()}{numbers}, {os.cpu_count()} cores"


def machine_slug() -> str:
    """A file-name stem for this machine's benchmark results, e.g. "amd-epyc-2c"."""
    import re

    name = f"{cpu_model()} {os.cpu_count()}c".lower()
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")


def resolve_jit_compile(
    setting,
    *,
    gpus: int,
    onednn: bool | None,
    cpu_replicas: int = 1,
    per_replica: bool = False,
):
    """The `jit_compile` a run passes to Keras, and why (one short clause).

    Args:
      setting: the recipe's `train.jit_compile`: True, False or "auto".
      gpus: GPUs the run uses.
      onednn: whether oneDNN is on (`onednn_enabled()`).
      cpu_replicas: replicas of a MirroredStrategy over logical CPU devices, or of a
        MultiWorkerMirroredStrategy over CPU workers (1 otherwise).
      per_replica: the GAN's step compiles each replica's whole computation at once
        (`GAN.compiles_per_replica`: BEGAN); the others compile theirs in segments between
        their synchronised batch norms (`kgan.segments`). Only the reason differs.

    Returns:
      (jit_compile: bool, reason: str).
    """
    several_cpus = cpu_replicas > 1 and not gpus
    if several_cpus and setting is True:
        # Keras compiles the function that calls strategy.run: one XLA cluster on one device
        # holding every replica's variables ("Trying to access resource .../replica_1 located
        # in device CPU:1 from device CPU:0") and the all-reduces, which XLA cannot compile on
        # CPUs ("Only compiling NCCL/auto collective is supported, got: ring"; with AUTO:
        # "Collectives are not yet implemented for CPU devices when compiling with XLA";
        # TF 2.21). So under several replicas the GANs compile each replica's computation
        # alone and all-reduce outside XLA (`GAN.jit_per_replica`).
        where = "" if per_replica else " between the synchronised batch norms"
        return True, f"the recipe asks for XLA, compiled per replica{where}, all-reduces outside it"
    if setting is True:
        return True, "the recipe asks for XLA"
    if setting is False:
        return False, "the recipe turns XLA off"
    if setting != "auto":
        raise ValueError(f'train.jit_compile must be true, false or "auto", got {setting!r}')
    if gpus:
        return True, "auto: XLA on GPUs"
    if onednn:
        return False, "auto: on a CPU with oneDNN the plain step is as fast or faster than XLA"
    return True, "auto: on a CPU without oneDNN the XLA step is faster"


@dataclasses.dataclass
class Plan:
    """What a run will do, printed before its first step."""

    devices: str
    onednn: str
    jit_compile: bool
    jit_reason: str

    def lines(self) -> list[str]:
        return [
            f"device        : {self.devices}",
            f"oneDNN        : {self.onednn}",
            f"XLA           : {'on' if self.jit_compile else 'off'} ({self.jit_reason})",
        ]


def describe_onednn(enabled: bool | None, origin: str | None = None) -> str:
    """ "on (set by kgan ...)" and the like: the oneDNN state and who chose it."""
    origin = origin or _onednn_origin
    state = {True: "on", False: "off", None: "unknown"}[enabled]
    why = {
        "user": f"your {ONEDNN_VAR}={os.environ.get(ONEDNN_VAR, '')}",
        "kgan": f"kgan set {ONEDNN_VAR}=1 on this x86-64 CPU",
        "tensorflow": "TensorFlow's default for this CPU",
    }[origin]
    return f"{state} ({why})"


def describe_devices(gpus: list) -> str:
    """ "2 GPU(s): ..." or "CPU: <model>, N cores"."""
    if gpus:
        return f"{len(gpus)} GPU(s): " + ", ".join(str(getattr(g, "name", g)) for g in gpus)
    return f"CPU only: {cpu_model()}, {os.cpu_count()} cores"
