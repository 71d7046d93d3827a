"""kgan's four GAN train steps re-written in PyTorch: the peer that kgan's speed is measured
against.

Benchmark-only code (`scripts/bench_train.py --against torch`, installed by the `bench` extra); no
part of the kgan library imports it. Each network repeats its `kgan.networks` twin layer for
layer (same shapes, TF "same" padding, batch-norm epsilon and momentum, activations), and each
step repeats its `kgan.gans.<gan>.train_step`:

- DCGAN: a discriminator update on D(x) and D(G(z)) (two batches, non-saturating cross-entropy),
  then a generator update on a fresh z;
- WGAN: n_critic critic updates, each on a fresh real batch (the step's batch taken with stride
  n_critic, as kgan slices it) and a fresh z, each followed by clipping every critic parameter
  to [-c, c]; then one generator update;
- WGAN-GP: as WGAN without clipping, plus lambda * mean (||grad D(x_hat)|| - 1)^2 on per-sample
  interpolates (alpha drawn after z, as kgan draws them);
- BEGAN: one forward pass, D's gradient of L(x) - k L(G(z)) and G's of L(G(z)) both taken from
  the pre-update weights, then k <- clip(k + lambda_k (gamma L(x) - L(G(z))), 0, 1).

The optimisers are the paper's (`kgan.config.defaults`), as Keras 3 computes them:
`KerasAdam` and `KerasRMSprop` below, because Keras and torch place epsilon differently (Adam:
Keras adds it to sqrt(v) before the bias correction; RMSprop: inside the square root), which
changes the clipped WGAN's tiny generator updates. Both use torch's foreach kernels, as its own
optimisers do. Weights are copied from the Keras models (`load_keras`), so a
test can run one step of each from the same weights and inputs. Initialisation is therefore
not reproduced; learning-rate decay (BEGAN's halving every 100 000 steps) is left out, as no
benchmark runs that long.

Layout: torch is NCHW. Images have one channel, so NHWC and NCHW hold the same bytes. Dense
layers next to a Reshape or Flatten get their rows or columns permuted at copy time, so that the
torch model reshapes in its own (C, H, W) order without a transpose at run time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kgan import config as cfg
from kgan import networks
from kgan.names import GANS

_BN_MOMENTUM = 1.0 - 0.9  # Keras momentum 0.9 is torch's 0.1
_EPS = 1e-5


# --- layers with TensorFlow's "same" padding ------------------------------------------------------


class SameConv2d(nn.Conv2d):
    """Conv2d with TF's "same" padding: the odd pixel of padding goes after (bottom/right)."""

    def __init__(self, cin, cout, kernel, stride=1, bias=True):
        super().__init__(cin, cout, kernel, stride=stride, padding=0, bias=bias)
        total = kernel - stride if kernel > stride else 0  # for inputs divisible by stride
        self.pad_before, self.pad_after = total // 2, total - total // 2
        if self.pad_before == self.pad_after:
            self.padding = (self.pad_before, self.pad_before)

    def forward(self, x):
        if self.pad_before != self.pad_after:
            x = F.pad(x, (self.pad_before, self.pad_after, self.pad_before, self.pad_after))
        return super().forward(x)


def same_conv_transpose(cin, cout, kernel, bias):
    """ConvTranspose2d(stride 2) with TF's "same" output (2x the input)."""
    if kernel % 2:
        raise ValueError(
            f"the torch reference supports even transposed-conv kernels only, got {kernel}"
        )
    return nn.ConvTranspose2d(cin, cout, kernel, stride=2, padding=(kernel - 2) // 2, bias=bias)


class Generator(nn.Module):
    """DCGAN generator, as `kgan.networks.dcgan_generator` (unconditional)."""

    def __init__(self, size: int, latent_dim: int, width: int, kernel: int = 4, max_mult: int = 8):
        super().__init__()
        blocks = networks._blocks(size, 4)
        mults = networks._channel_mults(blocks, max_mult)
        c0 = width * mults[0]
        self.c0 = c0
        self.project = nn.Linear(latent_dim, 16 * c0, bias=False)
        self.project.keras_layout = ("reshape", 4, 4, c0)
        self.project_bn = nn.BatchNorm2d(c0, eps=_EPS, momentum=_BN_MOMENTUM)
        ups, cin = [], c0
        for i, mult in enumerate(mults[1:], start=1):
            ups += [
                (f"up{i}", same_conv_transpose(cin, width * mult, kernel, bias=False)),
                (f"up{i}_bn", nn.BatchNorm2d(width * mult, eps=_EPS, momentum=_BN_MOMENTUM)),
            ]
            cin = width * mult
        ups.append((f"up{blocks}", same_conv_transpose(cin, 1, kernel, bias=True)))
        self.ups = nn.ModuleDict(ups)

    def forward(self, z):
        x = self.project(z).view(-1, self.c0, 4, 4)
        x = F.relu(self.project_bn(x))
        layers = list(self.ups.values())
        for i in range(0, len(layers) - 1, 2):
            x = F.relu(layers[i + 1](layers[i](x)))
        return torch.tanh(layers[-1](x))


class Discriminator(nn.Module):
    """DCGAN discriminator / WGAN critic, as `kgan.networks.dcgan_discriminator`."""

    def __init__(
        self, size: int, width: int, norm: str = "batch", kernel: int = 4, max_mult: int = 8
    ):
        super().__init__()
        if kernel != 4:
            raise ValueError(f"the torch reference supports kernel_size 4 only, got {kernel}")
        blocks = networks._blocks(size, 4)
        mults = list(reversed(networks._channel_mults(blocks, max_mult)))
        if norm not in ("batch", "layer", "none"):
            raise ValueError(f"norm must be 'batch', 'layer' or 'none', got {norm!r}")
        self.convs, self.norms = nn.ModuleDict(), nn.ModuleDict()
        cin = 1
        for i, mult in enumerate(mults):
            cout = width * mult
            self.convs[f"down{i}"] = SameConv2d(
                cin, cout, kernel, 2, bias=(i == 0 or norm == "none")
            )
            if i > 0 and norm == "batch":
                self.norms[f"down{i}_norm"] = nn.BatchNorm2d(cout, eps=_EPS, momentum=_BN_MOMENTUM)
            elif i > 0 and norm == "layer":
                self.norms[f"down{i}_norm"] = nn.GroupNorm(1, cout, eps=_EPS)
            cin = cout
        self.score = nn.Linear(16 * cin, 1)
        self.score.keras_layout = ("flatten", 4, 4, cin)

    def forward(self, x):
        for name, conv in self.convs.items():
            x = conv(x)
            if f"{name}_norm" in self.norms:
                x = self.norms[f"{name}_norm"](x)
            x = F.leaky_relu(x, 0.2)
        return self.score(x.flatten(1))


class BeganDecoder(nn.Module):
    """Berthelot et al.'s decoder body, as `kgan.networks._began_decoder_body`."""

    def __init__(self, size: int, cin: int, filters: int, prefix: str = "dec"):
        super().__init__()
        self.ups, self.filters, self.prefix = networks._blocks(size, 8), filters, prefix
        self.project = nn.Linear(cin, 64 * filters)
        self.project.keras_layout = ("reshape", 8, 8, filters)
        self.convs = nn.ModuleDict(
            {
                f"{prefix}_conv{i}_{j}": SameConv2d(filters, filters, 3)
                for i in range(self.ups + 1)
                for j in range(2)
            }
        )
        self.out = SameConv2d(filters, 1, 3)

    def forward(self, h):
        x = self.project(h).view(-1, self.filters, 8, 8)
        for i in range(self.ups + 1):
            for j in range(2):
                x = F.elu(self.convs[f"{self.prefix}_conv{i}_{j}"](x))
            if i < self.ups:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.out(x)


class BeganGenerator(nn.Module):
    """BEGAN generator with tanh output, as `kgan.networks.began_generator`."""

    def __init__(self, size: int, latent_dim: int, filters: int):
        super().__init__()
        self.decoder = BeganDecoder(size, latent_dim, filters)

    def forward(self, z):
        return torch.tanh(self.decoder(z))


class BeganDiscriminator(nn.Module):
    """BEGAN auto-encoder, as `kgan.networks.began_discriminator`."""

    def __init__(self, size: int, filters: int, bottleneck: int):
        super().__init__()
        downs = networks._blocks(size, 8)
        self.encoder = nn.ModuleDict({"enc_in": SameConv2d(1, filters, 3)})
        for i in range(downs + 1):
            c = filters * (i + 1)
            cin = filters if i == 0 else c
            self.encoder[f"enc_conv{i}_0"] = SameConv2d(cin, c, 3)
            self.encoder[f"enc_conv{i}_1"] = SameConv2d(c, c, 3)
            if i < downs:
                self.encoder[f"enc_down{i}"] = SameConv2d(c, filters * (i + 2), 3, stride=2)
        c_last = filters * (downs + 1)
        self.embedding = nn.Linear(64 * c_last, bottleneck)
        self.embedding.keras_layout = ("flatten", 8, 8, c_last)
        self.decoder = BeganDecoder(size, bottleneck, filters)

    def forward(self, x):
        for layer in self.encoder.values():
            x = F.elu(layer(x))
        return self.decoder(self.embedding(x.flatten(1)))


def build_networks(
    gan: str,
    size: int,
    width: int,
    latent_dim: int = 100,
    bottleneck: int = 64,
    critic_norm: str | None = None,
):
    """(generator, discriminator) of `gan` at kgan's defaults (critic_norm: DCGAN-style critics)."""
    if gan == "began":
        return BeganGenerator(size, latent_dim, width), BeganDiscriminator(size, width, bottleneck)
    return (
        Generator(size, latent_dim, width),
        Discriminator(size, width, norm=critic_norm or networks.DEFAULT_CRITIC_NORM[gan]),
    )


# --- Keras weights -> torch -----------------------------------------------------------------------


def _keras_name(module_path: str) -> str:
    """Keras layer name of a torch submodule path (the last path element, or a decoder alias)."""
    parts = module_path.split(".")
    if parts[-1] in ("project", "out") and "decoder" in parts:
        return f"dec_{parts[-1]}"
    return parts[-1]


def keras_to_torch(module: nn.Module, weights) -> dict:
    """Torch tensors, one per parameter/buffer of `module`, from {keras layer name: [arrays]}.

    Conv2D kernels (h, w, in, out) and Conv2DTranspose kernels (h, w, out, in) both become
    torch's (out|in, in|out, h, w) by the same permutation; Dense kernels are transposed and,
    beside a Reshape or Flatten, re-ordered from (H, W, C) to (C, H, W).
    """
    out = {}
    for path, layer in module.named_modules():
        if not isinstance(
            layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.GroupNorm)
        ):
            continue
        arrays = [torch.as_tensor(a, dtype=torch.float32) for a in weights[_keras_name(path)]]
        prefix = f"{path}." if path else ""
        if isinstance(layer, nn.Linear):
            kernel = arrays[0].T.contiguous()  # (out, in)
            bias = arrays[1] if len(arrays) > 1 else None
            layout = getattr(layer, "keras_layout", None)
            if layout and layout[0] == "reshape":
                _, h, w, c = layout
                kernel = kernel.reshape(h, w, c, -1).permute(2, 0, 1, 3).reshape(h * w * c, -1)
                if bias is not None:
                    bias = bias.reshape(h, w, c).permute(2, 0, 1).reshape(-1)
            elif layout and layout[0] == "flatten":
                _, h, w, c = layout
                kernel = (
                    kernel.reshape(-1, h, w, c).permute(0, 3, 1, 2).reshape(kernel.shape[0], -1)
                )
            out[prefix + "weight"] = kernel.contiguous()
            if bias is not None:
                out[prefix + "bias"] = bias.contiguous()
        elif isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            out[prefix + "weight"] = arrays[0].permute(3, 2, 0, 1).contiguous()
            if len(arrays) > 1:
                out[prefix + "bias"] = arrays[1]
        elif isinstance(layer, nn.BatchNorm2d):
            for key, a in zip(("weight", "bias", "running_mean", "running_var"), arrays):
                out[prefix + key] = a
        else:
            out[prefix + "weight"], out[prefix + "bias"] = arrays
    return out


def keras_weights(model) -> dict:
    """{layer name: [numpy arrays]} of a Keras model's layers that hold weights."""
    return {
        layer.name: [w.numpy() for w in layer.weights] for layer in model.layers if layer.weights
    }


def load_keras(module: nn.Module, keras_model) -> None:
    """Copies a kgan network's weights into its torch twin (every parameter must be covered)."""
    state = keras_to_torch(module, keras_weights(keras_model))
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"weights do not match: missing {missing}, unexpected {unexpected}")


# --- optimisers -----------------------------------------------------------------------------------


class KerasAdam(torch.optim.Optimizer):
    """Adam exactly as Keras 3 updates: w -= lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps).

    (torch.optim.Adam adds eps to sqrt(v / (1-b2^t)), which differs while |g| is near eps.)
    The update runs on whole parameter lists (torch's foreach kernels), as torch's own Adam.
    """

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-7):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})
        self.t = 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad for p in params]
            for p in params:
                if not self.state[p]:
                    self.state[p]["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    self.state[p]["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            m = [self.state[p]["m"] for p in params]
            v = [self.state[p]["v"] for p in params]
            b1, b2 = group["betas"]
            alpha = group["lr"] * math.sqrt(1 - b2**self.t) / (1 - b1**self.t)
            torch._foreach_lerp_(m, grads, 1 - b1)
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
            denom = torch._foreach_sqrt(v)
            torch._foreach_add_(denom, group["eps"])
            torch._foreach_addcdiv_(params, m, denom, value=-alpha)


class KerasRMSprop(torch.optim.Optimizer):
    """RMSprop exactly as Keras 3 updates: v = rho v + (1-rho) g^2, w -= lr g / sqrt(v + eps).

    (torch.optim.RMSprop divides by sqrt(v) + eps: with eps 1e-7 the two differ wherever
    |g| < ~1e-3, which is most of a clipped WGAN's generator gradients.) Foreach kernels.
    """

    def __init__(self, params, lr, rho=0.9, eps=1e-7):
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad for p in params]
            for p in params:
                if not self.state[p]:
                    self.state[p]["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            v = [self.state[p]["v"] for p in params]
            torch._foreach_mul_(v, group["rho"])
            torch._foreach_addcmul_(v, grads, grads, value=1 - group["rho"])
            denom = torch._foreach_add(v, group["eps"])
            torch._foreach_sqrt_(denom)
            torch._foreach_addcdiv_(params, grads, denom, value=-group["lr"])


def make_optimizer(o: cfg.OptimizerConfig, params):
    """The torch optimiser of a kgan optimiser recipe (constant learning rate)."""
    if o.name == "adam":
        return KerasAdam(params, o.learning_rate, (o.beta_1, o.beta_2), o.epsilon)
    if o.name == "rmsprop" and not o.momentum:
        return KerasRMSprop(params, o.learning_rate, o.rho, o.epsilon)
    raise ValueError(f"the torch reference has no {o.name!r} optimiser")


# --- the steps ------------------------------------------------------------------------------------


class TorchNoise:
    """Latents and interpolation weights from a seeded torch generator."""

    def __init__(self, seed: int = 0):
        self.gen = torch.Generator().manual_seed(seed)

    def normal(self, shape):
        return torch.randn(shape, generator=self.gen)

    def uniform(self, shape):
        return torch.rand(shape, generator=self.gen)


class TorchGAN:
    """One GAN's two networks, optimisers and train step in PyTorch.

    Args:
      gan: "dcgan", "wgan", "wgan-gp" or "began".
      size, width: image side and network width (kgan's `image_size`, `width`).
      latent_dim, bottleneck, critic_norm: as kgan's `build_gan`.
      channels_last: keep weights and activations in NHWC memory (torch's oneDNN convs prefer it).
      noise: the source of z (and WGAN-GP's alpha); a test passes kgan's draws.
    """

    def __init__(
        self,
        gan: str,
        size: int,
        width: int,
        *,
        latent_dim: int = 100,
        bottleneck: int = 64,
        critic_norm: str | None = None,
        channels_last: bool = False,
        noise=None,
    ):
        if gan not in GANS:
            raise ValueError(f"unknown GAN {gan!r}; choose from {GANS}")
        recipe = cfg.defaults(gan)
        self.gan, self.size, self.latent_dim = gan, size, latent_dim
        self.params = dict(recipe.gan_params)
        self.n_critic = int(self.params.get("n_critic", 1)) if gan.startswith("wgan") else 1
        self.clip = self.params.get("clip_value") if gan == "wgan" else None
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.generator, self.discriminator = build_networks(
            gan, size, width, latent_dim, bottleneck, critic_norm
        )
        self.generator.train()
        self.discriminator.train()
        self._to_format()
        self.noise = noise or TorchNoise(0)
        self.k = torch.zeros([])
        self.g_opt = make_optimizer(recipe.optimizer.g, list(self.generator.parameters()))
        self.d_opt = make_optimizer(recipe.optimizer.d, list(self.discriminator.parameters()))

    def _to_format(self):
        self.generator.to(memory_format=self.memory_format)
        self.discriminator.to(memory_format=self.memory_format)

    def load_keras(self, keras_generator, keras_discriminator) -> None:
        load_keras(self.generator, keras_generator)
        load_keras(self.discriminator, keras_discriminator)
        self._to_format()

    def real_batch(self, images) -> torch.Tensor:
        """NHWC images (kgan's layout, one channel) -> the step's NCHW input."""
        x = torch.as_tensor(images, dtype=torch.float32)
        return x.permute(0, 3, 1, 2).contiguous(memory_format=self.memory_format)

    def step(self, real: torch.Tensor) -> dict:
        """One train step on `real` (n_critic * batch images for the WGANs); the logged losses."""
        if self.gan == "began":
            return self._began(real)
        logged = {}
        for i in range(self.n_critic):
            logged = self._critic_update(real[i :: self.n_critic])
        logged["g_loss"] = self._generator_update(real.shape[0] // self.n_critic)
        return logged

    def _critic_update(self, real) -> dict:
        batch = real.shape[0]
        with torch.no_grad():
            fake = self.generator(self.noise.normal((batch, self.latent_dim)))
        d = self.discriminator
        real_out, fake_out = d(real), d(fake)
        if self.gan == "dcgan":
            loss = F.softplus(-real_out).mean() + F.softplus(fake_out).mean()
        else:
            loss = fake_out.mean() - real_out.mean()
        logged = {"d_loss": loss}
        if self.gan == "wgan-gp":
            alpha = self.noise.uniform((batch,)).view(batch, 1, 1, 1)
            x_hat = (fake + alpha * (real - fake)).requires_grad_(True)
            (grads,) = torch.autograd.grad(d(x_hat).sum(), x_hat, create_graph=True)
            norms = torch.sqrt(grads.square().sum(dim=(1, 2, 3)) + 1e-10)
            penalty = (norms - 1.0).square().mean()
            loss = loss + self.params["gp_weight"] * penalty
            logged = {"d_loss": loss, "gradient_penalty": penalty}
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.d_opt.step()
        if self.clip:
            with torch.no_grad():
                for p in d.parameters():
                    p.clamp_(-self.clip, self.clip)
        return {k: v.detach() for k, v in logged.items()}

    def _generator_update(self, batch: int) -> torch.Tensor:
        d = self.discriminator
        d.requires_grad_(False)  # G's update needs no critic weight gradients
        try:
            out = d(self.generator(self.noise.normal((batch, self.latent_dim))))
            loss = F.softplus(-out).mean() if self.gan == "dcgan" else -out.mean()
            self.g_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.g_opt.step()
        finally:
            d.requires_grad_(True)
        return loss.detach()

    def _began(self, real) -> dict:
        g, d = self.generator, self.discriminator
        z = self.noise.normal((real.shape[0], self.latent_dim))
        k = self.k
        fake = g(z)
        loss_real = (real - d(real)).abs().mean()
        loss_fake = (fake - d(fake)).abs().mean()
        d_loss = loss_real - k * loss_fake
        g_loss = loss_fake
        # both gradients from the pre-update weights, as kgan's two tapes
        d_params, g_params = list(d.parameters()), list(g.parameters())
        d_grads = torch.autograd.grad(d_loss, d_params, retain_graph=True)
        g_grads = torch.autograd.grad(g_loss, g_params)
        for p, grad in zip(d_params + g_params, d_grads + g_grads):
            p.grad = grad
        self.d_opt.step()
        self.g_opt.step()
        with torch.no_grad():
            balance = self.params["gamma"] * loss_real - loss_fake
            self.k = torch.clamp(k + self.params["lambda_k"] * balance, 0.0, 1.0)
        return {
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "d_real": loss_real.detach(),
            "d_fake": loss_fake.detach(),
            "k_t": self.k,
        }


def step_flops(gan: str, size: int, width: int, batch: int) -> float:
    """FLOPs of one step as torch executes it: 2 x multiply-adds of every conv and matmul,

    forward and backward (torch.utils.flop_counter), the same rule kgan's count applies.
    """
    from torch.utils.flop_counter import FlopCounterMode

    model = TorchGAN(gan, size, width)
    real = torch.zeros(batch * model.n_critic, 1, size, size)
    counter = FlopCounterMode(display=False)
    with counter:
        model.step(real)
    return float(counter.get_total_flops())
