"""The GANs: one `keras.Model` subclass per algorithm, built by `build_gan`.

- "dcgan": `DCGAN` (Radford et al. 2016)
- "wgan": `WGAN` with weight clipping (Arjovsky et al. 2017; Han et al. 2017)
- "wgan-gp": `WGANGP` (Gulrajani et al. 2017)
- "began": `BEGAN` (Berthelot et al. 2017)
"""

from __future__ import annotations

from kgan import networks
from kgan.gans.base import GAN
from kgan.gans.began import BEGAN
from kgan.gans.dcgan import DCGAN
from kgan.gans.wgan import WGAN
from kgan.gans.wgan_gp import WGANGP

#: The class of each GAN, by its name in `kgan.names.GANS`.
GANS = {cls.gan_name: cls for cls in (DCGAN, WGAN, WGANGP, BEGAN)}


def build_gan(
    gan: str,
    *,
    image_size: int = 64,
    latent_dim: int = 100,
    conditional: bool = False,
    width: int | None = None,
    bottleneck: int = 64,
    seed: int = 0,
    **gan_params,
) -> GAN:
    """Builds a GAN model with its two networks (not yet compiled).

    Call under `strategy.scope()` for multi-device training, then
    `compile(d_optimizer=..., g_optimizer=..., jit_compile=True)` (the
    optimizers default to the GAN's paper, `kgan.names.PAPER_RECIPES`) and `fit` on batches of
    `(images, labels)` from `kgan.pipeline.load_slices`, batched by
    `batch_size * model.real_batches_per_step`.

    Args:
      gan: "dcgan", "wgan", "wgan-gp" or "began".
      image_size: 16, 32, 64, 128 or 256.
      latent_dim: length of z (100 as in the paper).
      conditional: condition both networks on modality and tumour present.
      width: DCGAN ngf = ndf, or BEGAN n; None for the default (64).
      bottleneck: BEGAN's h (ignored by the others).
      seed: seeds the initial weights and the latent draws.
      **gan_params: the GAN's own options, e.g. n_critic, clip_value,
        reference_schedule (wgan); gp_weight (wgan-gp); gamma, lambda_k
        (began); label_smoothing (dcgan); plus network options
        critic_norm ("batch" | "layer" | "none", DCGAN-style critics),
        kernel_size (DCGAN-style networks) and output ("tanh" | "clip",
        the BEGAN generator's squashing; tanh by default).

    Returns:
      The GAN model, with `.generator` and `.discriminator`.

    Raises:
      ValueError: unknown GAN name or option.
    """
    key = gan.lower().replace("_", "-")
    if key not in GANS:
        raise ValueError(f"unknown GAN {gan!r}; choose from {sorted(GANS)}")
    width = int(width or networks.DEFAULT_WIDTH[key])
    params = dict(gan_params)
    if key == "began":
        output = params.pop("output", "tanh")
        generator = networks.began_generator(
            image_size, latent_dim, width, conditional, output=output, seed=seed
        )
        discriminator = networks.began_discriminator(
            image_size, width, bottleneck, conditional, seed=seed
        )
    else:
        norm = params.pop("critic_norm", networks.DEFAULT_CRITIC_NORM[key])
        kernel_size = params.pop("kernel_size", 4)
        generator = networks.dcgan_generator(
            image_size, latent_dim, width, conditional, kernel_size=kernel_size, seed=seed
        )
        discriminator = networks.dcgan_discriminator(
            image_size, width, conditional, norm=norm, kernel_size=kernel_size, seed=seed
        )
    try:
        return GANS[key](
            generator,
            discriminator,
            latent_dim=latent_dim,
            conditional=conditional,
            seed=seed,
            **params,
        )
    except TypeError as error:
        raise ValueError(f"bad option for {key}: {error}") from error


__all__ = ["GAN", "DCGAN", "WGAN", "WGANGP", "BEGAN", "GANS", "build_gan"]
