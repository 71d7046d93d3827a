"""The JAX stand-in for kgan's train steps (scripts/bench_train_jax.py) does the GANs' maths.

Keras fixes its backend when it is first imported and the test process runs TensorFlow, so each
check runs in a child process with KERAS_BACKEND=jax, on tiny networks.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO_ROOT

pytest.importorskip("jax")


def run_jax(code: str, *args: str, timeout: int = 300) -> str:
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "scripts")]),
    )
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def steps():
    """One child process runs the three GANs' steps on tiny networks (a child each would spend
    most of its time importing JAX and Keras)."""
    out = run_jax("""
        import json, jax, jax.numpy as jnp, numpy as np
        import bench_train_jax as b

        def wgan():
            m = b.StatelessGAN("wgan", 16, 4)
            state = m.initial_state()
            before = [np.array(v) for v in state["d"][0]]
            real = jax.random.uniform(jax.random.key(0), [8 * m.n_critic, 16, 16, 1], minval=-1,
            maxval=1)
            after = jax.jit(m.step)(state, real)
            d = [np.array(v) for v in after["d"][0]]
            return {
                "max_abs": max(float(np.abs(v).max()) for v in d),
                "changed": sum(int(not np.array_equal(x, y)) for x, y in zip(before, d)),
                "n": len(d), "clip": m.params["clip_value"], "n_critic": m.n_critic,
                "g_changed": any(not np.array_equal(np.array(x), np.array(y))
                                 for x, y in zip(state["g"][0], after["g"][0])),
            }

        def began():
            m = b.StatelessGAN("began", 16, 4)
            state = dict(m.initial_state(), k=jnp.float32(0.5))
            real = jax.random.uniform(jax.random.key(0), [8, 16, 16, 1], minval=-1, maxval=1)
            after = jax.jit(m.step)(state, real)
            return ({k: float(after[k]) for k in ("k", "d_loss", "g_loss")}
                    | {"gamma": m.params["gamma"], "lambda_k": m.params["lambda_k"]})

        def dcgan():
            m = b.StatelessGAN("dcgan", 16, 4)
            state = m.initial_state()
            real = jax.random.uniform(jax.random.key(0), [8, 16, 16, 1], minval=-1, maxval=1)
            key, k_fake, _ = jax.random.split(state["key"], 3)
            fake, _ = m._g(state["g"], jax.random.normal(k_fake, [8, 100]))
            d = state["d"]
            real_out, d = m._d(d, real)
            fake_out, _ = m._d(d, fake)
            by_hand = float(jnp.mean(jnp.logaddexp(0.0, -real_out)) + jnp.mean(jnp.logaddexp(0.0,
            fake_out)))
            after = m._critic_update(dict(state, key=key), real, k_fake, None)
            return {"step": float(after["d_loss"]), "by_hand": by_hand}

        print(json.dumps({"wgan": wgan(), "began": began(), "dcgan": dcgan()}))
    """)
    return json.loads(out.strip().splitlines()[-1])


def test_wgan_step_clips_every_critic_weight_after_updating_it(steps):
    r = steps["wgan"]
    assert r["n_critic"] == 5
    assert r["max_abs"] <= r["clip"] + 1e-7
    assert r["changed"] >= r["n"] - 2  # every kernel moved (a few BN betas may start at 0 and stay)
    assert r["g_changed"]


def test_began_step_updates_k_by_proportional_control(steps):
    r = steps["began"]
    loss_fake = r["g_loss"]  # L_G = L(G(z))
    loss_real = r["d_loss"] + 0.5 * loss_fake  # L_D = L(x) - k L(G(z)), k = 0.5
    expected = min(max(0.5 + r["lambda_k"] * (r["gamma"] * loss_real - loss_fake), 0.0), 1.0)
    assert r["k"] == pytest.approx(expected, abs=1e-6)
    assert r["k"] != 0.5


def test_dcgan_discriminator_loss_is_the_cross_entropy_of_its_scores(steps):
    """With the generator's output fixed, the step's d_loss is softplus(-D(x)) + softplus(D(G(z)))
    (the cross-entropy of kgan.losses, which the JAX step now calls)."""
    r = steps["dcgan"]
    assert r["step"] == pytest.approx(r["by_hand"], rel=1e-5)
    assert r["by_hand"] > 0.5  # an untrained D: near 2 log 2


def test_quick_run_writes_results_and_renders_them(tmp_path):
    prefix = tmp_path / "bench"
    # One child runs the benchmark, then renders its results (as `--render` does on its own).
    run_jax(
        """
        import sys, bench_train_jax as b
        code = b.main(sys.argv[1:])
        sys.exit(code or b.main(["--render", sys.argv[-1] + ".jsonl"]))
    """,
        "--quick",
        "--gans",
        "wgan",
        "--no-eager",
        "--out",
        str(prefix),
    )
    records = [json.loads(line) for line in (tmp_path / "bench.jsonl").read_text().splitlines()]
    step = next(r for r in records if r["kind"] == "compiled")
    assert step["finite"] and step["images_per_step"] == 8 * 5
    assert step["images_per_s"] == pytest.approx(step["images_per_step"] / step["seconds"])
    assert step["flops"] and step["flops"] > 0
    # The paper-run projection is made from 64x64 paper-width steps only, never from toy shapes.
    assert not [r for r in records if r["kind"] == "projection"]
    table = (tmp_path / "bench.md").read_text()
    assert "| wgan | 8 |" in table and "Paper's full WGAN run" not in table
