"""The PyTorch reference (scripts/torch_reference.py) computes kgan's train steps, not only their
speed.

Each GAN is built by kgan on tiny networks, its weights are copied into the torch twin, and one
train step of each runs from the same real batch and the same latent draws (the torch side
replays kgan's seeded stateless draws in the order it asks for them, so a step that drew in a
different order would fail too). The losses, every parameter after the update, and BEGAN's k_t
must agree to float tolerance.
"""

import sys

import numpy as np
import pytest
from conftest import REPO_ROOT

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import torch_reference as ref  # noqa: E402

from kgan import config as cfg  # noqa: E402
from kgan import optimizers  # noqa: E402
from kgan.gans import build_gan  # noqa: E402

SIZE, WIDTH, BATCH, SEED = 16, 8, 4, 3


class KganDraws:
    """kgan's latent draws: stateless, seeded by [seed, n] with n advanced after every draw."""

    def __init__(self, seed: int):
        self.seed, self.count = seed, 0

    def _seed(self):
        seed = tf.constant([self.seed, self.count], tf.int64)
        self.count += 1
        return seed

    def normal(self, shape):
        return torch.from_numpy(tf.random.stateless_normal(list(shape), seed=self._seed()).numpy())

    def uniform(self, shape):
        return torch.from_numpy(tf.random.stateless_uniform(list(shape), seed=self._seed()).numpy())


def one_step_each(gan: str, critic_norm=None):
    recipe = cfg.defaults(gan)
    extra = {"critic_norm": critic_norm} if critic_norm else {}
    model = build_gan(
        gan, image_size=SIZE, latent_dim=100, width=WIDTH, seed=SEED, **recipe.gan_params, **extra
    )
    model.compile(
        d_optimizer=optimizers.make_optimizer(recipe.optimizer.d),
        g_optimizer=optimizers.make_optimizer(recipe.optimizer.g),
        jit_compile=False,
    )
    peer = ref.TorchGAN(gan, SIZE, WIDTH, critic_norm=critic_norm, noise=KganDraws(SEED))
    peer.load_keras(model.generator, model.discriminator)
    if gan == "began":  # start off zero so that the k_t term of d_loss is exercised
        model.k_t.assign(0.3)
        peer.k = torch.tensor(0.3)
    n = BATCH * peer.n_critic
    images = np.random.default_rng(0).uniform(-1, 1, (n, SIZE, SIZE, 1)).astype("float32")
    labels = {"modality": tf.zeros([n], tf.int32), "tumour": tf.zeros([n], tf.int32)}
    logs = {k: float(v) for k, v in model.train_step((tf.constant(images), labels)).items()}
    theirs = {k: float(v) for k, v in peer.step(peer.real_batch(images)).items()}
    return model, peer, logs, theirs


def assert_same_parameters(module, keras_model):
    expected = ref.keras_to_torch(module, ref.keras_weights(keras_model))
    for name, p in module.named_parameters():
        np.testing.assert_allclose(
            p.detach().numpy(), expected[name].numpy(), rtol=1e-4, atol=2e-6, err_msg=name
        )


# WGAN-GP's default critic (layer norm, kgan.networks.SampleNorm) needs the exact second
# derivative of the norm to agree: its penalty differentiates the critic's input gradient.
@pytest.mark.parametrize(
    "gan, critic_norm",
    [
        ("dcgan", None),
        ("wgan", None),
        ("wgan-gp", None),
        ("wgan-gp", "batch"),
        ("wgan-gp", "none"),
        ("began", None),
    ],
)
def test_one_step_of_each_from_the_same_weights_and_inputs_agrees(gan, critic_norm):
    model, peer, logs, theirs = one_step_each(gan, critic_norm)
    assert set(theirs) >= {"d_loss", "g_loss"}
    for key, value in theirs.items():
        assert value == pytest.approx(logs[key], rel=1e-4, abs=1e-6), key
    # the updates too: every parameter of both networks after the step
    assert_same_parameters(peer.generator, model.generator)
    assert_same_parameters(peer.discriminator, model.discriminator)
    before = ref.keras_to_torch(peer.generator, ref.keras_weights(model.generator))
    assert before  # the comparison covered weights
    if gan == "wgan":
        clip = model.clip_value
        assert (
            max(float(p.detach().abs().max()) for p in peer.discriminator.parameters())
            <= clip + 1e-7
        )
        assert any(
            float(p.detach().abs().max()) == pytest.approx(clip)
            for p in peer.discriminator.parameters()
        )
    if gan == "began":
        assert float(peer.k) == pytest.approx(float(model.k_t.value), rel=1e-5)
        assert float(peer.k) != pytest.approx(0.3)  # k moved


def test_weight_copy_gives_the_same_forward_pass():
    """Layout mapping alone: kgan's networks and their twins agree on an input (64x64, BEGAN)."""
    rng = np.random.default_rng(1)
    for gan in ("dcgan", "began"):
        model = build_gan(gan, image_size=64 if gan == "dcgan" else 32, width=4, seed=1)
        size = model.generator.output_shape[1]
        peer = ref.TorchGAN(gan, size, 4)
        peer.load_keras(model.generator, model.discriminator)
        z = rng.standard_normal((2, 100)).astype("float32")
        x = rng.uniform(-1, 1, (2, size, size, 1)).astype("float32")
        ours_g = model.generator(z, training=True).numpy()
        ours_d = model.discriminator(x, training=True).numpy()
        with torch.no_grad():
            theirs_g = peer.generator(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy()
            theirs_d = peer.discriminator(peer.real_batch(x)).numpy()
        if gan == "began":
            theirs_d = theirs_d.transpose(0, 2, 3, 1)
        np.testing.assert_allclose(theirs_g, ours_g, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(theirs_d, ours_d, rtol=1e-4, atol=1e-5)


def test_step_flops_count_the_convolutions_and_matmuls_of_a_step():
    """Hand count for DCGAN at 16x16, width 8, batch 4 (2 x multiply-adds, forward + backward)."""
    b, w = 4, 8
    # generator: project 100 -> 4x4x16, up1 4x4x16 -> 8x8x8, up2 8x8x8 -> 16x16x1 (kernel 4x4;
    # a transposed conv multiplies every input pixel by the whole kernel)
    g = [100 * 256 * b, 4 * 4 * 16 * 8 * 16 * b, 8 * 8 * 8 * 1 * 16 * b]
    # discriminator: down0 16x16x1 -> 8x8x8, down1 8x8x8 -> 4x4x16, score 256 -> 1
    d = [8 * 8 * 8 * 1 * 16 * b, 4 * 4 * 16 * 8 * 16 * b, 256 * b]
    fwd_g, fwd_d = 2 * sum(g), 2 * sum(d)
    # D update: G forward; D forward x2, weight grads x2, input grads x2 except the first layer's
    d_update = fwd_g + 2 * fwd_d + 2 * fwd_d + 2 * (fwd_d - 2 * d[0])
    # G update: G forward, D forward, D input grads (every layer: the gradient reaches G(z)),
    # no D weight grads, G weight grads, G input grads except the first layer's (z needs none)
    g_update = fwd_g + fwd_d + fwd_d + fwd_g + (fwd_g - 2 * g[0])
    assert ref.step_flops("dcgan", 16, w, b) == d_update + g_update
