"""kgan.device: the oneDNN switch, the XLA rule per device, and what a run prints about them."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from kgan import device


@pytest.mark.parametrize(
    "setting,gpus,onednn,replicas,expected",
    [
        ("auto", 1, True, 1, True),  # GPU: XLA, whatever the CPU does
        ("auto", 0, True, 1, False),  # CPU with oneDNN: the plain step
        ("auto", 0, False, 1, True),  # CPU without oneDNN: XLA
        ("auto", 0, None, 1, True),  # unknown oneDNN state: XLA, the CPU's safe choice without it
        (True, 0, True, 1, True),  # the recipe's explicit choice wins
        (False, 2, True, 1, False),
        ("auto", 0, False, 2, True),  # over CPU devices the one-device rule holds, per replica
        ("auto", 0, True, 2, False),
        (True, 0, True, 2, True),
    ],
)
def test_resolve_jit_compile(setting, gpus, onednn, replicas, expected):
    jit, reason = device.resolve_jit_compile(
        setting, gpus=gpus, onednn=onednn, cpu_replicas=replicas
    )
    assert jit is expected
    assert reason


@pytest.mark.parametrize(
    "setting,onednn,per_replica,expected,why",
    [
        # BN GANs compile per replica between their synchronised batch norms
        (True, False, False, True, "between the synchronised batch norms"),
        (True, True, False, True, "between the synchronised batch norms"),
        ("auto", False, False, True, "without oneDNN"),
        ("auto", True, False, False, "with oneDNN"),
        # BEGAN compiles each replica's whole computation at once
        (True, True, True, True, "compiled per replica, all-reduces outside"),
        (True, False, True, True, "compiled per replica"),
        ("auto", False, True, True, "without oneDNN"),
        ("auto", True, True, False, "with oneDNN"),
        (False, False, True, False, "turns XLA off"),
    ],
)
def test_resolve_jit_compile_under_several_cpu_replicas(
    setting, onednn, per_replica, expected, why
):
    jit, reason = device.resolve_jit_compile(
        setting,
        gpus=0,
        onednn=onednn,
        cpu_replicas=2,
        per_replica=per_replica,
    )
    assert jit is expected
    assert why in reason


def test_resolve_jit_compile_rejects_other_words():
    with pytest.raises(ValueError, match="true, false or"):
        device.resolve_jit_compile("sometimes", gpus=0, onednn=True)


def _fresh_interpreter(code: str, env_value: str | None) -> str:
    import os

    env = {k: v for k, v in os.environ.items() if k != device.ONEDNN_VAR}
    if env_value is not None:
        env[device.ONEDNN_VAR] = env_value
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_import_kgan_turns_onednn_on_before_tensorflow_and_respects_the_user():
    code = (
        "import os, kgan, kgan.device as d; "
        "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), d._onednn_origin)"
    )
    import platform

    if platform.machine().lower() in device._X86:
        assert _fresh_interpreter(code, None) == "1 kgan"
    assert _fresh_interpreter(code, "0") == "0 user"  # a user's own setting wins
    # TensorFlow imported first: too late to change, so kgan leaves TensorFlow's default alone.
    late = (
        "import os, sys; sys.modules['tensorflow'] = object(); import kgan.device as d; "
        "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), d._onednn_origin)"
    )
    assert _fresh_interpreter(late, None) == "None tensorflow"


def test_onednn_setting_reaches_tensorflow():
    code = "import kgan, kgan.device as d; import tensorflow; print(d.onednn_enabled())"
    assert _fresh_interpreter(code, "0") == "False"
    assert _fresh_interpreter(code, "1") == "True"


def test_descriptions_name_the_cpu_and_the_origin(monkeypatch):
    monkeypatch.setenv(device.ONEDNN_VAR, "0")
    assert device.describe_onednn(False, "user") == "off (your TF_ENABLE_ONEDNN_OPTS=0)"
    assert device.describe_onednn(True, "kgan").startswith("on (kgan set")
    assert device.describe_devices([]).startswith(f"CPU only: {device.cpu_model()}")
    assert device.cpu_model()


def test_machine_slug_is_a_file_name_stem_naming_cores():
    slug = device.machine_slug()
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)
    assert slug.endswith(f"-{os.cpu_count()}c")
